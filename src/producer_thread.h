// Internal header of the engine: one [[producer]] table as it runs (Spec), and each of its
// threads (ProducerThread).
//
// A producer thread follows its schedule (schedule.h) and fires through the fd mode of its table.
// Each mode keeps both halves of its protocol, the producer's and the consumer's, in one file:
// mode_per_event.cpp, mode_persistent.cpp, mode_semaphore.cpp and mode_timer.cpp; this class is
// the loop that drives them, and producer.cpp what the modes share (the thread, its slots, fd
// creation, retiring). A consumer knows a producer only as a SlotPool (slots.h).
#pragma once

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <deque>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "episode.h"
#include "evfly/config.h"
#include "schedule.h"
#include "shared.h"
#include "slots.h"
#include "thread_annotations.h"

namespace evfly::detail {

class ProducerThread;

// One [[producer]] table as it runs: its config, its threads and the epoch its schedule
// counts from. Lives until its threads are joined and every fd they registered is closed.
struct Spec {
    ProducerConfig config;
    // The seed of its arrivals (config.seed, or drawn when the table started), and where its
    // schedule starts: the phase_index-th of phase_of tables that take turns over one period.
    std::uint64_t seed = 0;
    std::uint32_t phase_index = 0;
    std::uint32_t phase_of = 1;
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

// Cache lines: the SlotPool base (what consumers read on every event: the vtable, the config,
// the Handler) fills the first line on its own; the producer's counters, written on every fire,
// start on a line of their own, and so does the free-slot hand-back that consumers write. Sharing
// a line between the first two cost 2-3 % of per-event throughput (tests/bench/ab).
class alignas(64) ProducerThread final : public SlotPool {
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
    // Schedule accounting (paced eventfd producers): late and skipped fires, and what was due.
    [[nodiscard]] const Schedule& schedule() const noexcept { return schedule_; }
    // Fires the schedule called for up to `now_ns` (steady): see Schedule::due_by().
    [[nodiscard]] std::uint64_t due_by(std::int64_t now_ns) const noexcept {
        return schedule_.due_by(now_ns, fired.get());
    }

    alignas(64) Counter fired;
    Counter value_written;
    Counter value_drained;  // persistent eventfd values read at retire
    Counter expirations_drained;
    Counter overruns_drained;
    Counter write_retries;
    Counter fd_exhaustion;
    Counter errors;

  private:
    void run(const std::stop_token& stop);
    // The fd modes, each in its own file with the consumer's half of its protocol.
    void run_per_event(const std::stop_token& stop);                   // mode_per_event.cpp
    void run_persistent(const std::stop_token& stop, bool semaphore);  // mode_persistent.cpp
    void run_timers(const std::stop_token& stop);                      // mode_timer.cpp
    // Semaphore: records the stamps of the unit about to be written (mode_semaphore.cpp).
    void push_unit(Slot& slot, const FireStamp& unit) EXCLUDES(units_mutex_);
    // Semaphore: reads every unit left at retire and forgets their stamps (mode_semaphore.cpp).
    void drain_units(Slot& slot, int fd) EXCLUDES(units_mutex_);

    // Sleeps until `deadline` (steady ns) or a stop request; false when stopped.
    bool sleep_until(const std::stop_token& stop, std::int64_t deadline_ns);
    // When a paced thread fires first (steady ns): the threads of a spec are spread evenly over
    // one period from the spec's epoch, so N threads at R/s make one even stream of N*R/s.
    [[nodiscard]] std::int64_t first_fire() const noexcept;
    // An fd a producer creates: an eventfd holding `initial`, or a timerfd on `clock`.
    struct NewFd {
        bool timer = false;
        unsigned int initial = 0;
        int flags = 0;
        clockid_t clock = CLOCK_MONOTONIC;
    };
    // Creates an fd, backing off while the process is out of fds (each episode logged once);
    // -1 when stopped. The first try is inline: on the per-event path it is one syscall.
    int create_fd(const std::stop_token& stop, const NewFd& what) {
        if (shared_.hooks.fd_errno == 0 && !fd_failures_.active()) {
            const int fd = what.timer ? ::timerfd_create(what.clock, what.flags)
                                      : ::eventfd(what.initial, what.flags);
            if (fd >= 0) return fd;
        }
        return create_fd_retrying(stop, what);
    }
    int create_fd_retrying(const std::stop_token& stop, const NewFd& what);
    // Registers `fd` for `slot` (one-shot, under the slot's current generation); 0 or an errno.
    int register_fd(std::uint32_t index, int fd) {
        Slot& slot = shared_.slots[index];
        slot.fd.store(fd, std::memory_order_relaxed);
        const std::uint64_t generation = slot.generation.load(std::memory_order_relaxed);
        const int err = shared_.hooks.epoll_add_errno != 0
                            ? shared_.hooks.epoll_add_errno
                            : shared_.epoll.add(fd, kOneShotEvents, make_token(index, generation));
        if (err != 0) slot.fd.store(-1, std::memory_order_relaxed);
        return err;
    }
    // Persistent, semaphore and timer slots: removes the registration, reads what is left and
    // closes the fd, under the slot's mutex.
    void retire(Slot& slot);
    // Takes `slots` as this thread's: owner, mode and counters set, generation bumped.
    void adopt(const std::vector<std::uint32_t>& slots);
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

    // Per-event slots (per_event_pool.cpp): a free list this thread takes from, refilled by
    // the consumers' release_slots().
    // Takes a free slot, waiting while max_in_flight fds are out; -1 when stopped.
    std::int64_t acquire_slot(const std::stop_token& stop);
    // Takes more slots from the table (doubling, up to max_in_flight); false when it cannot.
    bool grow();
    // The thread's last act as a per-event producer: waits for its fds to come back.
    void drain();
    bool wait_for_outstanding(std::int64_t deadline_ns);

    Shared& shared_;
    const Spec& spec_;
    std::string name_;
    const std::uint32_t slot_capacity_;       // max_in_flight (per-event), else what it was given
    std::unique_ptr<std::uint32_t[]> slots_;  // the first slot_count_ are this thread's
    std::atomic<std::uint32_t> slot_count_{0};
    bool table_full_logged_ = false;  // producer thread only
    std::uint32_t index_;             // this thread's number within its spec
    Episode fd_failures_;             // producer thread only: failed fd creation
    Episode add_failures_;            // producer thread only: failed per-event registrations
    bool counted_started_ = false;    // producer thread only
    Schedule schedule_;
    std::atomic<std::int64_t> drain_deadline_ns_{0};  // 0 until the first request_stop()
    std::atomic<bool> finished_{false};

    alignas(64) Mutex pool_mutex_;
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

}  // namespace evfly::detail
