// Every latency sample of the pool, by where its hand-off ran: the consumers record each one
// under the CPU they read it on, split by whether its fire ran on that CPU too. This is what
// decides placement (a wake-up on the same CPU costs far less than one across CPUs on most
// machines), and the reports' totals are the sums of it, so the two never disagree.
//
// Any thread may record under any CPU (a thread can move between sched_getcpu() and the record),
// so the histograms take many writers; in practice a CPU's histograms are written by the threads
// running on it, so their cache lines stay with that CPU. A CPU's histograms are allocated the
// first time a sample is recorded there and live as long as the recorder.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "evfly/report.h"

namespace evfly::detail {

// The CPU the calling thread runs on, -1 if unknown: glibc reads it from the thread's rseq area
// (or the vDSO), with no syscall.
inline int current_cpu() noexcept { return ::sched_getcpu(); }

class CpuLatencyRecorder {
  public:
    // CPUs numbered beyond, and a read CPU that is not known, are filed under CPU -1.
    static constexpr std::size_t kMaxCpus = CPU_SETSIZE;

    CpuLatencyRecorder();
    ~CpuLatencyRecorder();
    CpuLatencyRecorder(const CpuLatencyRecorder&) = delete;
    CpuLatencyRecorder& operator=(const CpuLatencyRecorder&) = delete;

    // The segments of one sample's path, ns (see PathSegments); producer is 0 for timers.
    struct Path {
        std::uint64_t producer = 0;
        std::uint64_t wake_up = 0;
        std::uint64_t batch = 0;
    };
    // One eventfd sample read on `cpu`, fired on `fire_cpu` (-1: not known, filed as cross-CPU),
    // with its path. Safe from any thread.
    void record_eventfd(int cpu, int fire_cpu, std::uint64_t latency, std::uint64_t delivery,
                        const Path& path) noexcept;
    // One timer read on `cpu`, with its path. Safe from any thread.
    void record_timer(int cpu, std::uint64_t lateness, const Path& path) noexcept;
    // The handler segment of a sample read on `cpu`, once it is over. Safe from any thread.
    void record_handler(int cpu, bool timer, std::uint64_t handler) noexcept;
    // Every CPU with samples, in CPU order. Safe from any thread.
    [[nodiscard]] std::vector<CpuLatency> snapshot() const;

  private:
    struct PerCpu;
    // The histograms of `cpu` (out of range: the last entry, CPU -1), allocated on first use;
    // nullptr when out of memory.
    PerCpu* at(int cpu) noexcept;

    std::unique_ptr<std::atomic<PerCpu*>[]> cpus_;
};

}  // namespace evfly::detail
