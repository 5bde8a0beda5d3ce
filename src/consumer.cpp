#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <vector>

#include "engine_impl.h"
#include "evfly/fd.h"
#include "evfly/log.h"

namespace evfly::detail {

ConsumerThread::ConsumerThread(Shared& shared, std::uint32_t index, Placement placement)
    : shared_(shared),
      index_(index),
      name_("consumer-" + std::to_string(index)),
      placement_(std::move(placement)) {}

void ConsumerThread::start() {
    thread_ = std::jthread([this] { run(); });
}

void ConsumerThread::run() {
    log::set_thread_name(name_);
    std::vector<epoll_event> events(shared_.max_events.load(std::memory_order_relaxed));
    wedge_armed_ = shared_.test_wedge_ns.load(std::memory_order_relaxed) > 0;
    tid.store(current_tid(), std::memory_order_relaxed);
    if (!placement_.empty())
        placement_error =
            apply_placement(placement_, shared_.placement_defaults, 0, index_, "daemon.");
    shared_.count_started();
    std::int64_t spin_until = 0;  // after work, poll without blocking until then (daemon.spin)
    while (!stopping_) {
        busy_since.store(0, std::memory_order_relaxed);
        // A reload may change the batch size; one relaxed load per batch.
        if (const auto want = shared_.max_events.load(std::memory_order_relaxed);
            want != events.size())
            events.resize(want);
        int n = 0;
        if (spin_until != 0 && steady_ns() < spin_until) {
            // Bounded spinning: only right after work, so an idle pool still never wakes.
            n = shared_.epoll.wait(events, 0);
            spin_polls.add();
            if (n == 0) continue;
        } else {
            // No timeout: an idle consumer sleeps until there is work or the stop eventfd fires.
            n = shared_.epoll.wait(events, -1);
            epoll_returns.add();
        }
        if (n < 0) {
            if (n == -EINTR) continue;
            errors.add();
            log::emit(log::Level::err, "epoll_wait failed", {{"error", errno_text(-n)}});
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
        }
        // A wake-up counts when it brought work; the final one for the stop eventfd does not.
        const std::uint64_t dispatched_before = dispatched.get();
        for (int i = 0; i < n; ++i) {
            if (shared_.abandon.load(std::memory_order_relaxed)) {
                stopping_ = true;
                break;
            }
            busy_since.store(steady_ns(), std::memory_order_relaxed);
            // Catch at the top of each event so that one failing handler never ends the thread.
            try {
                handle(events[static_cast<std::size_t>(i)].data.u64);
            } catch (const std::exception& e) {
                errors.add();
                log::emit(log::Level::err, "event handler failed", {{"error", e.what()}});
            }
        }
        flush_released();
        if (dispatched.get() != dispatched_before) {
            wakeups.add();
            const std::int64_t spin = shared_.spin_ns.load(std::memory_order_relaxed);
            spin_until = spin == 0 ? 0 : steady_ns() + spin;
        }
    }
    busy_since.store(0, std::memory_order_relaxed);
    exited_.store(true, std::memory_order_release);
    shared_.count_exited();
}

void ConsumerThread::handle(std::uint64_t token) {
    const std::uint32_t index = token_index(token);
    if (index == kStopIndex) {
        // Level-triggered and never read: every consumer sees it, each in its own epoll_wait.
        stopping_ = true;
        return;
    }
    if (index == kRetireIndex) {
        take_retire_token();
        return;
    }
    dispatched.add();
    if (wedge_armed_) {  // test-only; a local flag, so the hot path touches no shared state
        wedge_armed_ = false;
        if (const std::int64_t ns = shared_.test_wedge_ns.exchange(0); ns > 0)
            std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
    }
    Slot& slot = shared_.slots[index];
    const std::uint32_t generation = token_generation(token);
    // The acquire pairs with the release that published this generation, so the slot's owner
    // and mode read below are the ones this registration was made with.
    if (slot.generation.load(std::memory_order_acquire) != generation) {
        stale.add();  // retired (by its producer or a reload) after epoll reported it
        return;
    }
    // A stale event may race a reload that retires the slot and gives it to another producer:
    // read the mode, then check the generation again (the mode is stored with release before the
    // new generation is published), so a mode read from the slot's next life is never acted on.
    const SlotMode mode = slot.mode.load(std::memory_order_acquire);
    if (slot.generation.load(std::memory_order_relaxed) != generation) {
        stale.add();
        return;
    }
    switch (mode) {
        case SlotMode::per_event:
            handle_per_event(slot, index);
            break;
        case SlotMode::persistent:
            handle_persistent(slot, index, generation);
            break;
        case SlotMode::semaphore:
            handle_semaphore(slot, index, generation);
            break;
        case SlotMode::timer:
            handle_timer(slot, index, generation);
            break;
    }
}

void ConsumerThread::take_retire_token() {
    // The pool shrinks: each unit of the semaphore ends one consumer, after this batch (the
    // events in it are ours alone). Re-arming passes what is left on to another consumer.
    std::uint64_t unit = 0;
    const int fd = shared_.retire_fd.get();
    if (::read(fd, &unit, sizeof unit) == static_cast<ssize_t>(sizeof unit)) stopping_ = true;
    if (const int err = shared_.epoll.rearm(fd, make_token(kRetireIndex, 0)); err != 0) {
        errors.add();
        log::emit(log::Level::err, "epoll_ctl MOD failed (retire eventfd)",
                  {{"error", errno_text(err)}});
    }
}

void ConsumerThread::serve(const ProducerConfig& producer, int fd, std::uint64_t value,
                           std::int64_t latency_ns, int cpu, int fire_cpu) {
    try {
        log_event(producer, fd, value, latency_ns, cpu, fire_cpu);
        spend(producer);
        if (shared_.test_throw_every != 0 && ++served_ % shared_.test_throw_every == 0)
            throw std::runtime_error("handler failure injected by EVFLY_TEST_THROW_EVERY");
    } catch (const std::exception& e) {
        handler_errors.add();
        const std::int64_t now = steady_ns();
        if (now - handler_error_logged_ns_ < 1'000'000'000) {
            ++handler_errors_unlogged_;
            return;
        }
        log::emit(log::Level::err, "event handler failed; the consumer carries on",
                  {{"producer", producer.name},
                   {"error", e.what()},
                   {"not_logged_since_last", handler_errors_unlogged_}});
        handler_error_logged_ns_ = now;
        handler_errors_unlogged_ = 0;
    }
}

void ConsumerThread::spend(const ProducerConfig& producer) {
    // Busy work standing in for a handler's cost, so operators can size the pool realistically.
    if (producer.work.count() == 0) return;
    const std::int64_t until = steady_ns() + producer.work.count();
    while (steady_ns() < until && !shared_.abandon.load(std::memory_order_relaxed)) {
    }
}

void ConsumerThread::log_event(const ProducerConfig& producer, int fd, std::uint64_t value,
                               std::int64_t latency_ns, int cpu, int fire_cpu) {
    if (!log::enabled(log::Level::debug)) return;
    log::emit(log::Level::debug, "event",
              {{"consumer", index_},
               {"producer", producer.name},
               {"kind", to_string(producer.kind)},
               {"fd", fd},
               {"value", value},
               {"latency_us", static_cast<double>(latency_ns) / 1000.0},
               {"cpu", cpu},
               {"fire_cpu", fire_cpu}});
}

void ConsumerThread::handle_per_event(Slot& slot, std::uint32_t index) {
    // EPOLLONESHOT: this consumer is the only one that received this registration, and nothing
    // else closes per-event fds, so the slot is ours until we release it.
    const int fd = slot.fd.load(std::memory_order_relaxed);
    assert(fd >= 0 && "a per-event registration is consumed once (EPOLLONESHOT)");
    std::uint64_t value = 0;
    if (::read(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) {
        errors.add();
        log::emit(log::Level::err, "eventfd read failed",
                  {{"fd", fd}, {"error", errno_text(errno)}});
        value = 0;
    }
    // The write stamp first, with acquire (it was stored last, with release): the due stamp read
    // after it belongs to the same fire.
    const std::int64_t written = slot.written.load(std::memory_order_acquire);
    const std::int64_t due = slot.stamp.load(std::memory_order_relaxed);
    const int fire_cpu = slot.fire_cpu.load(std::memory_order_relaxed);
    const std::int64_t now = steady_ns();
    slot.written.store(0, std::memory_order_relaxed);  // nothing of this slot in flight now
    const std::int64_t latency = now - due;
    SlotPool* owner = slot.owner.load(std::memory_order_relaxed);
    slot.value_read.add(value);
    const int cpu = record_eventfd(latency, now - written, fire_cpu);
    serve(owner->config(), fd, value, latency, cpu, fire_cpu);
    // close() is the detach, with no EPOLL_CTL_DEL first (one syscall less per event, measured in
    // tests/bench): this is the only descriptor of the eventfd (CLOEXEC, never dup'd, evflyd never
    // forks), so closing it releases the file and the kernel drops the registration with it.
    // Even if a copy of the descriptor existed, EPOLLONESHOT has already disarmed the
    // registration, and epoll keys registrations by file as well as number, so a new eventfd
    // that reuses the number is a separate registration.
    slot.fd.store(-1, std::memory_order_relaxed);
    ::close(fd);
    slot.generation.store(slot.generation.load(std::memory_order_relaxed) + 1,
                          std::memory_order_release);
    released_.emplace_back(owner, index);
    // With a modelled handler cost, hand the fd back now rather than after the whole batch.
    if (owner->config().work.count() > 0) flush_released();
}

void ConsumerThread::rearm(int fd, std::uint64_t token) {
    // Re-arming re-checks readiness, so what landed after our read is reported again.
    if (const int err = shared_.epoll.rearm(fd, token); err != 0) {
        errors.add();
        log::emit(log::Level::err, "epoll_ctl MOD failed",
                  {{"fd", fd}, {"error", errno_text(err)}});
    }
}

int ConsumerThread::record_eventfd(std::int64_t latency, std::int64_t delivery, int fire_cpu) {
    const int cpu = current_cpu();
    shared_.cpu_latency.record_eventfd(cpu, fire_cpu,
                                       static_cast<std::uint64_t>(latency > 0 ? latency : 0),
                                       static_cast<std::uint64_t>(delivery > 0 ? delivery : 0));
    return cpu;
}

void ConsumerThread::flush_released() {
    if (released_.empty()) return;
    // Group by producer; a batch holds at most max_events entries, usually of one or two owners.
    std::sort(released_.begin(), released_.end(),
              [](const auto& a, const auto& b) { return std::less<>()(a.first, b.first); });
    for (std::size_t i = 0; i < released_.size();) {
        SlotPool* owner = released_[i].first;
        release_scratch_.clear();
        for (; i < released_.size() && released_[i].first == owner; ++i)
            release_scratch_.push_back(released_[i].second);
        owner->release_slots(release_scratch_.data(), release_scratch_.size());
    }
    released_.clear();
}

void ConsumerThread::handle_persistent(Slot& slot, std::uint32_t index, std::uint32_t generation) {
    std::lock_guard lock(slot.mutex);
    if (slot.generation.load(std::memory_order_acquire) != generation) {
        stale.add();  // retired by its producer after epoll reported it; already accounted
        return;
    }
    const int fd = slot.fd.load(std::memory_order_relaxed);
    std::uint64_t value = 0;
    if (::read(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value)) {
        // The due stamp of the oldest fire this read took, and its write stamp; a fire stamped
        // between the two loads can only make the write stamp younger (delivery shorter).
        // The fire CPU likewise may be a younger fire's.
        const std::int64_t due = slot.stamp.exchange(0, std::memory_order_acq_rel);
        const std::int64_t written = slot.written.load(std::memory_order_relaxed);
        const int fire_cpu = slot.fire_cpu.load(std::memory_order_relaxed);
        slot.value_read.add(value);
        const std::int64_t now = steady_ns();
        const std::int64_t latency = due != 0 ? now - due : 0;
        int cpu = -1;
        if (due != 0) cpu = record_eventfd(latency, now - written, fire_cpu);
        const ProducerConfig& producer = slot.owner.load(std::memory_order_relaxed)->config();
        serve(producer, fd, value, latency, cpu, fire_cpu);
    } else if (errno != EAGAIN) {
        errors.add();
        log::emit(log::Level::err, "eventfd read failed",
                  {{"fd", fd}, {"error", errno_text(errno)}});
    }
    rearm(fd, make_token(index, generation));
}

void ConsumerThread::handle_semaphore(Slot& slot, std::uint32_t index, std::uint32_t generation) {
    // One unit per read, and the fd re-armed before the unit is handled: the next unit goes to
    // another consumer at once, so the consumers share one fd's units like a work queue.
    FireStamp unit;
    bool got = false;
    int fd = -1;
    SlotPool* owner = slot.owner.load(std::memory_order_relaxed);
    {
        std::lock_guard lock(slot.mutex);
        if (slot.generation.load(std::memory_order_acquire) != generation) {
            stale.add();  // retired by its producer after epoll reported it; already accounted
            return;
        }
        fd = slot.fd.load(std::memory_order_relaxed);
        std::uint64_t one = 0;
        if (::read(fd, &one, sizeof one) == static_cast<ssize_t>(sizeof one)) {
            slot.value_read.add(one);
            got = owner->take_unit(slot, unit);
        } else if (errno != EAGAIN) {
            errors.add();
            log::emit(log::Level::err, "eventfd read failed",
                      {{"fd", fd}, {"error", errno_text(errno)}});
        }
        rearm(fd, make_token(index, generation));
    }
    if (!got) return;
    const std::int64_t now = steady_ns();
    const std::int64_t latency = now - unit.due;
    const int cpu = record_eventfd(latency, now - unit.written, unit.cpu);
    serve(owner->config(), fd, 1, latency, cpu, unit.cpu);
}

void ConsumerThread::handle_timer(Slot& slot, std::uint32_t index, std::uint32_t generation) {
    std::lock_guard lock(slot.mutex);
    if (slot.generation.load(std::memory_order_acquire) != generation) {
        stale.add();
        return;
    }
    const int fd = slot.fd.load(std::memory_order_relaxed);
    const ProducerConfig& producer = slot.owner.load(std::memory_order_relaxed)->config();
    std::uint64_t ticks = 0;
    ssize_t got = ::read(fd, &ticks, sizeof ticks);
    if (got == static_cast<ssize_t>(sizeof ticks) && shared_.test_timer_cancel_every != 0 &&
        producer.clock == CLOCK_REALTIME && ++timer_reads_ % shared_.test_timer_cancel_every == 0) {
        got = -1;  // test-only: as the kernel does on a clock step, the expirations are dropped
        errno = ECANCELED;
    }
    if (got == static_cast<ssize_t>(sizeof ticks) && ticks > 0) {
        // Lateness is measured from the earliest tick this read reports, on the timer's own clock,
        // so overruns show up as lateness instead of vanishing.
        const std::int64_t due = slot.stamp.load(std::memory_order_relaxed);
        const std::int64_t lateness = clock_ns(producer.clock) - due;
        const std::int64_t next =
            producer.interval.count() == 0
                ? 0  // a one-shot timer has nothing more due
                : due + static_cast<std::int64_t>(ticks) * producer.interval.count();
        slot.stamp.store(next, std::memory_order_relaxed);
        slot.value_read.add(ticks);
        if (ticks > 1) slot.overruns.add(ticks - 1);
        const int cpu = current_cpu();
        shared_.cpu_latency.record_timer(cpu,
                                         static_cast<std::uint64_t>(lateness > 0 ? lateness : 0));
        serve(producer, fd, ticks, lateness, cpu, -1);
    } else if (got < 0 && errno == ECANCELED) {
        on_clock_set(slot, fd, producer);
    } else if (got < 0 && errno != EAGAIN) {
        errors.add();
        log::emit(log::Level::err, "timerfd read failed",
                  {{"fd", fd}, {"error", errno_text(errno)}});
    }
    // A one-shot timer that has fired has nothing more to report (one re-armed after a clock
    // step still has its expiry ahead).
    if (producer.interval.count() == 0 && slot.stamp.load(std::memory_order_relaxed) == 0) return;
    rearm(fd, make_token(index, generation));
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
            errors.add();
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
