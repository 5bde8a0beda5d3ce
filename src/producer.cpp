#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

#include "engine_impl.h"
#include "evfly/fd.h"
#include "evfly/log.h"

namespace evfly::detail {
namespace {

constexpr std::int64_t kSecond = 1'000'000'000;
// How long a producer waits for an fd to come back before trying again when the process is out
// of descriptors (or fd creation fails otherwise): from 1 ms, doubling to 100 ms. A consumer
// closing one of ours wakes it sooner.
constexpr std::int64_t kFdBackoffMinNs = 1'000'000;
constexpr std::int64_t kFdBackoffMaxNs = 100'000'000;
constexpr std::int64_t kFdBackoffNs = 5'000'000;  // after a failed epoll_ctl ADD
// Failures less than this apart are one episode: logged and counted once.
constexpr std::int64_t kFdEpisodeGapNs = kSecond;
std::int64_t period_of(std::uint64_t rate) noexcept {
    return rate == 0 ? 0 : kSecond / static_cast<std::int64_t>(rate);
}

}  // namespace

ProducerThread::ProducerThread(Shared& shared, const Spec& spec, std::uint32_t index,
                               const std::vector<std::uint32_t>& slots)
    : SlotPool(spec.config),
      shared_(shared),
      spec_(spec),
      name_("producer-" + config_.name + "-" + std::to_string(index)),
      slot_capacity_(config_.kind == ProducerKind::eventfd && config_.fd_mode == FdMode::per_event
                         ? config_.max_in_flight
                         : static_cast<std::uint32_t>(slots.size())),
      slots_(std::make_unique_for_overwrite<std::uint32_t[]>(slot_capacity_)),
      index_(index),
      schedule_(config_.kind == ProducerKind::eventfd ? period_of(config_.rate) : 0) {
    adopt(slots);
}

void ProducerThread::adopt(const std::vector<std::uint32_t>& slots) {
    const bool per_event =
        config_.kind == ProducerKind::eventfd && config_.fd_mode == FdMode::per_event;
    const SlotMode mode = config_.kind == ProducerKind::timerfd  ? SlotMode::timer
                          : per_event                            ? SlotMode::per_event
                          : config_.fd_mode == FdMode::semaphore ? SlotMode::semaphore
                                                                 : SlotMode::persistent;
    std::uint32_t count = slot_count_.load(std::memory_order_relaxed);
    assert(count + slots.size() <= slot_capacity_ && "never more slots than max_in_flight");
    for (const std::uint32_t s : slots) {
        Slot& slot = shared_.slots[s];
        slot.owner.store(this, std::memory_order_relaxed);
        slot.mode.store(mode, std::memory_order_release);
        slot.value_read.reset();
        slot.overruns.reset();
        slot.clock_jumps.reset();
        slot.stamp.store(0, std::memory_order_relaxed);
        slot.written.store(0, std::memory_order_relaxed);
        // Publishes the fields above to any consumer that sees a registration of this slot; a
        // stale event for the slot's previous owner no longer matches.
        slot.generation.fetch_add(1, std::memory_order_release);
        slots_[count++] = s;
    }
    // The supervisor reads the slots up to this count (reports, the canary): publish them.
    slot_count_.store(count, std::memory_order_release);
    // First slot on top, so a lightly loaded producer keeps reusing the same few slots.
    if (per_event) free_.insert(free_.begin(), slots.rbegin(), slots.rend());
}

bool ProducerThread::grow() {
    const std::uint32_t count = slot_count_.load(std::memory_order_relaxed);
    if (count >= slot_capacity_) return false;
    // Double what this thread has, up to max_in_flight: slots (and their memory) in proportion
    // to what is really in flight.
    const std::uint32_t more = std::min(std::max(count, 1u), slot_capacity_ - count);
    try {
        adopt(shared_.slots.allocate(more));
    } catch (const std::length_error&) {
        if (!table_full_logged_) {
            table_full_logged_ = true;
            log::emit(log::Level::warn, "slot table full; this producer keeps what it has",
                      {{"producer", config_.name}, {"in_flight", count}});
        }
        return false;
    }
    return true;
}

void ProducerThread::started_once() {
    if (counted_started_) return;
    counted_started_ = true;
    shared_.count_started();
}

void ProducerThread::start() {
    thread_ = std::jthread([this](const std::stop_token& stop) { run(stop); });
}

void ProducerThread::request_stop(std::int64_t deadline_ns) {
    {
        MutexLock lock(pool_mutex_);
        const std::int64_t current = drain_deadline_ns_.load(std::memory_order_relaxed);
        drain_deadline_ns_.store(current == 0 ? deadline_ns : std::min(current, deadline_ns),
                                 std::memory_order_relaxed);
    }
    pool_cv_.notify_all();  // a drain already waiting sees the new deadline
    thread_.request_stop();
}

void ProducerThread::run(const std::stop_token& stop) {
    log::set_thread_name(name_);
    // Whatever happens below, the supervisor learns that the thread is done.
    struct Finished {
        std::atomic<bool>& flag;
        ~Finished() { flag.store(true, std::memory_order_release); }
    } finished{finished_};
    tid.store(current_tid(), std::memory_order_relaxed);
    if (!config_.placement.empty())
        placement_error = apply_placement(config_.placement, shared_.placement_defaults, 0, index_,
                                          "producer." + config_.name + ".");
    // Never let an exception end a thread silently: log it and leave this producer stopped.
    try {
        if (config_.kind == ProducerKind::timerfd) {
            run_timers(stop);
        } else if (config_.fd_mode == FdMode::per_event) {
            started_once();
            run_per_event(stop);
        } else {
            run_persistent(stop);
        }
    } catch (const std::exception& e) {
        started_once();
        errors.add();
        log::emit(log::Level::err, "producer failed",
                  {{"producer", config_.name}, {"error", e.what()}});
    }
}

std::int64_t ProducerThread::first_fire() const noexcept {
    if (schedule_.flat_out()) return steady_ns();
    // steady_clock is CLOCK_MONOTONIC on Linux, the clock of epoch_monotonic.
    return spec_.epoch_monotonic + schedule_.period() * static_cast<std::int64_t>(index_) /
                                       static_cast<std::int64_t>(config_.threads);
}

void ProducerThread::start_schedule() { schedule_.begin(first_fire()); }

std::int64_t ProducerThread::wait_due(const std::stop_token& stop) {
    if (schedule_.flat_out()) return 0;
    if (!sleep_until(stop, schedule_.next_due())) return -1;
    const Schedule::Take take = schedule_.take(steady_ns());
    if (take.behind_began)
        log::emit(log::Level::warn, "producer behind its schedule; skipping what is overdue",
                  {{"producer", config_.name},
                   {"behind_s", static_cast<double>(take.behind_ns) / 1e9},
                   {"skipped", take.skipped},
                   {"max_catch_up_s", static_cast<double>(Schedule::kMaxCatchUpNs) / 1e9}});
    return take.due;
}

void ProducerThread::count_fire(std::int64_t due, std::int64_t now) {
    if (const Schedule::Made made = schedule_.fired(due, now); made.caught_up)
        log::emit(log::Level::info, "producer back on its schedule",
                  {{"producer", config_.name}, {"skipped_in_episode", made.skipped_in_episode}});
}

void ProducerThread::close_schedule() { schedule_.close(steady_ns(), fired.get()); }

bool ProducerThread::sleep_until(const std::stop_token& stop, std::int64_t deadline_ns) {
    const auto deadline =
        std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns));
    MutexLock lock(pool_mutex_);
    pool_cv_.wait_until(lock, stop, deadline, [] { return false; });
    return !stop.stop_requested();
}

std::int64_t ProducerThread::acquire_slot(const std::stop_token& stop) {
    if (free_.empty()) {
        {
            MutexLock lock(pool_mutex_);
            free_.swap(returned_);
        }
        if (free_.empty()) (void)grow();
    }
    if (free_.empty()) {
        MutexLock lock(pool_mutex_);
        if (returned_.empty()) {
            waiting_ = true;
            pool_cv_.wait(lock, stop,
                          [this]() REQUIRES(pool_mutex_) { return !returned_.empty(); });
            waiting_ = false;
        }
        // Take everything the consumers handed back in one go: one lock per batch, not per event.
        free_.swap(returned_);
    }
    if (free_.empty()) return -1;  // stopped
    const std::uint32_t index = free_.back();
    free_.pop_back();
    return index;
}

void ProducerThread::release_slots(const std::uint32_t* indices, std::size_t count) {
    MutexLock lock(pool_mutex_);
    returned_.insert(returned_.end(), indices, indices + count);
    ++returns_;
    if (waiting_) pool_cv_.notify_one();
}

template <typename Make>
int ProducerThread::create_fd(const std::stop_token& stop, const char* what, Make make) {
    std::int64_t backoff_ns = kFdBackoffMinNs;
    while (!stop.stop_requested()) {
        int fd = -1;
        if (shared_.test_fd_errno == 0) {
            fd = make();
        } else {
            errno = shared_.test_fd_errno;  // test-only: EVFLY_TEST_FD_ERRNO
        }
        if (fd >= 0) {
            // The episode is over once fds have come easily for a while: a producer at its
            // limit takes each fd as it comes back, and that is one episode, not hundreds.
            if (out_of_fds_ && steady_ns() - last_fd_failure_ns_ > kFdEpisodeGapNs) {
                out_of_fds_ = false;
                log::emit(log::Level::info, "file descriptors available again",
                          {{"producer", config_.name}, {"failed_attempts", fd_failures_}});
                fd_failures_ = 0;
            }
            return fd;
        }
        const int err = errno;
        // Whatever the error, this thread is up: never hold up the engine's start (nor, with
        // it, the supervisor and its signals) waiting for an fd.
        started_once();
        const std::int64_t now = steady_ns();
        const bool new_episode = !out_of_fds_ || now - last_fd_failure_ns_ > kFdEpisodeGapNs;
        out_of_fds_ = true;
        last_fd_failure_ns_ = now;
        ++fd_failures_;
        if (err == EMFILE || err == ENFILE || err == ENOMEM) {
            if (new_episode) {
                fd_exhaustion.add();
                log::emit(
                    log::Level::warn, "out of file descriptors, backing off",
                    {{"producer", config_.name}, {"syscall", what}, {"error", errno_text(err)}});
            }
        } else {
            errors.add();
            if (new_episode)
                log::emit(
                    log::Level::err, "cannot create fd; retrying with back-off",
                    {{"producer", config_.name}, {"syscall", what}, {"error", errno_text(err)}});
        }
        // Wait for one of our fds to come back (a new return, not one already waiting in
        // returned_), or the back-off, which doubles up to kFdBackoffMaxNs while this lasts.
        MutexLock lock(pool_mutex_);
        const std::uint64_t seen = returns_;
        waiting_ = true;
        pool_cv_.wait_for(lock, stop, std::chrono::nanoseconds(backoff_ns),
                          [this, seen]() REQUIRES(pool_mutex_) { return returns_ != seen; });
        waiting_ = false;
        backoff_ns = std::min(backoff_ns * 2, kFdBackoffMaxNs);
    }
    return -1;
}

void ProducerThread::run_per_event(const std::stop_token& stop) {
    start_schedule();
    const std::uint64_t value = shared_.test_eventfd_value;
    // fire = "create": the eventfd is born holding its value (eventfd(2) takes an unsigned int),
    // and registering it is the fire: create, register, read, close.
    const bool create = config_.fire == FireMode::create && value <= UINT_MAX;
    const auto initial = static_cast<unsigned int>(create ? value : 0);
    while (!stop.stop_requested()) {
        const std::int64_t due_or_stop = wait_due(stop);
        if (due_or_stop < 0) break;
        std::int64_t due = due_or_stop;
        const std::int64_t acquired = acquire_slot(stop);
        if (acquired < 0) break;
        const auto index = static_cast<std::uint32_t>(acquired);
        const int fd = create_fd(
            stop, "eventfd", [initial] { return ::eventfd(initial, EFD_CLOEXEC | EFD_NONBLOCK); });
        if (fd < 0) {
            free_.push_back(index);
            break;
        }
        Slot& slot = shared_.slots[index];
        const std::uint32_t generation = slot.generation.load(std::memory_order_relaxed);
        slot.fd.store(fd, std::memory_order_relaxed);
        // Count and stamp before the fd can be read: for "write" that is the write(), for
        // "create" the registration (an fd registered readable is reported at once). A consumer
        // may count the value before the call returns, and written must never trail read.
        const auto fire = [&] {
            fired.add();
            value_written.add(value);
            const std::int64_t now = steady_ns();
            if (schedule_.flat_out()) {
                due = now;  // no schedule: due when written
            } else {
                count_fire(due, now);
            }
            // Latency counts from the due time, however long the wait for a slot or an fd took;
            // the write stamp goes last, with release, and the consumer loads it first.
            slot.stamp.store(due, std::memory_order_relaxed);
            slot.fire_cpu.store(current_cpu(), std::memory_order_relaxed);
            slot.written.store(now, std::memory_order_release);
        };
        const auto unfire = [&] {
            fired.sub(1);
            value_written.sub(value);
            slot.written.store(0, std::memory_order_relaxed);
        };
        if (create) fire();
        if (const int err = shared_.epoll.add(fd, kOneShotEvents, make_token(index, generation));
            err != 0) {
            // ENOSPC (max_user_watches) or ENOMEM: treat like fd exhaustion and try again later.
            if (create) unfire();
            ::close(fd);
            slot.fd.store(-1, std::memory_order_relaxed);
            free_.push_back(index);
            errors.add();
            log::emit(log::Level::warn, "epoll_ctl ADD failed",
                      {{"producer", config_.name}, {"error", errno_text(err)}});
            sleep_until(stop, steady_ns() + kFdBackoffNs);
            continue;
        }
        if (create) continue;
        fire();
        // A fresh counter is 0, so this write cannot meet a full counter; an error here is
        // unexpected and leaves the fd registered and unfired, so retire it ourselves.
        if (::write(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) {
            const int err = errno;
            unfire();
            errors.add();
            log::emit(log::Level::err, "eventfd write failed",
                      {{"producer", config_.name}, {"fd", fd}, {"error", errno_text(err)}});
            (void)shared_.epoll.remove(fd);
            ::close(fd);
            slot.fd.store(-1, std::memory_order_relaxed);
            slot.generation.store(generation + 1, std::memory_order_release);
            free_.push_back(index);
        }
    }
    close_schedule();
    drain();
}

void ProducerThread::drain() {
    // Every fd this thread fired is consumed and closed by a consumer; wait for the last one, or
    // the drain deadline, which a later request_stop() may bring forward.
    MutexLock lock(pool_mutex_);
    waiting_ = true;
    while (free_.size() + returned_.size() != slot_count_.load(std::memory_order_relaxed)) {
        const std::int64_t deadline = drain_deadline_ns_.load(std::memory_order_relaxed);
        if (steady_ns() >= deadline) break;
        pool_cv_.wait_until(
            lock, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline)));
    }
    waiting_ = false;
}

bool ProducerThread::wait_for_outstanding(std::int64_t deadline_ns) {
    // Every fd this thread fired is consumed and closed by a consumer; wait for the last one so
    // that a joined producer means a drained producer.
    const auto deadline =
        std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns));
    MutexLock lock(pool_mutex_);
    waiting_ = true;
    const bool done = pool_cv_.wait_until(lock, deadline, [this]() REQUIRES(pool_mutex_) {
        return free_.size() + returned_.size() == slot_count_.load(std::memory_order_relaxed);
    });
    waiting_ = false;
    return done;
}

bool ProducerThread::settle(std::int64_t deadline_ns) {
    if (config_.kind == ProducerKind::eventfd && config_.fd_mode == FdMode::per_event)
        return wait_for_outstanding(deadline_ns);
    // The thread retires its fds as it ends; this covers a thread that ended on an error.
    for (const std::uint32_t index : slots()) retire(shared_.slots[index]);
    return true;
}

std::uint64_t ProducerThread::abandon_leftovers() {
    std::uint64_t closed = 0;
    for (const std::uint32_t index : slots()) {
        Slot& slot = shared_.slots[index];
        const int fd = slot.fd.exchange(-1, std::memory_order_acq_rel);
        slot.written.store(0, std::memory_order_relaxed);
        if (fd < 0) continue;
        (void)shared_.epoll.remove(fd);
        ::close(fd);
        ++closed;
    }
    return closed;
}

void ProducerThread::run_persistent(const std::stop_token& stop) {
    const std::uint32_t index = slots_[0];
    Slot& slot = shared_.slots[index];
    const bool semaphore = config_.fd_mode == FdMode::semaphore;
    const int flags = EFD_CLOEXEC | EFD_NONBLOCK | (semaphore ? EFD_SEMAPHORE : 0);
    const int fd = create_fd(stop, "eventfd", [flags] { return ::eventfd(0, flags); });
    if (fd >= 0) {
        slot.fd.store(fd, std::memory_order_relaxed);
        const std::uint32_t generation = slot.generation.load(std::memory_order_relaxed);
        if (const int err = shared_.epoll.add(fd, kOneShotEvents, make_token(index, generation));
            err != 0) {
            slot.fd.store(-1, std::memory_order_relaxed);
            ::close(fd);
            started_once();
            throw std::system_error(err, std::generic_category(), "epoll_ctl ADD");
        }
    }
    started_once();
    if (fd < 0) return;

    start_schedule();
    // A semaphore fd is read one unit at a time: each fire is one unit (and one stamp).
    const std::uint64_t value = semaphore ? 1 : shared_.test_eventfd_value;
    while (!stop.stop_requested()) {
        const std::int64_t due_or_stop = wait_due(stop);
        if (due_or_stop < 0) break;
        std::int64_t due = due_or_stop;
        const std::int64_t now = steady_ns();
        if (schedule_.flat_out()) {
            due = now;
        } else {
            count_fire(due, now);
        }
        if (semaphore) {
            push_unit(slot, FireStamp{due, now, current_cpu()});
        } else if (slot.stamp.load(std::memory_order_relaxed) == 0) {
            // Stamp the oldest unread fire only (a cheap load first, as most fires find one
            // unread); the consumer takes the stamp after its read. Only this thread stores a
            // non-zero stamp, so no compare-exchange is needed.
            slot.written.store(now, std::memory_order_relaxed);
            slot.fire_cpu.store(current_cpu(), std::memory_order_relaxed);
            slot.stamp.store(due, std::memory_order_release);
        }
        fired.add();
        value_written.add(value);
        while (::write(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) {
            const int err = errno;
            if (err != EAGAIN) {
                fired.sub(1);
                value_written.sub(value);
                errors.add();
                log::emit(log::Level::err, "eventfd write failed",
                          {{"producer", config_.name}, {"fd", fd}, {"error", errno_text(err)}});
                break;
            }
            // The counter is full: the value was not added. Wait for a consumer to drain it.
            write_retries.add();
            if (!sleep_until(stop, steady_ns() + 100'000)) {
                fired.sub(1);
                value_written.sub(value);
                break;
            }
        }
    }
    close_schedule();
    retire(slot);
}

void ProducerThread::run_timers(const std::stop_token& stop) {
    std::uint32_t armed = 0;
    for (std::size_t i = 0; i < slots().size() && !stop.stop_requested(); ++i) {
        const std::uint32_t index = slots_[i];
        Slot& slot = shared_.slots[index];
        const clockid_t clock = config_.clock;
        // A realtime timer learns of a wall-clock step (ECANCELED on read) instead of firing
        // the whole jump as overruns.
        const int settime_flags =
            TFD_TIMER_ABSTIME | (clock == CLOCK_REALTIME ? TFD_TIMER_CANCEL_ON_SET : 0);
        const int fd = create_fd(stop, "timerfd_create", [clock] {
            return ::timerfd_create(clock, TFD_CLOEXEC | TFD_NONBLOCK);
        });
        if (fd < 0) break;
        // Absolute expiry times from the engine's common epoch: the consumer knows exactly which
        // tick each read starts at, and a late arming shows as lateness instead of shifting.
        const std::int64_t first_due = spec_.epoch(clock) + config_.initial.count();
        slot.fd.store(fd, std::memory_order_relaxed);
        slot.stamp.store(first_due, std::memory_order_relaxed);
        const std::uint32_t generation = slot.generation.load(std::memory_order_relaxed);
        if (const int err = shared_.epoll.add(fd, kOneShotEvents, make_token(index, generation));
            err != 0) {
            slot.fd.store(-1, std::memory_order_relaxed);
            ::close(fd);
            errors.add();
            log::emit(log::Level::err, "epoll_ctl ADD failed",
                      {{"producer", config_.name}, {"error", errno_text(err)}});
            continue;
        }
        itimerspec spec{};
        spec.it_value = to_timespec(Nanos(first_due));
        spec.it_interval = to_timespec(config_.interval);
        if (::timerfd_settime(fd, settime_flags, &spec, nullptr) != 0) {
            errors.add();
            log::emit(log::Level::err, "timerfd_settime failed",
                      {{"producer", config_.name}, {"error", errno_text(errno)}});
            continue;
        }
        ++armed;
    }
    started_once();
    if (armed > 0)
        log::emit(log::Level::debug, "timers armed",
                  {{"producer", config_.name}, {"timers", armed}});
    // The kernel keeps the period; this thread only waits to retire its timers.
    {
        MutexLock lock(pool_mutex_);
        pool_cv_.wait(lock, stop, [] { return false; });
    }
    for (const std::uint32_t index : slots()) retire(shared_.slots[index]);
}

void ProducerThread::push_unit(Slot& slot, const FireStamp& unit) {
    MutexLock lock(units_mutex_);
    units_.push_back(unit);
    if (units_.size() == 1) {  // the oldest unread unit: what the canary looks at
        slot.written.store(unit.written, std::memory_order_relaxed);
        slot.stamp.store(unit.due, std::memory_order_release);
    }
}

bool ProducerThread::take_unit(Slot& slot, FireStamp& unit) {
    MutexLock lock(units_mutex_);
    if (units_.empty()) return false;
    unit = units_.front();
    units_.pop_front();
    if (units_.empty()) {
        slot.stamp.store(0, std::memory_order_relaxed);
    } else {
        slot.written.store(units_.front().written, std::memory_order_relaxed);
        slot.stamp.store(units_.front().due, std::memory_order_release);
    }
    return true;
}

void ProducerThread::retire(Slot& slot) {
    std::lock_guard lock(slot.mutex);
    const int fd = slot.fd.exchange(-1, std::memory_order_relaxed);
    if (fd < 0) return;
    (void)shared_.epoll.remove(fd);
    // A consumer that already holds an event for this slot sees a new generation and skips it.
    slot.generation.store(slot.generation.load(std::memory_order_relaxed) + 1,
                          std::memory_order_release);
    std::uint64_t count = 0;
    if (slot.mode.load(std::memory_order_relaxed) == SlotMode::semaphore) {
        // Each read takes one unit: read them all.
        while (::read(fd, &count, sizeof count) == static_cast<ssize_t>(sizeof count))
            value_drained.add(count);
        MutexLock units(units_mutex_);
        units_.clear();
        slot.stamp.store(0, std::memory_order_relaxed);
    } else if (::read(fd, &count, sizeof count) == static_cast<ssize_t>(sizeof count)) {
        if (slot.mode.load(std::memory_order_relaxed) == SlotMode::timer) {
            expirations_drained.add(count);
            if (count > 1) overruns_drained.add(count - 1);
        } else {
            value_drained.add(count);
        }
    }
    ::close(fd);
}

}  // namespace evfly::detail
