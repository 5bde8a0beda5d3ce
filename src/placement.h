// Placement and scheduling of the engine's threads: CPU affinity (one CPU per thread,
// round-robin over the group's list), policy and priority, nice and timer slack, applied by a
// thread to itself when it starts, and by the supervisor to running threads at a reload.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/fd.h"
#include "evfly/thread_state.h"

namespace evfly::detail {

// What a thread gets for the fields a Placement leaves unset: what evflyd itself ran with when
// the engine was made.
struct PlacementDefaults {
    std::vector<int> cpus;  // the process's allowed CPUs
    int policy = 0;         // SCHED_OTHER
    int priority = 0;
    int nice = 0;
    std::uint64_t timer_slack_ns = 50'000;
    static PlacementDefaults of_this_process();
};

// Applies `p` to thread `tid` (0: the calling thread), thread `index` of its group. Returns ""
// or why it failed, naming the key (`prefix` + key, e.g. "daemon.policy") and the reason.
std::string apply_placement(const Placement& p, const PlacementDefaults& defaults, pid_t tid,
                            std::uint32_t index, const std::string& prefix);

pid_t current_tid() noexcept;

// A reload's placement as one transaction. Each thread is recorded before anything is applied to
// it, so rollback() puts back every thread the reload touched, the one whose placement failed
// halfway (its CPUs set, its policy refused) included. A thread whose tid is still 0 has not
// started yet and places itself when it runs: it is left alone (to the kernel, tid 0 is the
// calling thread). Supervisor thread only.
class PlacementTxn {
  public:
    explicit PlacementTxn(const PlacementDefaults& defaults) : defaults_(defaults) {}
    PlacementTxn(const PlacementTxn&) = delete;
    PlacementTxn& operator=(const PlacementTxn&) = delete;

    // Places running thread `tid` (thread `index` of its group) as `next`; rollback() gives it
    // `previous` again. Returns "" or why it failed, naming the key (`prefix` + key).
    std::string place(pid_t tid, std::uint32_t index, const Placement& next,
                      const Placement& previous, const std::string& prefix);
    // A thread the reload started, which placed itself: rollback() gives it `previous`.
    void started(pid_t tid, std::uint32_t index, const Placement& previous,
                 const std::string& prefix);
    // Puts back every thread recorded, the last first; returns why any could not be put back
    // ("" when all were).
    std::string rollback();
    [[nodiscard]] std::size_t threads() const noexcept { return undo_.size(); }

  private:
    struct Undo {
        pid_t tid;
        std::uint32_t index;
        Placement previous;
        std::string prefix;
    };
    const PlacementDefaults& defaults_;
    std::vector<Undo> undo_;
};

// mlockall(MCL_CURRENT | MCL_FUTURE) when `on`, munlockall() when not; "" or why it failed,
// naming daemon.mlockall.
std::string apply_mlockall(bool on);

// The process's request for CPU wake-up latency (PM QoS): in force while its fd on
// /dev/cpu_dma_latency is open. Supervisor thread only.
class CpuWakeLatency {
  public:
    // Asks for `latency` (whole microseconds), or withdraws the request (nullopt). Returns "" or
    // why it failed, naming daemon.cpu_dma_latency; on failure the request in force is kept.
    std::string set(std::optional<Nanos> latency);

  private:
    Fd fd_;
};

// "cpus=0-1 policy=fifo priority=10 nice=... timer_slack=...", or "inherited".
std::string describe(const Placement& p);

// Every thread of this process, as the kernel reports it.
std::vector<ThreadState> observe_threads() noexcept;

}  // namespace evfly::detail
