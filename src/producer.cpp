// What every fd mode's producer shares: the thread, its slots, its schedule, creating and
// registering fds, and retiring them. The fire loops are in the mode files.
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <stdexcept>

#include "evfly/fd.h"
#include "evfly/log.h"
#include "producer_thread.h"

namespace evfly::detail {
namespace {

// How long a producer waits for an fd to come back before trying again when the process is out
// of descriptors (or fd creation fails otherwise): from 1 ms, doubling to 100 ms. A consumer
// closing one of ours wakes it sooner.
constexpr std::int64_t kFdBackoffMinNs = 1'000'000;
constexpr std::int64_t kFdBackoffMaxNs = 100'000'000;
// Failures less than this apart are one episode: logged and counted once.
constexpr std::int64_t kFdEpisodeGapNs = Schedule::kSecondNs;

std::int64_t period_of(std::uint64_t rate) noexcept {
    return rate == 0 ? 0 : Schedule::kSecondNs / static_cast<std::int64_t>(rate);
}

// Thread `index` of a table: its arrivals, from a generator of its own derived from the seed.
Arrivals arrivals_of(const ProducerConfig& p, std::uint64_t seed, std::uint32_t index) noexcept {
    Arrivals a;
    if (p.kind != ProducerKind::eventfd) return a;
    a.period_ns = period_of(p.rate);
    a.kind = p.arrival == Arrival::poisson ? Arrivals::Kind::poisson
             : p.arrival == Arrival::burst ? Arrivals::Kind::burst
                                           : Arrivals::Kind::paced;
    a.burst = p.burst;
    a.seed = seed ^ (0x9E3779B97F4A7C15ULL * (std::uint64_t{index} + 1));
    return a;
}

SlotMode mode_of(const ProducerConfig& p) noexcept {
    if (p.kind == ProducerKind::timerfd) return SlotMode::timer;
    switch (p.fd_mode) {
        case FdMode::per_event:
            return SlotMode::per_event;
        case FdMode::semaphore:
            return SlotMode::semaphore;
        default:
            return SlotMode::persistent;
    }
}

}  // namespace

void Spec::set_epoch() noexcept {
    epoch_realtime = clock_ns(CLOCK_REALTIME);
    epoch_monotonic = clock_ns(CLOCK_MONOTONIC);
    epoch_boottime = clock_ns(CLOCK_BOOTTIME);
}

ProducerThread::ProducerThread(Shared& shared, const Spec& spec, std::uint32_t index,
                               const std::vector<std::uint32_t>& slots)
    : SlotPool(spec.config),
      shared_(shared),
      spec_(spec),
      name_("producer-" + config_.name + "-" + std::to_string(index)),
      slot_capacity_(is_per_event(config_) ? config_.max_in_flight
                                           : static_cast<std::uint32_t>(slots.size())),
      slots_(std::make_unique_for_overwrite<std::uint32_t[]>(slot_capacity_)),
      index_(index),
      fd_failures_(kFdEpisodeGapNs),
      add_failures_(kFdEpisodeGapNs),
      schedule_(arrivals_of(config_, spec.seed, index)) {
    adopt(slots);
}

void ProducerThread::adopt(const std::vector<std::uint32_t>& slots) {
    const SlotMode mode = mode_of(config_);
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
    if (mode == SlotMode::per_event) free_.insert(free_.begin(), slots.rbegin(), slots.rend());
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
        switch (mode_of(config_)) {
            case SlotMode::timer:
                run_timers(stop);
                break;
            case SlotMode::per_event:
                started_once();
                run_per_event(stop);
                break;
            case SlotMode::persistent:
                run_persistent(stop, false);
                break;
            case SlotMode::semaphore:
                run_persistent(stop, true);
                break;
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
    // steady_clock is CLOCK_MONOTONIC on Linux, the clock of epoch_monotonic. The threads of
    // every table that takes turns take turns over one cycle (a period, or a burst's).
    const auto turns = static_cast<std::int64_t>(config_.threads) * spec_.phase_of;
    const auto turn = static_cast<std::int64_t>(index_) * spec_.phase_of + spec_.phase_index;
    return spec_.epoch_monotonic + schedule_.cycle() * turn / turns;
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

int ProducerThread::create_fd_retrying(const std::stop_token& stop, const NewFd& what) {
    std::int64_t backoff_ns = kFdBackoffMinNs;
    const char* const syscall = what.timer ? "timerfd_create" : "eventfd";
    while (!stop.stop_requested()) {
        int fd = -1;
        if (shared_.hooks.fd_errno == 0) {
            fd = what.timer ? ::timerfd_create(what.clock, what.flags)
                            : ::eventfd(what.initial, what.flags);
        } else {
            errno = shared_.hooks.fd_errno;
        }
        if (fd >= 0) {
            // The episode is over once fds have come easily for a while: a producer at its
            // limit takes each fd as it comes back, and that is one episode, not hundreds.
            if (fd_failures_.active()) {
                if (const std::uint64_t failed = fd_failures_.succeed(steady_ns()); failed != 0)
                    log::emit(log::Level::info, "file descriptors available again",
                              {{"producer", config_.name}, {"failed_attempts", failed}});
            }
            return fd;
        }
        const int err = errno;
        // Whatever the error, this thread is up: never hold up the engine's start (nor, with
        // it, the supervisor and its signals) waiting for an fd.
        started_once();
        const bool new_episode = fd_failures_.fail(steady_ns());
        if (err == EMFILE || err == ENFILE || err == ENOMEM) {
            if (new_episode) {
                fd_exhaustion.add();
                log::emit(
                    log::Level::warn, "out of file descriptors, backing off",
                    {{"producer", config_.name}, {"syscall", syscall}, {"error", errno_text(err)}});
            }
        } else {
            errors.add();
            if (new_episode)
                log::emit(
                    log::Level::err, "cannot create fd; retrying with back-off",
                    {{"producer", config_.name}, {"syscall", syscall}, {"error", errno_text(err)}});
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

bool ProducerThread::settle(std::int64_t deadline_ns) {
    if (is_per_event(config_)) return wait_for_outstanding(deadline_ns);
    // The thread retires its fds as it ends; this covers a thread that ended on an error.
    for (const std::uint32_t index : slots()) retire(shared_.slots[index]);
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
    switch (slot.mode.load(std::memory_order_relaxed)) {
        case SlotMode::semaphore:
            drain_units(slot, fd);
            break;
        case SlotMode::timer:
            if (::read(fd, &count, sizeof count) == static_cast<ssize_t>(sizeof count)) {
                expirations_drained.add(count);
                if (count > 1) overruns_drained.add(count - 1);
            }
            break;
        default:
            if (::read(fd, &count, sizeof count) == static_cast<ssize_t>(sizeof count))
                value_drained.add(count);
            break;
    }
    ::close(fd);
}

}  // namespace evfly::detail
