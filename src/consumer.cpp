// A consumer's loop, and what the consumer halves of the fd modes share: the handler (debug
// line and modelled work), re-arming, recording a sample, handing per-event slots back.
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <vector>

#include "consumer_thread.h"
#include "evfly/fd.h"
#include "evfly/log.h"

namespace evfly::detail {
namespace {

// Failures less than this apart are one episode, logged once.
constexpr std::int64_t kEpisodeGapNs = 1'000'000'000;

}  // namespace

ConsumerThread::ConsumerThread(Shared& shared, std::uint32_t index, Placement placement)
    : shared_(shared),
      index_(index),
      name_("consumer-" + std::to_string(index)),
      placement_(std::move(placement)),
      failures_(kEpisodeGapNs),
      wait_failures_(kEpisodeGapNs),
      fail_waits_with_(shared.hooks.epoll_wait_errno) {}

void ConsumerThread::start() {
    thread_ = std::jthread([this] { run(); });
}

void ConsumerThread::run() {
    log::set_thread_name(name_);
    std::vector<epoll_event> events(shared_.max_events.load(std::memory_order_relaxed));
    wedge_armed_ = shared_.wedge_ns.load(std::memory_order_relaxed) > 0;
    tid.store(current_tid(), std::memory_order_relaxed);
    if (!placement_.empty())
        placement_error =
            apply_placement(placement_, shared_.placement_defaults, 0, index_, "daemon.");
    if (index_ < Shared::kMaxConsumers) {
        park_log_ = &shared_.park_logs[index_];
        std::uint32_t used = shared_.park_logs_used.load(std::memory_order_relaxed);
        while (used < index_ + 1 && !shared_.park_logs_used.compare_exchange_weak(
                                        used, index_ + 1, std::memory_order_relaxed)) {
        }
    }
    shared_.count_started();
    std::int64_t spin_until = 0;  // after work, poll without blocking until then (daemon.spin)
    while (!stopping_) {
        // Never let an exception end a consumer silently: the pool would shrink unseen. Count
        // it, tell it once per episode, and carry on.
        try {
            serve_batch(events, spin_until);
        } catch (const std::exception& e) {
            failed("consumer failed; it carries on", e);
            back_off();
        }
    }
    busy_since.store(0, std::memory_order_relaxed);
    exited_.store(true, std::memory_order_release);
    shared_.count_exited();
}

void ConsumerThread::failed(const char* what, const std::exception& e) {
    counts.consumer_errors.add();
    if (failures_.fail(steady_ns()))
        log::emit(log::Level::err, what, {{"consumer", index_}, {"error", e.what()}});
}

void ConsumerThread::back_off() {
    std::this_thread::sleep_for(std::chrono::nanoseconds(kFailureBackoffNs));
    // A consumer whose epoll_wait keeps failing never sees the stop eventfd: look for the stop
    // here too.
    if (shared_.stopping.load(std::memory_order_acquire)) stopping_ = true;
}

void ConsumerThread::serve_batch(std::vector<epoll_event>& events, std::int64_t& spin_until) {
    busy_since.store(0, std::memory_order_relaxed);
    // A reload may change the batch size; one relaxed load per batch.
    if (const auto want = shared_.max_events.load(std::memory_order_relaxed); want != events.size())
        events.resize(want);
    // The last event's handler is over: this consumer parks (spinning counts as parked: it is
    // free to take an event).
    const std::int64_t now = steady_ns();
    finish_span(now);
    if (!parked_) {
        parked_ = true;
        park_cpu_ = current_cpu();
        if (park_log_ != nullptr) park_log_->park(now);
    }
    int n = 0;
    if (spin_until != 0 && now < spin_until) {
        // Bounded spinning: only right after work, so an idle pool still never wakes.
        n = wait(events, 0);
        counts.spin_polls.add();
        if (n == 0) return;
    } else {
        // No timeout: an idle consumer sleeps until there is work or the stop eventfd fires.
        n = wait(events, -1);
        counts.epoll_returns.add();
    }
    if (n < 0) {
        if (n == -EINTR) return;
        counts.consumer_errors.add();
        if (wait_failures_.fail(steady_ns()))
            log::emit(log::Level::err, "epoll_wait failed; retrying",
                      {{"consumer", index_}, {"error", errno_text(-n)}});
        back_off();
        return;
    }
    batch_returned_ = steady_ns();
    parked_ = false;
    if (park_log_ != nullptr) park_log_->unpark(batch_returned_);
    overrun_ahead_ = 0;
    if (wait_failures_.active()) {
        if (const std::uint64_t failed = wait_failures_.succeed(steady_ns()); failed != 0)
            log::emit(log::Level::info, "epoll_wait works again",
                      {{"consumer", index_}, {"failed_calls", failed}});
    }
    // A wake-up counts when it brought work; the final one for the stop eventfd does not.
    const std::uint64_t dispatched_before = counts.events_dispatched.get();
    for (int i = 0; i < n; ++i) {
        if (shared_.abandon.load(std::memory_order_relaxed)) {
            stopping_ = true;
            break;
        }
        turn_ = steady_ns();
        finish_span(turn_);
        busy_since.store(turn_, std::memory_order_relaxed);
        // Catch at the top of each event so that one failing event never ends the batch.
        try {
            handle(events[static_cast<std::size_t>(i)].data.u64);
        } catch (const std::exception& e) {
            failed("event handling failed; the consumer carries on", e);
        }
    }
    flush_released();
    if (counts.events_dispatched.get() != dispatched_before) {
        counts.epoll_wakeups.add();
        const std::int64_t spin = shared_.spin_ns.load(std::memory_order_relaxed);
        spin_until = spin == 0 ? 0 : steady_ns() + spin;
    }
}

int ConsumerThread::wait(std::span<epoll_event> events, int timeout_ms) {
    if (fail_waits_with_ != 0) return -fail_waits_with_;  // test hook
    return shared_.epoll.wait(events, timeout_ms);
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
    if (wedge_armed_) {  // test-only; a local flag, so the hot path touches no shared state
        wedge_armed_ = false;
        if (const std::int64_t ns = shared_.wedge_ns.exchange(0); ns > 0)
            std::this_thread::sleep_for(std::chrono::nanoseconds(ns));
    }
    Slot& slot = shared_.slots[index];
    const std::uint64_t generation = token_generation(token);
    // The acquire pairs with the release that published this generation, so the slot's owner
    // and mode read below are the ones this registration was made with.
    if (!same_generation(slot.generation.load(std::memory_order_acquire), generation)) {
        counts.stale_events.add();  // retired (by its producer or a reload) after epoll reported it
        return;
    }
    // A stale event may race a reload that retires the slot and gives it to another producer:
    // read the mode, then check the generation again (the mode is stored with release before the
    // new generation is published), so a mode read from the slot's next life is never acted on.
    const SlotMode mode = slot.mode.load(std::memory_order_acquire);
    if (!same_generation(slot.generation.load(std::memory_order_relaxed), generation)) {
        counts.stale_events.add();
        return;
    }
    // The persistent, semaphore and timer halves check the generation once more under the
    // slot's lock, which their producer's retire takes too, and say when it turned out stale.
    // Dispatched: handed to its handler; an event for a registration retired meanwhile is stale
    // instead, never both.
    bool handled = true;
    switch (mode) {
        case SlotMode::per_event:
            handle_per_event(slot, index);
            break;
        case SlotMode::persistent:
            handled = handle_persistent(slot, index, generation);
            break;
        case SlotMode::semaphore:
            handled = handle_semaphore(slot, index, generation);
            break;
        case SlotMode::timer:
            handled = handle_timer(slot, index, generation);
            break;
    }
    if (handled) {
        counts.events_dispatched.add();
    } else {
        counts.stale_events.add();
    }
}

void ConsumerThread::take_retire_token() {
    // The pool shrinks: each unit of the semaphore ends one consumer, after this batch (the
    // events in it are ours alone). Re-arming passes what is left on to another consumer.
    std::uint64_t unit = 0;
    const int fd = shared_.retire_fd.get();
    if (::read(fd, &unit, sizeof unit) == static_cast<ssize_t>(sizeof unit)) stopping_ = true;
    if (const int err = shared_.epoll.rearm(fd, make_token(kRetireIndex, 0)); err != 0) {
        counts.consumer_errors.add();
        log::emit(log::Level::err, "epoll_ctl MOD failed (retire eventfd)",
                  {{"error", errno_text(err)}});
    }
}

void ConsumerThread::serve(const Handler& handler, int fd, std::uint64_t value,
                           std::int64_t latency_ns, int cpu, int fire_cpu) {
    try {
        log_event(handler, fd, value, latency_ns, cpu, fire_cpu);
        spend(handler);
        if (shared_.hooks.throw_every != 0 && ++served_ % shared_.hooks.throw_every == 0)
            throw std::runtime_error("handler failure injected by EVFLY_TEST_THROW_EVERY");
    } catch (const std::exception& e) {
        counts.handler_errors.add();
        const std::int64_t now = steady_ns();
        if (now - handler_error_logged_ns_ < 1'000'000'000) {
            ++handler_errors_unlogged_;
            return;
        }
        log::emit(log::Level::err, "event handler failed; the consumer carries on",
                  {{"producer", handler.producer()},
                   {"error", e.what()},
                   {"not_logged_since_last", handler_errors_unlogged_}});
        handler_error_logged_ns_ = now;
        handler_errors_unlogged_ = 0;
    }
}

void ConsumerThread::spend(const Handler& handler) {
    // Work standing in for a handler's cost, so operators can size the pool realistically. What
    // this event drew is what its handler segment is measured against.
    std::int64_t work = handler.work.ns;
    if (handler.work.dist != WorkDist::fixed) [[unlikely]] {
        if (!work_rng_) work_rng_ = std::make_unique<std::mt19937_64>(std::random_device{}());
        work = handler.work.draw(*work_rng_);
    }
    span_.work_ns = work;
    detail::spend(handler.work.kind, work, shared_.abandon);
}

void ConsumerThread::log_event(const Handler& handler, int fd, std::uint64_t value,
                               std::int64_t latency_ns, int cpu, int fire_cpu) {
    if (!log::enabled(log::Level::debug)) return;
    log::emit(log::Level::debug, "event",
              {{"consumer", index_},
               {"producer", handler.producer()},
               {"kind", to_string(handler.kind)},
               {"fd", fd},
               {"value", value},
               {"latency_us", static_cast<double>(latency_ns) / 1000.0},
               {"cpu", cpu},
               {"fire_cpu", fire_cpu}});
}

void ConsumerThread::read_failed(const char* what, int fd, int err) {
    counts.consumer_errors.add();
    log::emit(log::Level::err, std::string(what) + " read failed",
              {{"fd", fd}, {"error", errno_text(err)}});
}

void ConsumerThread::rearm(int fd, std::uint64_t token) {
    // Re-arming re-checks readiness, so what landed after our read is reported again.
    if (const int err = shared_.epoll.rearm(fd, token); err != 0) {
        counts.consumer_errors.add();
        log::emit(log::Level::err, "epoll_ctl MOD failed",
                  {{"fd", fd}, {"error", errno_text(err)}});
    }
}

void ConsumerThread::found_outlier(const Handler& handler, std::int64_t due, std::int64_t written,
                                   std::int64_t read, int cpu, int fire_cpu,
                                   const CpuLatencyRecorder::Path& path) {
    Outlier o;
    o.producer = std::string(handler.producer());
    o.kind = handler.kind;
    o.consumer = index_;
    o.consumer_tid = tid.load(std::memory_order_relaxed);
    o.cpu = cpu;
    o.park_cpu = park_cpu_;
    o.fire_cpu = fire_cpu;
    o.due_ns = due;
    o.written_ns = written;
    o.returned_ns = batch_returned_;
    o.turn_ns = turn_;
    o.read_ns = read;
    o.latency_ns = read - due;
    o.producer_ns = static_cast<std::int64_t>(path.producer);
    o.wake_up_ns = static_cast<std::int64_t>(path.wake_up);
    o.batch_ns = static_cast<std::int64_t>(path.batch);
    o.overrun_ahead_ns = overrun_ahead_;
    // What the pool was doing: which consumers were parked when it was written, and which
    // others while it waited in this batch.
    const std::uint32_t used = shared_.park_logs_used.load(std::memory_order_relaxed);
    for (std::uint32_t c = 0; c < used; ++c) {
        const ParkLog& log = shared_.park_logs[c];
        if (log.parked_during(written, written)) ++o.parked_at_write;
        if (c != index_ && log.parked_during(batch_returned_, turn_)) ++o.parked_in_batch;
    }
    pending_outlier_ = std::move(o);
}

void ConsumerThread::probe_arrival(std::int64_t at) noexcept {
    probe_countdown_ = kProbeEvery;
    const std::uint32_t used = shared_.park_logs_used.load(std::memory_order_relaxed);
    bool parked = false;
    for (std::uint32_t c = 0; c < used && !parked; ++c)
        parked = shared_.park_logs[c].parked_during(at, at);
    counts.arrival_probes.add();
    if (!parked) counts.arrivals_found_all_busy.add();
}

void ConsumerThread::end_span(std::int64_t now) {
    span_.pending = false;
    const std::int64_t handler = std::max<std::int64_t>(now - span_.turn, 0);
    shared_.cpu_latency.record_handler(span_.cpu, span_.timer, static_cast<std::uint64_t>(handler));
    overrun_ahead_ += std::max<std::int64_t>(handler - span_.work_ns, 0);
    if (pending_outlier_) {
        Outlier& o = *pending_outlier_;
        o.handler_ns = handler;
        o.handler_end_ns = now;
        o.cause = classify(o);
        shared_.outliers.add(std::move(o));
        pending_outlier_.reset();
    }
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

}  // namespace evfly::detail
