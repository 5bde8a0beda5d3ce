// Internal header: kernel tracing of outliers, tier 2 of [explain] (trace = true or "required").
//
// evflyd keeps a tracefs instance of its own, "evfly-PID" (never the top-level buffer), recording
// sched_waking, sched_wakeup, sched_switch, sched_migrate_task, irq_handler_entry/exit,
// softirq_entry/exit and hrtimer_expire_entry on the CPUs evflyd may run on, with trace_clock
// "mono", the clock of its own stamps. For an outlier worth keeping it stops the instance, decodes
// the ring (libtracefs, libtraceevent) on a thread of its own at the lowest priority, asks
// analyze_trace() (trace_analysis.h) who held the CPU, attaches the account to the outlier,
// logs it, and resumes: at most one analysis per `trace_every`. Events the ring lost are counted.
// The instance is removed when the tracer goes; one left by a killed evflyd is removed when the
// next one opens its own.
//
// Threading: offer() from any thread (it only hands the outlier over); everything else from the
// thread that owns the Tracer.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "evfly/config.h"
#include "evfly/report.h"
#include "explain.h"
#include "thread_annotations.h"
#include "tracefs_shim.h"

namespace evfly::detail {

class Tracer {
  public:
    // Opens the instance and starts tracing `cpus`; nullptr and `why` (naming explain.trace)
    // when tracing cannot be had: no tracefs, or not allowed to write it.
    static std::unique_ptr<Tracer> open(const Config::Explain& explain,
                                        const std::vector<int>& cpus, OutlierStore& store,
                                        std::string* why);
    ~Tracer();
    Tracer(const Tracer&) = delete;
    Tracer& operator=(const Tracer&) = delete;

    // An outlier the store keeps: traced if the tracer is free and the last analysis is at least
    // `trace_every` ago; otherwise counted as skipped. Quick: it only hands the outlier over.
    void offer(const Outlier& o) EXCLUDES(mutex_);
    [[nodiscard]] TraceStatus status() const EXCLUDES(mutex_);
    // Removes instances left by evflyd processes that no longer run; returns how many.
    static int remove_stale_instances();

  private:
    Tracer(const Config::Explain& explain, OutlierStore& store);
    void run(const std::stop_token& stop);
    // Stops the ring, decodes and explains `o`, restarts the ring.
    void analyze(const Outlier& o);

    OutlierStore& store_;
    std::string name_;
    tracefs_instance* instance_ = nullptr;
    tep_handle* tep_ = nullptr;
    const std::int64_t every_ns_;
    mutable Mutex mutex_;
    std::condition_variable_any wake_;
    std::optional<Outlier> pending_ GUARDED_BY(mutex_);
    std::int64_t last_analysis_ns_ GUARDED_BY(mutex_) = 0;
    TraceStatus status_ GUARDED_BY(mutex_);
    std::jthread thread_;
};

}  // namespace evfly::detail
