// Internal header of the engine: what its threads share.
//
// One epoll instance that every fd is registered in; the stop eventfd (level-triggered: once
// written, every consumer leaves) and the retire eventfd (a semaphore: each unit ends one
// consumer, so the pool shrinks); the slot table (slots.h: who may touch a registration, and
// when); the recorder of every latency sample; the settings a reload changes in place; and the
// start-up handshake of the threads. The Engine owns it; producer and consumer threads hold a
// reference for their whole life.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>

#include "cpu_latency.h"
#include "evfly/engine.h"
#include "evfly/epoll.h"
#include "evfly/fd.h"
#include "explain.h"
#include "placement.h"
#include "slots.h"
#include "thread_annotations.h"

namespace evfly::detail {

struct Shared {
    explicit Shared(const TestHooks& test_hooks) : hooks(test_hooks) {}

    Epoll epoll;
    Fd stop_fd;    // level-triggered: once written, every consumer leaves
    Fd retire_fd;  // semaphore, one-shot: each unit read ends one consumer (the pool shrinks)
    SlotTable slots;
    CpuLatencyRecorder cpu_latency;  // every consumer's samples, by CPU
    // [explain]: the outlier thresholds in force (0: no outlier), the outliers, and where each
    // consumer parks (by consumer index, up to the largest index used).
    std::atomic<std::int64_t> over_eventfd_ns{0};
    std::atomic<std::int64_t> over_timerfd_ns{0};
    OutlierStore outliers;
    static constexpr std::uint32_t kMaxConsumers = 1024;
    std::unique_ptr<ParkLog[]> park_logs = std::make_unique<ParkLog[]>(kMaxConsumers);
    std::atomic<std::uint32_t> park_logs_used{0};
    std::atomic<std::uint32_t> max_events{64};
    std::atomic<std::int64_t> spin_ns{0};  // daemon.spin: a consumer's poll time after work
    std::atomic<bool> abandon{false};      // drain timed out: consumers stop at once
    std::atomic<bool> stopping{false};     // the engine stops: set before the stop eventfd
    // What threads get for placement fields left unset: evflyd's own, from the start.
    PlacementDefaults placement_defaults;
    // Fixed before any thread starts (see TestHooks); the wedge is taken by the first consumer
    // that handles an event, once.
    const TestHooks hooks;
    std::atomic<std::int64_t> wedge_ns{0};
    // Steady ns of the last "wall clock set" line: one line for a jump, not one per timer.
    std::atomic<std::int64_t> clock_jump_logged_ns{0};

    // Thread lifecycle: each thread counts itself in once it runs, and consumers count
    // themselves out when they leave.
    Mutex lifecycle_mutex;
    std::condition_variable_any lifecycle_cv;
    std::uint64_t started GUARDED_BY(lifecycle_mutex) = 0;
    void count_started() {
        {
            MutexLock lock(lifecycle_mutex);
            ++started;
        }
        lifecycle_cv.notify_all();
    }
    void count_exited() {
        { MutexLock lock(lifecycle_mutex); }
        lifecycle_cv.notify_all();
    }
};

}  // namespace evfly::detail
