// The engine's lifecycle: making it, starting its threads, collecting what finished, and the
// stop with its drain. Reloads are in engine_reload.cpp, accounting in engine_report.cpp.
#include "evfly/engine.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <random>

#include "engine_state.h"
#include "evfly/log.h"
#include "test_hook.h"

namespace evfly {

using detail::ConsumerThread;
using detail::ProducerThread;
using detail::Shared;
using detail::Spec;

namespace {

// The longest the engine waits for the threads it starts to report that they run.
constexpr std::chrono::seconds kStartWait{10};
// Slots a thread of `p` starts with: a per-event thread takes more as its fds in flight grow.
constexpr std::uint32_t kInitialPerEventSlots = 64;
std::uint32_t initial_slots(const ProducerConfig& p) {
    return is_per_event(p) ? std::min(p.max_in_flight, kInitialPerEventSlots) : slots_per_thread(p);
}

std::int64_t to_ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

TestHooks TestHooks::from_environment() {
    TestHooks hooks;
    hooks.wedge_consumer_ns =
        static_cast<std::int64_t>(detail::test_hook("EVFLY_TEST_WEDGE_CONSUMER_MS")) * 1'000'000;
    hooks.throw_every = detail::test_hook("EVFLY_TEST_THROW_EVERY");
    hooks.timer_cancel_every = detail::test_hook("EVFLY_TEST_TIMER_CANCEL_EVERY");
    hooks.fd_errno = static_cast<int>(detail::test_hook("EVFLY_TEST_FD_ERRNO"));
    hooks.epoll_add_errno = static_cast<int>(detail::test_hook("EVFLY_TEST_EPOLL_ADD_ERRNO"));
    hooks.settime_errno = static_cast<int>(detail::test_hook("EVFLY_TEST_SETTIME_ERRNO"));
    hooks.epoll_wait_errno = static_cast<int>(detail::test_hook("EVFLY_TEST_EPOLL_WAIT_ERRNO"));
    if (const std::uint64_t v = detail::test_hook("EVFLY_TEST_EVENTFD_VALUE"); v != 0)
        hooks.eventfd_value = v;
    return hooks;
}

std::unique_ptr<Spec> Engine::Impl::make_spec(const std::vector<ProducerConfig>& all,
                                              std::size_t j) {
    const ProducerConfig& p = all[j];
    auto spec = std::make_unique<Spec>();
    spec->config = p;
    spec->seed =
        p.seed ? *p.seed : std::random_device{}() | std::uint64_t{std::random_device{}()} << 32;
    spec->seed &= ~(std::uint64_t{1} << 63);  // a seed the config can give back
    // phase = "spread": the paced tables of one rate and arrival take turns over the period.
    if (p.kind == ProducerKind::eventfd && p.rate != 0 && p.phase == Phase::spread) {
        for (std::size_t k = 0; k < all.size(); ++k) {
            const ProducerConfig& q = all[k];
            if (q.kind != ProducerKind::eventfd || q.rate != p.rate || q.arrival != p.arrival ||
                q.burst != p.burst || q.phase != Phase::spread)
                continue;
            if (k < j) ++spec->phase_index;
            if (k != j) ++spec->phase_of;
        }
    }
    const std::uint32_t per_thread = initial_slots(p);
    try {
        for (std::uint32_t t = 0; t < p.threads; ++t) {
            spec->threads.push_back(std::make_unique<ProducerThread>(
                shared, *spec, t, shared.slots.allocate(per_thread)));
        }
    } catch (...) {
        for (auto& t : spec->threads) shared.slots.release(t->slots());
        throw;
    }
    return spec;
}

std::size_t Engine::Impl::start_threads(std::size_t count,
                                        const std::function<void(std::size_t)>& start_one) {
    std::uint64_t base = 0;
    {
        detail::MutexLock lock(shared.lifecycle_mutex);
        base = shared.started;
    }
    std::size_t n = 0;
    std::exception_ptr failure;
    try {
        for (; n < count; ++n) start_one(n);
    } catch (...) {
        failure = std::current_exception();
    }
    // Bounded: every thread counts itself in on every path, but a start must never keep the
    // supervisor (and its signals) waiting for ever.
    std::uint64_t up = 0;
    {
        detail::MutexLock lock(shared.lifecycle_mutex);
        shared.lifecycle_cv.wait_for(lock, kStartWait, [&]() REQUIRES(shared.lifecycle_mutex) {
            return shared.started >= base + n;
        });
        up = shared.started - base;
    }
    if (up < n) {
        log::emit(log::Level::err, "threads slow to start; carrying on without waiting",
                  {{"started", up}, {"expected", n}});
    }
    if (failure) std::rethrow_exception(failure);
    return n;
}

void Engine::Impl::start_spec(Spec& spec) {
    try {
        start_threads(spec.threads.size(), [&](std::size_t i) { spec.threads[i]->start(); });
    } catch (...) {
        stop_spec(spec, detail::steady_ns());
        throw;
    }
}

void Engine::Impl::stop_spec(Spec& spec, std::int64_t deadline_ns) {
    for (auto& t : spec.threads) t->request_stop(deadline_ns);
    for (auto& t : spec.threads) t->join();
}

void Engine::Impl::reap_consumers() {
    std::erase_if(consumers, [&](const std::unique_ptr<ConsumerThread>& c) {
        if (!c->exited()) return false;
        c->join();
        PoolCounts::each(departed, c->counts,
                         [](const char*, std::uint64_t& into, const detail::Counter& counter) {
                             into += counter.get();
                         });
        if (!stopped) ++retired;
        return true;
    });
}

void Engine::Impl::release_drained() {
    const std::int64_t now = detail::steady_ns();
    std::erase_if(retiring, [&](const std::unique_ptr<Spec>& spec) {
        for (auto& t : spec->threads)
            if (!t->finished()) return false;  // still draining; looked at again later
        for (auto& t : spec->threads) t->join();
        for (auto& t : spec->threads)
            if (!t->settle(now)) return false;
        ProducerReport r = spec_report(*spec);
        accumulate_into(finished, r);
        for (auto& t : spec->threads) shared.slots.release(t->slots());
        return true;
    });
}

std::uint32_t Engine::Impl::running_consumers() const {
    return static_cast<std::uint32_t>(std::count_if(consumers.begin(), consumers.end(),
                                                    [](const auto& c) { return !c->exited(); }));
}

std::string Engine::Impl::placement_errors() const {
    for (const auto& c : consumers)
        if (!c->placement_error.empty()) return c->placement_error;
    for (const auto& spec : specs)
        for (const auto& t : spec->threads)
            if (!t->placement_error.empty()) return t->placement_error;
    return {};
}

Engine::Engine(const Config& config, const TestHooks& hooks)
    : impl_(std::make_unique<Impl>(config, hooks)) {
    Shared& shared = impl_->shared;
    shared.stop_fd = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!shared.stop_fd) throw_errno("eventfd");
    // Level-triggered on purpose: once written and never read, it stays ready, so every consumer
    // that calls epoll_wait receives it.
    if (const int err = shared.epoll.add(shared.stop_fd.get(), EPOLLIN,
                                         detail::make_token(detail::kStopIndex, 0))) {
        throw std::system_error(err, std::generic_category(), "epoll_ctl ADD (stop eventfd)");
    }
    // One-shot: one consumer at a time takes a unit and re-arms it for the next, so shrinking
    // the pool wakes exactly the consumers that leave.
    shared.retire_fd = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE));
    if (!shared.retire_fd) throw_errno("eventfd");
    if (const int err = shared.epoll.add(shared.retire_fd.get(), kOneShotEvents,
                                         detail::make_token(detail::kRetireIndex, 0))) {
        throw std::system_error(err, std::generic_category(), "epoll_ctl ADD (retire eventfd)");
    }
    shared.max_events.store(config.daemon.max_events, std::memory_order_relaxed);
    shared.spin_ns.store(config.daemon.spin.count(), std::memory_order_relaxed);
    set_explain(config.explain);

    std::uint64_t total = 0;
    for (const auto& p : config.producers) total += slots_needed(p);
    shared.slots.check_room(total);
    for (std::size_t j = 0; j < impl_->config.producers.size(); ++j)
        impl_->specs.push_back(impl_->make_spec(impl_->config.producers, j));
    shared.wedge_ns.store(hooks.wedge_consumer_ns, std::memory_order_relaxed);
    shared.placement_defaults = detail::PlacementDefaults::of_this_process();
    for (std::uint32_t c = 0; c < config.daemon.consumers; ++c) {
        impl_->consumers.push_back(
            std::make_unique<ConsumerThread>(shared, c, config.daemon.placement));
    }
}

Engine::~Engine() {
    stop(std::chrono::steady_clock::now() + impl_->config.daemon.shutdown_timeout);
}

void Engine::start() {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    impl.started = true;
    // One epoch for every producer of the initial config: timers of equal period tick together,
    // whichever thread armed them and however long that took.
    if (!impl.specs.empty()) {
        const Spec& first = *impl.specs.front();
        impl.specs.front()->set_epoch();
        for (auto& spec : impl.specs) {
            spec->epoch_realtime = first.epoch_realtime;
            spec->epoch_monotonic = first.epoch_monotonic;
            spec->epoch_boottime = first.epoch_boottime;
        }
    }
    // Consumers first: by the time anything fires, someone is waiting for it.
    impl.start_threads(impl.consumers.size(), [&](std::size_t i) { impl.consumers[i]->start(); });
    for (auto& spec : impl.specs) impl.start_spec(*spec);
    // A placement the process may not take (EPERM without CAP_SYS_NICE, a CPU it may not use)
    // is an error at start: the caller stops the engine and exits 71, naming the key.
    if (const std::string why = impl.placement_errors(); !why.empty())
        throw std::system_error(EPERM, std::generic_category(), why);
}

bool Engine::collect() {
    ASSERT_ON_THREAD(impl_->supervisor);
    impl_->reap_consumers();
    impl_->release_drained();
    return !impl_->retiring.empty() || impl_->retire_requested > impl_->retired;
}

bool Engine::stop(std::chrono::steady_clock::time_point deadline) {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    if (impl.stopped) return true;
    impl.pool_at_stop = impl.running_consumers();
    impl.stopped = true;
    Shared& shared = impl.shared;
    const std::int64_t deadline_ns = to_ns(deadline);
    // Producers stop firing, retire their persistent fds (reading what is left) and wait until
    // the consumers have closed every per-event fd they fired, or the deadline passes. Producers
    // removed by a reload may still have fds out too.
    for (auto& spec : impl.specs)
        for (auto& t : spec->threads) t->request_stop(deadline_ns);
    for (auto& spec : impl.specs)
        for (auto& t : spec->threads) t->join();
    // Producers a reload removed may still be draining: their deadline becomes this one.
    for (auto& spec : impl.retiring)
        for (auto& t : spec->threads) t->request_stop(deadline_ns);
    for (auto& spec : impl.retiring) {
        for (auto& t : spec->threads) t->join();
        for (auto& t : spec->threads) (void)t->settle(deadline_ns);
    }

    Report report;
    report_into(report);
    const bool drained = report.totals().lost == 0;
    if (!drained) {
        shared.abandon.store(true, std::memory_order_relaxed);
        log::emit(log::Level::warn, "drain timed out; values left unread are reported as lost",
                  {{"lost", report.totals().lost}});
    }
    shared.stopping.store(true, std::memory_order_release);
    const std::uint64_t one = 1;
    if (::write(shared.stop_fd.get(), &one, sizeof one) != static_cast<ssize_t>(sizeof one)) {
        throw_errno("write (stop eventfd)");  // cannot happen: a fresh counter never fills
    }
    for (auto& c : impl.consumers) c->join();
    impl.reap_consumers();
    std::uint64_t leftovers = 0;
    const std::int64_t now = detail::steady_ns();
    for (auto* list : {&impl.specs, &impl.retiring}) {
        for (auto& spec : *list) {
            for (auto& t : spec->threads) {
                (void)t->settle(now);
                leftovers += t->abandon_leftovers();
            }
        }
    }
    if (leftovers != 0) log::emit(log::Level::warn, "closed unconsumed fds", {{"fds", leftovers}});
    return drained;
}

}  // namespace evfly
