// Engine: the producers, the one shared edge-triggered epoll instance and the consumer pool.
//
// Producers create, register and fire eventfds and timerfds; consumers block in epoll_wait on the
// shared instance (no timeout: an idle engine never wakes) and consume what fires. Every source
// is registered EPOLLIN|EPOLLET|EPOLLONESHOT under a token (slot index + generation), so exactly
// one consumer owns an fd between a wake-up and its re-arm or close.
//
// What it promises: exact accounting (every value written is either read or reported as lost),
// no fd leaked, every thread joined by stop() or the destructor. What it does not: real-time
// guarantees; latency is measured, not bounded.
//
// Live changes: reconfigure() applies a new config to the running engine. Producers whose table is
// unchanged keep running untouched; a removed or changed producer stops firing, its fds are
// drained, and its counts stay in the reports under its name; the consumer pool grows or shrinks
// in place. Nothing is lost on the way.
//
// Threading: every member function runs on one thread (the supervisor), while the engine's own
// threads run.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "evfly/config.h"
#include "evfly/report.h"

namespace evfly {

// Test-only hooks: faults and slow paths the tests cause on purpose. evflyd takes them from
// EVFLY_TEST_* environment variables (from_environment() logs a warning for each one set); a
// production run has none.
struct TestHooks {
    // EVFLY_TEST_WEDGE_CONSUMER_MS: the consumer that takes the first event spends this long on
    // it (the watchdog and the stall canary see a stuck consumer).
    std::int64_t wedge_consumer_ns = 0;
    std::uint64_t throw_every = 0;  // EVFLY_TEST_THROW_EVERY: every Nth handler throws
    // EVFLY_TEST_EVENTFD_VALUE: eventfd producers write this instead of 1 (to fill a counter).
    std::uint64_t eventfd_value = 1;
    // EVFLY_TEST_TIMER_CANCEL_EVERY: every Nth read of a realtime timer acts as if the wall
    // clock had been set (ECANCELED).
    std::uint64_t timer_cancel_every = 0;
    // EVFLY_TEST_FD_ERRNO: every fd a producer creates fails with this errno, as under a
    // seccomp filter that denies eventfd/timerfd_create.
    int fd_errno = 0;
    // EVFLY_TEST_EPOLL_ADD_ERRNO: every registration of a producer's fd fails with this errno
    // (as when max_user_watches is reached).
    int epoll_add_errno = 0;
    // EVFLY_TEST_SETTIME_ERRNO: every timerfd_settime of a timer producer fails with this errno.
    int settime_errno = 0;
    // EVFLY_TEST_EPOLL_WAIT_ERRNO: every consumer's epoll_wait fails with this errno.
    int epoll_wait_errno = 0;

    static TestHooks from_environment();
};

class Engine {
  public:
    // Creates the epoll instance, the stop eventfd and the slot table. Throws std::system_error.
    explicit Engine(const Config& config, const TestHooks& hooks = {});
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Starts the consumers, then the producers; returns once every thread runs and every timer
    // is armed, or is waiting for a file descriptor to arm it (the process is out of fds).
    // Throws std::system_error when a thread cannot be started.
    void start();

    // Stops the producers, waits until every value written has been read (or `deadline`), then
    // stops and joins the consumers and closes every fd. Returns true when nothing was left
    // unread. Idempotent.
    bool stop(std::chrono::steady_clock::time_point deadline);

    // Applies `next` (daemon.consumers, daemon.max_events, daemon.shutdown_timeout and the
    // producers) and logs each change. Returns true when anything changed. A removed producer is
    // drained for at most next.daemon.shutdown_timeout; fds still out then are drained later.
    // Throws std::length_error when the new producers need more slots than the engine can
    // hold, before changing anything, and std::system_error when a thread cannot be started.
    bool reconfigure(const Config& next);

    // Joins consumers that have left the pool and releases producers that have finished
    // draining. Cheap. Returns true while something is left to collect (a removed producer still
    // draining, a consumer asked to leave still busy): the caller should come back.
    bool collect();

    void report_into(Report& out) const;

    // Stall canary: logs a warning naming the producer, the fd and the age when a producer's
    // oldest event in flight is older than `limit`, once per episode, and counts the episode in
    // the producer's `stalls`. Returns when to look again: `limit` while anything fires or is in
    // flight; with only timers and nothing in flight, after the next expiry plus `limit`; 0
    // (never) when nothing is left to fire.
    std::chrono::nanoseconds check_stalls(std::chrono::nanoseconds limit);

    // Warm-up: latency recorded from begin_warmup() to end_warmup() is left out of the reported
    // histograms (counts are not); the reports say how many samples were left out.
    void begin_warmup();

    // [explain]: the outlier thresholds, how many outliers are kept and logged. Applied in
    // place, at any time.
    void set_explain(const Config::Explain& explain);
    // Sets the outlier thresholds in force: none during a warm-up; `over`; or, with `over` a
    // percentile, that percentile of the latency measured so far (once there are enough
    // samples for it).
    void update_outlier_thresholds();
    void end_warmup();

    // Consumers that have spent longer than `limit` on one event (a stuck handler), by index.
    // An idle consumer, blocked in epoll_wait, is never stuck. Like every member, supervisor
    // thread only: it walks the consumer list, which reloads change.
    [[nodiscard]] std::vector<std::uint32_t> stuck_consumers(std::chrono::nanoseconds limit) const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace evfly
