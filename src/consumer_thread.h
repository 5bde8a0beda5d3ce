// Internal header of the engine: one consumer of the pool.
//
// A consumer blocks in epoll_wait on the one shared instance (no timeout: an idle pool never
// wakes), and hands each event to the consumer half of its slot's fd mode: mode_per_event.cpp,
// mode_persistent.cpp, mode_semaphore.cpp and mode_timer.cpp keep it beside the producer's half.
// consumer.cpp is the loop, and what the modes share: the handler (debug line and modelled
// work), re-arming, recording a sample, handing per-event slots back.
#pragma once

#include <sys/epoll.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "clock.h"
#include "episode.h"
#include "evfly/config.h"
#include "evfly/report.h"
#include "shared.h"
#include "slots.h"

namespace evfly::detail {

class alignas(64) ConsumerThread {
  public:
    ConsumerThread(Shared& shared, std::uint32_t index, Placement placement);
    void start();
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    [[nodiscard]] std::uint32_t index() const noexcept { return index_; }
    // True once the thread has left its loop (stop or retire) and will touch nothing more.
    [[nodiscard]] bool exited() const noexcept { return exited_.load(std::memory_order_acquire); }

    // Set by the thread before it counts itself started: its kernel thread id, and why its
    // placement could not be applied ("" when it was, or there was none).
    std::atomic<pid_t> tid{0};
    std::string placement_error;
    // Heartbeat: steady ns of the start of the event in hand, 0 while waiting in epoll_wait.
    std::atomic<std::int64_t> busy_since{0};
    // The pool's counts this consumer adds to (report.h); an idle pool keeps epoll_returns at 0.
    PoolCountsOf<Counter> counts;

  private:
    // After a failure, a consumer waits this long before it tries again.
    static constexpr std::int64_t kFailureBackoffNs = 10'000'000;

    void run();
    // One epoll_wait and the events it brings.
    void serve_batch(std::vector<epoll_event>& events, std::int64_t& spin_until);
    int wait(std::span<epoll_event> events, int timeout_ms);
    // An exception out of a batch or an event: counted, logged once per episode.
    void failed(const char* what, const std::exception& e);
    // After a failure: waits, and notices a stop the consumer cannot see otherwise.
    void back_off();
    void handle(std::uint64_t token);
    void take_retire_token();
    // The consumer halves of the fd modes, each in its mode's file. Those that check the
    // generation again under the slot's lock return false when the event turned out stale.
    void handle_per_event(Slot& slot, std::uint32_t index);
    bool handle_persistent(Slot& slot, std::uint32_t index, std::uint64_t generation);
    bool handle_semaphore(Slot& slot, std::uint32_t index, std::uint64_t generation);
    bool handle_timer(Slot& slot, std::uint32_t index, std::uint64_t generation);
    void on_clock_set(Slot& slot, int fd, const ProducerConfig& producer);
    // The handler proper: the debug line and the modelled work. An exception from it is caught
    // and counted here, so the consumer's own bookkeeping (close or re-arm) always completes.
    void serve(const Handler& handler, int fd, std::uint64_t value, std::int64_t latency_ns,
               int cpu, int fire_cpu);
    void spend(const Handler& handler);
    void log_event(const Handler& handler, int fd, std::uint64_t value, std::int64_t latency_ns,
                   int cpu, int fire_cpu);
    // Re-arms a persistent, semaphore or timer registration; a failure is counted and logged.
    void rearm(int fd, std::uint64_t token);
    // A read of `fd` (an eventfd or a timerfd, `what`) failed with `err`: counted and logged.
    void read_failed(const char* what, int fd, int err);
    // Records one eventfd sample: a fire due at `due` and written at `written` (steady ns),
    // fired on `fire_cpu`, read now at `read` by `handler`'s producer. Its latency, delivery and
    // path go to the pool's recorder under the CPU it is read on; its handler segment follows at
    // the next event or the batch's end. Returns the CPU it was read on.
    int record_eventfd(std::int64_t due, std::int64_t written, std::int64_t read, int fire_cpu,
                       const Handler& handler) {
        const int cpu = current_cpu();
        const CpuLatencyRecorder::Path path{nonnegative(written - due),
                                            nonnegative(batch_returned_ - written),
                                            nonnegative(turn_ - batch_returned_)};
        shared_.cpu_latency.record_eventfd(cpu, fire_cpu, nonnegative(read - due),
                                           nonnegative(read - written), path);
        span_ = Span{true, false, turn_, 0, cpu};
        if (--probe_countdown_ == 0) [[unlikely]]
            probe_arrival(written);
        if (const std::int64_t over = shared_.over_eventfd_ns.load(std::memory_order_relaxed);
            over != 0 && read - due > over) [[unlikely]]
            found_outlier(handler, due, written, read, cpu, fire_cpu, path);
        return cpu;
    }
    // Records one timer read now at `read` (steady ns), `lateness` behind its expiry.
    int record_timer(std::int64_t lateness, std::int64_t read, const Handler& handler) {
        const int cpu = current_cpu();
        const std::int64_t expiry = read - lateness;
        const CpuLatencyRecorder::Path path{0, nonnegative(batch_returned_ - expiry),
                                            nonnegative(turn_ - batch_returned_)};
        shared_.cpu_latency.record_timer(cpu, nonnegative(lateness), path);
        span_ = Span{true, true, turn_, 0, cpu};
        if (--probe_countdown_ == 0) [[unlikely]]
            probe_arrival(expiry);
        if (const std::int64_t over = shared_.over_timerfd_ns.load(std::memory_order_relaxed);
            over != 0 && lateness > over) [[unlikely]]
            found_outlier(handler, expiry, expiry, read, cpu, -1, path);
        return cpu;
    }
    static std::uint64_t nonnegative(std::int64_t ns) noexcept {
        return static_cast<std::uint64_t>(ns > 0 ? ns : 0);
    }
    // Whether every consumer was busy (none parked) at `at`, when a sample became ready: counted
    // in arrival_probes and arrivals_found_all_busy, one sample in kProbeEvery.
    static constexpr std::uint32_t kProbeEvery = 16;
    void probe_arrival(std::int64_t at) noexcept;
    // An outlier among this batch's samples: kept until its handler is over.
    void found_outlier(const Handler& handler, std::int64_t due, std::int64_t written,
                       std::int64_t read, int cpu, int fire_cpu,
                       const CpuLatencyRecorder::Path& path);
    // The handler of the sample in hand is over at `now`: its segment is recorded, and an
    // outlier among them completed and stored.
    void finish_span(std::int64_t now) {
        if (span_.pending) end_span(now);
    }
    void end_span(std::int64_t now);
    // Hands the per-event slots closed in this batch back to their producers, one lock each.
    void flush_released();

    Shared& shared_;
    std::uint32_t index_;
    std::string name_;
    Placement placement_;
    bool stopping_ = false;
    bool wedge_armed_ = false;       // test hook: a wedge is set and no event handled yet
    std::uint64_t served_ = 0;       // handler calls, for the throw_every test hook
    std::uint64_t timer_reads_ = 0;  // realtime timer reads, for the timer_cancel_every hook
    std::int64_t handler_error_logged_ns_ = 0;  // at most one handler-failure line a second
    std::uint64_t handler_errors_unlogged_ = 0;
    std::atomic<bool> exited_{false};
    Episode failures_;           // exceptions out of a batch or an event
    Episode wait_failures_;      // epoll_wait failures
    const int fail_waits_with_;  // test hook (epoll_wait_errno); 0
    // Where this consumer parks (null past Shared::kMaxConsumers), and its path stamps, all
    // consumer thread only: when the current batch's epoll_wait returned, when the event in hand
    // began, the CPU it parked on, and what handlers ahead in this batch ran beyond their work.
    ParkLog* park_log_ = nullptr;
    bool parked_ = false;
    std::int64_t batch_returned_ = 0;
    std::int64_t turn_ = 0;
    int park_cpu_ = -1;
    std::int64_t overrun_ahead_ = 0;
    std::uint32_t probe_countdown_ = kProbeEvery;
    // The sample in hand, whose handler segment ends at the next event or the batch's end.
    struct Span {
        bool pending = false;
        bool timer = false;
        std::int64_t turn = 0;
        std::int64_t work_ns = 0;
        int cpu = -1;
    } span_;
    // Draws each event's work (work_dist other than fixed); consumer thread only, made at its
    // first draw (2.5 KiB). Seeded from the kernel: which consumer serves which event is the
    // scheduler's choice, so draws are not reproducible anyway.
    std::unique_ptr<std::mt19937_64> work_rng_;
    std::optional<Outlier> pending_outlier_;
    // Per-event slots closed in the current batch, by owner; consumer thread only.
    std::vector<std::pair<SlotPool*, std::uint32_t>> released_;
    std::vector<std::uint32_t> release_scratch_;
    std::jthread thread_;
};

}  // namespace evfly::detail
