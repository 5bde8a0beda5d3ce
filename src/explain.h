// Internal header of the engine: explaining outliers ([explain] in the config).
//
// Every sample's path is recorded in segments (cpu_latency.h). With [explain] over set, a sample
// above the threshold is an outlier: its consumer completes its record once the handler is over
// (the handler segment), classify() gives it one cause from its segments and from what the pool
// was doing (ParkLog: which consumers were parked in epoll_wait, and when), and the OutlierStore
// counts it, keeps the slowest, logs it (at most one line a second) and hands it to the kernel
// tracer when one runs (tracer.h).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "episode.h"
#include "evfly/report.h"
#include "thread_annotations.h"

namespace evfly::detail {

// When one consumer was parked in epoll_wait: now, and its last kIntervals parks. Written by that
// consumer only (a few relaxed stores per epoll_wait), read by any consumer that classifies an
// outlier: a read racing a write only blurs one classification.
class ParkLog {
  public:
    static constexpr std::size_t kIntervals = 8;

    // The consumer parks (enters epoll_wait) at `at`; unpark() when it returns with events.
    void park(std::int64_t at) noexcept { since_.store(at, std::memory_order_relaxed); }
    void unpark(std::int64_t at) noexcept {
        const std::int64_t since = since_.load(std::memory_order_relaxed);
        const std::size_t slot = next_++ % kIntervals;
        from_[slot].store(since, std::memory_order_relaxed);
        to_[slot].store(at, std::memory_order_relaxed);
        since_.store(0, std::memory_order_relaxed);
    }
    [[nodiscard]] bool parked() const noexcept {
        return since_.load(std::memory_order_relaxed) != 0;
    }
    // Whether the consumer was parked at some time in [from, to].
    [[nodiscard]] bool parked_during(std::int64_t from, std::int64_t to) const noexcept;

  private:
    std::atomic<std::int64_t> since_{0};  // 0: not parked
    std::array<std::atomic<std::int64_t>, kIntervals> from_{};
    std::array<std::atomic<std::int64_t>, kIntervals> to_{};
    std::size_t next_ = 0;  // the consumer's own
};

// The cause of an outlier, from its segments (the largest of producer, wake-up and batch decides)
// and from what the pool was doing: a wake-up while a consumer was parked is slow waking, while
// none was, queueing; a wait in a batch behind handlers that overran their work is the handlers',
// behind others while another consumer was parked is the batch's, else queueing. Pure.
Cause classify(const Outlier& o) noexcept;

// Every outlier of the run: counts by cause, the slowest (at most `worst`, slowest first), and
// the log. Safe from any thread.
class OutlierStore {
  public:
    // Outliers above `log_over_ns` (0: all) log a line, at most one a second with the count of
    // those not logged; the summary keeps the `worst` slowest.
    void configure(std::uint32_t worst, std::int64_t log_over_ns) EXCLUDES(mutex_);
    // Calls `listener` (under the store's lock, so it must be quick) with each outlier added.
    void set_listener(std::function<void(const Outlier&)> listener) EXCLUDES(mutex_);
    void add(Outlier o) EXCLUDES(mutex_);
    // The kernel's account of outlier `id`, when it is still among the worst.
    void attach_trace(std::uint64_t id, std::string trace) EXCLUDES(mutex_);
    // Counts and the worst into `out` (its other fields untouched).
    void report_into(ExplainReport& out) const EXCLUDES(mutex_);

  private:
    mutable Mutex mutex_;
    std::uint32_t worst_size_ GUARDED_BY(mutex_) = 32;
    std::int64_t log_over_ns_ GUARDED_BY(mutex_) = 0;
    std::uint64_t next_id_ GUARDED_BY(mutex_) = 1;
    std::uint64_t total_ GUARDED_BY(mutex_) = 0;
    std::array<std::uint64_t, kCauses> causes_ GUARDED_BY(mutex_){};
    std::vector<Outlier> worst_ GUARDED_BY(mutex_);  // a min-heap on latency
    std::int64_t last_logged_ns_ GUARDED_BY(mutex_) = 0;
    std::uint64_t not_logged_ GUARDED_BY(mutex_) = 0;
    std::function<void(const Outlier&)> listener_ GUARDED_BY(mutex_);
};

}  // namespace evfly::detail
