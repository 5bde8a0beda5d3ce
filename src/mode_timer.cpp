// kind = "timerfd": timers the kernel fires, both halves of their protocol.
//
// Producer: create each timer, register it, and arm it at an absolute expiry from the spec's
// epoch (so the consumer knows exactly which tick each read starts at); then only wait to retire
// them. Consumer: read the expirations, record the lateness of the earliest one on the timer's
// own clock (overruns show as lateness, not as nothing), move the slot's stamp to the next tick,
// serve, re-arm. A realtime timer whose clock was set (ECANCELED) is re-armed from the new time.
//
// The hand-off: the slot's stamp (the tick the next read starts at) is written by the producer
// before the registration and afterwards only by the consumer that holds the event, under the
// slot's mutex, which retire() takes too.
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <optional>

#include "consumer_thread.h"
#include "evfly/log.h"
#include "producer_thread.h"

namespace evfly::detail {

void ProducerThread::run_timers(const std::stop_token& stop) {
    std::uint32_t armed = 0;
    // Timers that could not be registered or armed are left out: closed, never counted as in
    // flight, and said once for the thread with the first error.
    std::uint32_t left_out = 0;
    const char* failed_call = nullptr;
    int failed_errno = 0;
    const auto leave_out = [&](Slot& slot, const char* call, int err) {
        errors.add();
        retire(slot);
        slot.stamp.store(0, std::memory_order_relaxed);
        if (left_out++ == 0) {
            failed_call = call;
            failed_errno = err;
        }
    };
    for (std::size_t i = 0; i < slots().size() && !stop.stop_requested(); ++i) {
        const std::uint32_t index = slots_[i];
        Slot& slot = shared_.slots[index];
        const clockid_t clock = config_.clock;
        // A realtime timer learns of a wall-clock step (ECANCELED on read) instead of firing
        // the whole jump as overruns.
        const int settime_flags =
            TFD_TIMER_ABSTIME | (clock == CLOCK_REALTIME ? TFD_TIMER_CANCEL_ON_SET : 0);
        const int fd = create_fd(
            stop, NewFd{.timer = true, .flags = TFD_CLOEXEC | TFD_NONBLOCK, .clock = clock});
        if (fd < 0) break;
        // Absolute expiry times from the engine's common epoch: the consumer knows exactly which
        // tick each read starts at, and a late arming shows as lateness instead of shifting.
        const std::int64_t first_due = spec_.epoch(clock) + config_.initial.count();
        slot.stamp.store(first_due, std::memory_order_relaxed);
        if (const int err = register_fd(index, fd); err != 0) {
            ::close(fd);
            leave_out(slot, "epoll_ctl ADD", err);
            continue;
        }
        itimerspec spec{};
        spec.it_value = to_timespec(Nanos(first_due));
        spec.it_interval = to_timespec(config_.interval);
        const int settime_errno = shared_.hooks.settime_errno != 0 ? shared_.hooks.settime_errno
                                  : ::timerfd_settime(fd, settime_flags, &spec, nullptr) != 0
                                      ? errno
                                      : 0;
        if (settime_errno != 0) {
            leave_out(slot, "timerfd_settime", settime_errno);
            continue;
        }
        ++armed;
    }
    started_once();
    if (left_out > 0)
        log::emit(log::Level::err, "timers could not be armed; they are left out",
                  {{"producer", config_.name},
                   {"timers", left_out},
                   {"syscall", failed_call},
                   {"error", errno_text(failed_errno)}});
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

bool ConsumerThread::handle_timer(Slot& slot, std::uint32_t index, std::uint64_t generation) {
    // What the handler needs, copied under the slot's lock: the handler runs after letting go of
    // it, so that the producer's retire (its stop, a reload) never waits behind a handler, nor
    // loses the lock to this consumer's next read of an overrunning timer again and again. The
    // registration is one-shot: no other consumer can have this timer until it is re-armed.
    struct Served {
        Handler handler;
        int fd;
        std::uint64_t ticks;
        std::int64_t lateness;
        int cpu;
    };
    std::optional<Served> served;
    bool finished = false;  // a one-shot timer that has fired: nothing to re-arm
    int fd = -1;
    {
        std::lock_guard lock(slot.mutex);
        if (!same_generation(slot.generation.load(std::memory_order_acquire), generation)) {
            return false;  // retired by its producer after epoll reported it
        }
        fd = slot.fd.load(std::memory_order_relaxed);
        const SlotPool& owner = *slot.owner.load(std::memory_order_relaxed);
        const ProducerConfig& producer = owner.config();
        std::uint64_t ticks = 0;
        ssize_t got = ::read(fd, &ticks, sizeof ticks);
        if (got == static_cast<ssize_t>(sizeof ticks) && shared_.hooks.timer_cancel_every != 0 &&
            producer.clock == CLOCK_REALTIME &&
            ++timer_reads_ % shared_.hooks.timer_cancel_every == 0) {
            got = -1;  // test-only: as the kernel does on a clock step, the expirations are dropped
            errno = ECANCELED;
        }
        if (got == static_cast<ssize_t>(sizeof ticks) && ticks > 0) {
            // Lateness is measured from the earliest tick this read reports, on the timer's own
            // clock, so overruns show up as lateness instead of vanishing.
            const std::int64_t due = slot.stamp.load(std::memory_order_relaxed);
            const std::int64_t lateness = clock_ns(producer.clock) - due;
            const std::int64_t next =
                producer.interval.count() == 0
                    ? 0  // a one-shot timer has nothing more due
                    : due + static_cast<std::int64_t>(ticks) * producer.interval.count();
            slot.stamp.store(next, std::memory_order_relaxed);
            slot.value_read.add(ticks);
            if (ticks > 1) slot.overruns.add(ticks - 1);
            const int cpu = record_timer(lateness, steady_ns(), owner.handler());
            served = Served{owner.handler(), fd, ticks, lateness, cpu};
        } else if (got < 0 && errno == ECANCELED) {
            on_clock_set(slot, fd, producer);
        } else if (got < 0 && errno != EAGAIN) {
            read_failed("timerfd", fd, errno);
        }
        // A one-shot timer that has fired has nothing more to report (one re-armed after a
        // clock step still has its expiry ahead).
        finished =
            producer.interval.count() == 0 && slot.stamp.load(std::memory_order_relaxed) == 0;
        if (!served) {
            if (!finished) rearm(fd, make_token(index, generation));
            return true;
        }
    }
    serve(served->handler, served->fd, served->ticks, served->lateness, served->cpu, -1);
    if (finished) return true;
    std::lock_guard lock(slot.mutex);
    // Retired while the handler ran: its fd is closed, or already another timer's.
    if (!same_generation(slot.generation.load(std::memory_order_acquire), generation)) return true;
    rearm(fd, make_token(index, generation));
    return true;
}

void ConsumerThread::on_clock_set(Slot& slot, int fd, const ProducerConfig& producer) {
    // The wall clock was set: the kernel dropped the expirations, and the schedule on the old
    // clock means nothing now. Re-arm from the new time, so the jump shows neither as lateness
    // nor as overruns; the slot's mutex is held, so no retire races this.
    slot.clock_jumps.add();
    const std::int64_t now = clock_ns(producer.clock);
    const std::int64_t interval = producer.interval.count();
    const bool pending = slot.stamp.load(std::memory_order_relaxed) != 0;
    if (pending) {
        const std::int64_t due = interval == 0 ? now : now + interval;
        slot.stamp.store(due, std::memory_order_relaxed);
        itimerspec spec{};
        spec.it_value = to_timespec(Nanos(due));
        spec.it_interval = to_timespec(producer.interval);
        if (::timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &spec, nullptr) !=
            0) {
            counts.consumer_errors.add();
            log::emit(log::Level::err, "timerfd_settime failed after a clock step",
                      {{"fd", fd}, {"error", errno_text(errno)}});
        }
    }
    // One line per step of the clock, not one per timer: at most one a second.
    const std::int64_t steady = steady_ns();
    std::int64_t last = shared_.clock_jump_logged_ns.load(std::memory_order_relaxed);
    if ((last == 0 || steady - last >= 1'000'000'000) &&
        shared_.clock_jump_logged_ns.compare_exchange_strong(last, steady,
                                                             std::memory_order_relaxed)) {
        log::emit(log::Level::warn, "wall clock set; realtime timers re-armed from the new time",
                  {{"producer", producer.name}, {"fd", fd}});
    }
}

}  // namespace evfly::detail
