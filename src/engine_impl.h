// Internal header of the engine: not part of evfly's public API; include only from src/.
//
// The engine's threads and what they share. The Engine owns the slot table (slots.h: who may
// touch a registration, and when), the producer specs with their threads (ProducerThread, in
// producer.cpp) and the consumer threads (ConsumerThread, in consumer.cpp). A consumer knows a
// slot's producer only as a SlotPool: its config and where per-event slots go back.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "cpu_latency.h"
#include "evfly/config.h"
#include "evfly/epoll.h"
#include "evfly/fd.h"
#include "placement.h"
#include "schedule.h"
#include "slots.h"

namespace evfly::detail {

class ProducerThread;

struct Shared;

// One [[producer]] table as it runs: its config, its threads and the epoch its schedule
// counts from. Lives until its threads are joined and every fd they registered is closed.
struct Spec {
    ProducerConfig config;
    std::int64_t epoch_realtime = 0;
    std::int64_t epoch_monotonic = 0;
    std::int64_t epoch_boottime = 0;
    std::vector<std::unique_ptr<ProducerThread>> threads;
    // Stall canary (supervisor thread only): an episode is counted when the oldest event in
    // flight gets older than stall_after, and ends when it is younger again.
    bool stalled = false;
    std::uint64_t stalls = 0;

    void set_epoch() noexcept;
    [[nodiscard]] std::int64_t epoch(clockid_t clock) const noexcept {
        return clock == CLOCK_REALTIME   ? epoch_realtime
               : clock == CLOCK_BOOTTIME ? epoch_boottime
                                         : epoch_monotonic;
    }
};

class ProducerThread final : public SlotPool {
  public:
    // `slots`: the thread's slots to start with; a per-event thread takes more from the table as
    // its fds in flight grow, up to max_in_flight.
    ProducerThread(Shared& shared, const Spec& spec, std::uint32_t index,
                   const std::vector<std::uint32_t>& slots);
    void start();
    // Stops firing; the thread then waits for its fds to come back until `deadline_ns` (steady).
    // Asked again, the earlier of the two deadlines holds.
    void request_stop(std::int64_t deadline_ns);
    // Set by the thread before it counts itself started (see ConsumerThread).
    std::atomic<pid_t> tid{0};
    std::string placement_error;
    [[nodiscard]] std::uint32_t index() const noexcept { return index_; }
    // True once the thread has returned from its body (join() will not block).
    [[nodiscard]] bool finished() const noexcept {
        return finished_.load(std::memory_order_acquire);
    }
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    void release_slots(const std::uint32_t* indices, std::size_t count) override;
    bool take_unit(Slot& slot, FireStamp& unit) override EXCLUDES(units_mutex_);
    // After join(): waits until every per-event fd has been consumed or `deadline_ns` passes,
    // and retires what is left of persistent and timer fds. True when nothing is outstanding.
    bool settle(std::int64_t deadline_ns);
    // After join() and with no consumer left: closes whatever per-event fds are still registered.
    std::uint64_t abandon_leftovers();

    // The slots this thread holds so far. Safe from any thread: a slot is published before it
    // is counted, and never moves.
    [[nodiscard]] std::span<const std::uint32_t> slots() const noexcept {
        return {slots_.get(), slot_count_.load(std::memory_order_acquire)};
    }
    // Fires the schedule called for up to `now_ns` (steady): see Schedule::due_by().
    [[nodiscard]] std::uint64_t due_by(std::int64_t now_ns) const noexcept {
        return schedule_.due_by(now_ns, fired.get());
    }

    // Schedule accounting (paced eventfd producers): late and skipped fires, and what was due.
    [[nodiscard]] const Schedule& schedule() const noexcept { return schedule_; }

    Counter fired;
    Counter value_written;
    Counter value_drained;  // persistent eventfd values read at retire
    Counter expirations_drained;
    Counter overruns_drained;
    Counter write_retries;
    Counter fd_exhaustion;
    Counter errors;

  private:
    void run(const std::stop_token& stop);
    void run_per_event(const std::stop_token& stop);
    void run_persistent(const std::stop_token& stop);
    void run_timers(const std::stop_token& stop);
    // Sleeps until `deadline` (steady ns) or a stop request; false when stopped.
    bool sleep_until(const std::stop_token& stop, std::int64_t deadline_ns);
    // When a paced thread fires first (steady ns): the threads of a spec are spread evenly over
    // one period from the spec's epoch, so N threads at R/s make one even stream of N*R/s.
    [[nodiscard]] std::int64_t first_fire() const noexcept;
    // Takes a free slot, waiting while max_in_flight fds are out; -1 when stopped.
    std::int64_t acquire_slot(const std::stop_token& stop);
    // Creates an fd with `make`, backing off while the process is out of fds; -1 when stopped.
    template <typename Make>
    int create_fd(const std::stop_token& stop, const char* what, Make make);
    bool wait_for_outstanding(std::int64_t deadline_ns);
    // The thread's last act as a per-event producer: waits for its fds to come back.
    void drain();
    void retire(Slot& slot);
    // Semaphore: records the stamps of the unit about to be written.
    void push_unit(Slot& slot, const FireStamp& unit) EXCLUDES(units_mutex_);
    // Takes `slots` as this thread's: owner, mode and counters set, generation bumped.
    void adopt(const std::vector<std::uint32_t>& slots);
    // Per-event: takes more slots from the table (doubling, up to max_in_flight); false when it
    // cannot.
    bool grow();
    // Counts this thread into the engine's start-up handshake, once.
    void started_once();
    // Starts the thread's schedule at its first fire (spread over one period within the spec).
    void start_schedule();
    // Paced: sleeps until the next fire is due and returns its due time (after any skip, which
    // is logged once per episode); flat out: returns 0 at once; -1 when stopped.
    std::int64_t wait_due(const std::stop_token& stop);
    // The fire due at `due` is made at `now` (steady ns): counts it late, or logs the end of a
    // skipping episode.
    void count_fire(std::int64_t due, std::int64_t now);
    // The thread stops firing: what the schedule still owed is skipped.
    void close_schedule();

    Shared& shared_;
    const Spec& spec_;
    std::string name_;
    const std::uint32_t slot_capacity_;       // max_in_flight (per-event), else what it was given
    std::unique_ptr<std::uint32_t[]> slots_;  // the first slot_count_ are this thread's
    std::atomic<std::uint32_t> slot_count_{0};
    bool table_full_logged_ = false;  // producer thread only
    std::uint32_t index_;             // this thread's number within its spec
    bool out_of_fds_ = false;         // producer thread only: in an episode of failed fd creation
    std::int64_t last_fd_failure_ns_ = 0;  // producer thread only
    std::uint64_t fd_failures_ = 0;        // producer thread only: failed attempts this episode
    bool counted_started_ = false;         // producer thread only
    Schedule schedule_;
    std::atomic<std::int64_t> drain_deadline_ns_{0};  // 0 until the first request_stop()
    std::atomic<bool> finished_{false};

    Mutex pool_mutex_;
    std::condition_variable_any pool_cv_;
    std::vector<std::uint32_t> returned_ GUARDED_BY(pool_mutex_);
    std::uint64_t returns_ GUARDED_BY(pool_mutex_) = 0;  // release_slots() calls
    bool waiting_ GUARDED_BY(pool_mutex_) = false;
    std::vector<std::uint32_t> free_;  // producer thread only (supervisor after join)
    // Semaphore: the stamps of the units written and not yet read, oldest first.
    Mutex units_mutex_;
    std::deque<FireStamp> units_ GUARDED_BY(units_mutex_);

    std::jthread thread_;
};

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
    Counter wakeups;        // epoll_wait returns that brought work
    Counter epoll_returns;  // every blocking epoll_wait return: what an idle pool keeps at 0
    Counter spin_polls;     // non-blocking epoll_wait calls while spinning (daemon.spin)
    Counter dispatched;
    Counter stale;
    Counter errors;
    Counter handler_errors;  // exceptions out of event handlers, caught and counted

  private:
    void run();
    void handle(std::uint64_t token);
    void take_retire_token();
    void handle_per_event(Slot& slot, std::uint32_t index);
    void handle_persistent(Slot& slot, std::uint32_t index, std::uint32_t generation);
    void handle_timer(Slot& slot, std::uint32_t index, std::uint32_t generation);
    void handle_semaphore(Slot& slot, std::uint32_t index, std::uint32_t generation);
    void on_clock_set(Slot& slot, int fd, const ProducerConfig& producer);
    // The handler proper: the debug line and the modelled work. An exception from it is caught
    // and counted here, so the consumer's own bookkeeping (close or re-arm) always completes.
    void serve(const ProducerConfig& producer, int fd, std::uint64_t value, std::int64_t latency_ns,
               int cpu, int fire_cpu);
    void spend(const ProducerConfig& producer);
    void log_event(const ProducerConfig& producer, int fd, std::uint64_t value,
                   std::int64_t latency_ns, int cpu, int fire_cpu);
    // Re-arms a persistent, semaphore or timer registration; a failure is counted and logged.
    void rearm(int fd, std::uint64_t token);
    // Records one eventfd sample in the pool's recorder: due -> consumed and written -> consumed,
    // in ns, under the CPU it is read on and split by `fire_cpu`. Returns the CPU it was read on.
    int record_eventfd(std::int64_t latency, std::int64_t delivery, int fire_cpu);
    // Hands the per-event slots closed in this batch back to their producers, one lock each.
    void flush_released();

    Shared& shared_;
    std::uint32_t index_;
    std::string name_;
    Placement placement_;
    bool stopping_ = false;
    bool wedge_armed_ = false;       // EVFLY_TEST_WEDGE_CONSUMER_MS is set and no event handled yet
    std::uint64_t served_ = 0;       // handler calls, for EVFLY_TEST_THROW_EVERY
    std::uint64_t timer_reads_ = 0;  // realtime timer reads, for EVFLY_TEST_TIMER_CANCEL_EVERY
    std::int64_t handler_error_logged_ns_ = 0;  // at most one handler-failure line a second
    std::uint64_t handler_errors_unlogged_ = 0;
    std::atomic<bool> exited_{false};
    // Per-event slots closed in the current batch, by owner; consumer thread only.
    std::vector<std::pair<SlotPool*, std::uint32_t>> released_;
    std::vector<std::uint32_t> release_scratch_;
    std::jthread thread_;
};

struct Shared {
    Epoll epoll;
    Fd stop_fd;    // level-triggered: once written, every consumer leaves
    Fd retire_fd;  // semaphore, one-shot: each unit read ends one consumer (the pool shrinks)
    SlotTable slots;
    CpuLatencyRecorder cpu_latency;  // every consumer's samples, by CPU
    std::atomic<std::uint32_t> max_events{64};
    std::atomic<std::int64_t> spin_ns{0};  // daemon.spin: a consumer's poll time after work
    std::atomic<bool> abandon{false};      // drain timed out: consumers stop at once
    // Test-only: the consumer that takes the first event spends this long on it
    // (EVFLY_TEST_WEDGE_CONSUMER_MS), so the tests can see the watchdog held back.
    std::atomic<std::int64_t> test_wedge_ns{0};
    // Test-only, fixed before any thread starts: every Nth event's handler throws
    // (EVFLY_TEST_THROW_EVERY), and eventfd producers write this value instead of 1
    // (EVFLY_TEST_EVENTFD_VALUE), to fill a counter towards its maximum.
    std::uint64_t test_throw_every = 0;
    std::uint64_t test_eventfd_value = 1;
    // What threads get for placement fields left unset: evflyd's own, from the start.
    PlacementDefaults placement_defaults;
    // Test-only: every Nth read of a realtime timer acts as if the wall clock had been set
    // (EVFLY_TEST_TIMER_CANCEL_EVERY): its expirations are dropped and ECANCELED handled.
    std::uint64_t test_timer_cancel_every = 0;
    // Test-only: every fd a producer creates fails with this errno (EVFLY_TEST_FD_ERRNO), as
    // under a seccomp filter that denies eventfd/timerfd_create.
    int test_fd_errno = 0;
    // Steady ns of the last "wall clock set" line: one line for a jump, not one per timer.
    std::atomic<std::int64_t> clock_jump_logged_ns{0};

    // Thread lifecycle: each thread counts itself in once it runs, and consumers count
    // themselves out when they leave.
    Mutex lifecycle_mutex;
    std::condition_variable_any lifecycle_cv;
    std::uint64_t started GUARDED_BY(lifecycle_mutex) = 0;
    std::uint64_t exited GUARDED_BY(lifecycle_mutex) = 0;
    void count_started() {
        {
            MutexLock lock(lifecycle_mutex);
            ++started;
        }
        lifecycle_cv.notify_all();
    }
    void count_exited() {
        {
            MutexLock lock(lifecycle_mutex);
            ++exited;
        }
        lifecycle_cv.notify_all();
    }
};

}  // namespace evfly::detail
