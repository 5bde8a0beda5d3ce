// Internal header of the engine: its state, shared by engine.cpp (lifecycle: start, stop,
// collecting what finished), engine_reload.cpp (a reload as one transaction) and
// engine_report.cpp (accounting, warm-up and the health probes).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "consumer_thread.h"
#include "evfly/engine.h"
#include "producer_thread.h"
#include "tracer.h"

namespace evfly {

struct Engine::Impl {
    Impl(const Config& cfg, const TestHooks& hooks) : config(cfg), shared(hooks) {}
    // Every member function of Engine runs on one thread, the supervisor (debug builds check).
    detail::ThreadOwner supervisor;
    Config config;  // the config in force
    detail::Shared shared;
    std::vector<std::unique_ptr<detail::Spec>> specs;     // running, in config order
    std::vector<std::unique_ptr<detail::Spec>> retiring;  // stopped, some fds not yet consumed
    std::vector<ProducerReport> finished;  // totals of producers gone, by name and kind
    std::vector<std::unique_ptr<detail::ConsumerThread>> consumers;
    PoolCounts departed;                 // counts of consumers joined and gone
    std::uint64_t retire_requested = 0;  // retire units written to the retire eventfd
    std::uint64_t retired = 0;           // consumers that left on one, joined
    std::uint32_t pool_at_stop = 0;      // consumers running when stop() began
    bool started = false;
    bool stopped = false;
    // Warm-up: latency recorded between begin_warmup() and end_warmup() is left out of reports.
    // Every sample is in the one per-CPU recorder (consumers that left included), so one
    // snapshot gives the totals and the split alike.
    bool warming = false;
    std::vector<CpuLatency> warmup_start;  // the recorder when the current warm-up began
    std::vector<CpuLatency> excluded;      // everything recorded during finished warm-ups
    // [explain] trace: the kernel tracer while it runs, or why it cannot (said once).
    std::unique_ptr<detail::Tracer> tracer;
    std::string trace_unavailable;

    // Lifecycle (engine.cpp).
    // The j-th producer table of `all`, its threads created (not started).
    std::unique_ptr<detail::Spec> make_spec(const std::vector<ProducerConfig>& all, std::size_t j);
    // Starts `count` threads with `start_one(i)` and waits until each runs. If one cannot be
    // started, waits for those that were and rethrows the failure; the caller unwinds them.
    std::size_t start_threads(std::size_t count, const std::function<void(std::size_t)>& start_one);
    void start_spec(detail::Spec& spec);
    static void stop_spec(detail::Spec& spec, std::int64_t deadline_ns);
    // Joins consumers that left the pool and folds their counts into `departed`.
    void reap_consumers();
    // Releases stopped producers whose fds are all consumed: their counts move to `finished`
    // and their slots become free.
    void release_drained();
    [[nodiscard]] std::uint32_t running_consumers() const;
    // Why the threads just started could not all be placed as configured ("" when they were).
    [[nodiscard]] std::string placement_errors() const;

    // Reload (engine_reload.cpp). Grows or shrinks the pool to `target`; consumers it starts
    // get `placement`, and are returned.
    std::vector<detail::ConsumerThread*> resize_pool(std::uint32_t target, std::int64_t deadline_ns,
                                                     const Placement& placement);
    // The steps of a reload's transaction (see Engine::reconfigure): place the running threads
    // whose placement changes, start what is new, undo both, or commit.
    void place_running(const Config& next,
                       const std::vector<std::pair<detail::Spec*, Placement>>& replaced,
                       detail::PlacementTxn& placements);
    void start_new(const Config& next, const std::vector<std::unique_ptr<detail::Spec>*>& unchanged,
                   std::vector<std::unique_ptr<detail::Spec>>& fresh,
                   detail::PlacementTxn& placements, std::int64_t deadline);
    void undo_start(std::vector<std::unique_ptr<detail::Spec>>& fresh,
                    detail::PlacementTxn& placements, std::int64_t deadline);
    bool commit(const Config& next, const std::vector<std::unique_ptr<detail::Spec>*>& unchanged,
                const std::vector<std::pair<detail::Spec*, Placement>>& replaced,
                std::vector<std::unique_ptr<detail::Spec>>& fresh, std::int64_t deadline);

    // Accounting and health (engine_report.cpp).
    [[nodiscard]] ProducerReport spec_report(const detail::Spec& spec) const;
    // The oldest event in flight of `spec` at `now` (steady ns).
    [[nodiscard]] InFlightAge oldest_in_flight(const detail::Spec& spec, std::int64_t now) const;
};

// Adds `r` to the entry of its producer (same name and kind) in `list`, appended if absent.
void accumulate_into(std::vector<ProducerReport>& list, const ProducerReport& r);

}  // namespace evfly
