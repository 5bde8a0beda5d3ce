#include "evfly/engine.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "consumer_thread.h"
#include "evfly/log.h"
#include "producer_thread.h"

namespace evfly {

using detail::ConsumerThread;
using detail::ProducerThread;
using detail::Shared;
using detail::Spec;

namespace {

// The longest the engine waits for the threads it starts to report that they run.
constexpr std::chrono::seconds kStartWait{10};
// The longest a reload waits for the consumers that leave a shrinking pool.
constexpr std::chrono::seconds kLeaveWait{2};

// Slots a thread of `p` may hold at most.
std::uint32_t slots_per_thread(const ProducerConfig& p) {
    if (p.kind == ProducerKind::timerfd) return p.timers;
    return p.fd_mode == FdMode::per_event ? p.max_in_flight : 1;
}

// Slots a thread of `p` starts with: a per-event thread takes more as its fds in flight grow.
constexpr std::uint32_t kInitialPerEventSlots = 64;
std::uint32_t initial_slots(const ProducerConfig& p) {
    return std::min(slots_per_thread(p),
                    p.kind == ProducerKind::eventfd && p.fd_mode == FdMode::per_event
                        ? kInitialPerEventSlots
                        : slots_per_thread(p));
}

std::uint64_t slots_needed(const ProducerConfig& p) {
    return std::uint64_t{slots_per_thread(p)} * p.threads;
}

std::int64_t to_ns(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void accumulate(ProducerReport& into, const ProducerReport& r) {
    into.fired += r.fired;
    into.value_written += r.value_written;
    into.value_read += r.value_read;
    into.expirations += r.expirations;
    into.overruns += r.overruns;
    into.write_retries += r.write_retries;
    into.fd_exhaustion += r.fd_exhaustion;
    into.errors += r.errors;
    into.due += r.due;
    into.late += r.late;
    into.skipped += r.skipped;
    into.stalls += r.stalls;
    into.clock_jumps += r.clock_jumps;
}

// The entry for `r`'s producer in `list` (same name and kind), appended with no counts if absent.
ProducerReport& entry_for(std::vector<ProducerReport>& list, const ProducerReport& r) {
    for (auto& e : list)
        if (e.name == r.name && e.kind == r.kind) return e;
    ProducerReport& e = list.emplace_back();
    e.name = r.name;
    e.kind = r.kind;
    e.fd_mode = r.fd_mode;
    return e;
}

// Counters of consumers that have left the pool, kept so that reports never go backwards.
struct ConsumerTotals {
    std::uint64_t wakeups = 0;
    std::uint64_t epoll_returns = 0;
    std::uint64_t spin_polls = 0;
    std::uint64_t dispatched = 0;
    std::uint64_t stale = 0;
    std::uint64_t errors = 0;
    std::uint64_t handler_errors = 0;
};

// A test-only knob from the environment; 0 when unset. Read by the supervisor before any engine
// thread starts, and evflyd never sets its environment, so no setenv() races the read.
std::uint64_t env_u64(const char* name) {
    const char* text = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
    if (text == nullptr) return 0;
    log::emit(log::Level::warn, "test-only hook set; never in production",
              {{"variable", name}, {"value", text}});
    return std::strtoull(text, nullptr, 10);
}

}  // namespace

TestHooks TestHooks::from_environment() {
    TestHooks hooks;
    hooks.wedge_consumer_ns =
        static_cast<std::int64_t>(env_u64("EVFLY_TEST_WEDGE_CONSUMER_MS")) * 1'000'000;
    hooks.throw_every = env_u64("EVFLY_TEST_THROW_EVERY");
    hooks.timer_cancel_every = env_u64("EVFLY_TEST_TIMER_CANCEL_EVERY");
    hooks.fd_errno = static_cast<int>(env_u64("EVFLY_TEST_FD_ERRNO"));
    if (const std::uint64_t v = env_u64("EVFLY_TEST_EVENTFD_VALUE"); v != 0)
        hooks.eventfd_value = v;
    return hooks;
}

struct Engine::Impl {
    Impl(const Config& cfg, const TestHooks& hooks) : config(cfg), shared(hooks) {}
    // Every member function of Engine runs on one thread, the supervisor (debug builds check).
    detail::ThreadOwner supervisor;
    Config config;  // the config in force
    Shared shared;
    std::vector<std::unique_ptr<Spec>> specs;     // running, in config order
    std::vector<std::unique_ptr<Spec>> retiring;  // stopped, some fds not yet consumed
    std::vector<ProducerReport> finished;         // totals of producers gone, by name and kind
    std::vector<std::unique_ptr<ConsumerThread>> consumers;
    ConsumerTotals departed;             // counters of consumers joined and gone
    std::uint64_t retire_requested = 0;  // retire units written to the retire eventfd
    std::uint64_t retired = 0;           // consumers that left on one, joined
    std::uint32_t pool_at_stop = 0;      // consumers running when stop() began
    bool started = false;
    bool stopped = false;
    // Warm-up: latency recorded between begin_warmup() and end_warmup() is left out of reports.
    // Every sample is in the one per-CPU recorder (consumers that left included), so one
    // snapshot gives the totals and the split alike.
    bool warming = false;
    std::vector<CpuLatency> warmup_start;  // the recorder when the current warm-up began
    std::vector<CpuLatency> excluded;      // everything recorded during finished warm-ups

    // The oldest event in flight of `spec` at `now` (steady ns).
    InFlightAge oldest_in_flight(const Spec& spec, std::int64_t now) const {
        InFlightAge oldest;
        const ProducerConfig& p = spec.config;
        const bool timer = p.kind == ProducerKind::timerfd;
        const bool per_event = !timer && p.fd_mode == FdMode::per_event;
        const std::int64_t clock_now = timer ? detail::clock_ns(p.clock) : now;
        for (const auto& t : spec.threads) {
            for (const std::uint32_t index : t->slots()) {
                const detail::Slot& slot = shared.slots[index];
                std::int64_t since = 0;
                if (per_event) {
                    since = slot.written.load(std::memory_order_acquire);
                } else if (slot.stamp.load(std::memory_order_acquire) != 0) {
                    since = timer ? slot.stamp.load(std::memory_order_relaxed)
                                  : slot.written.load(std::memory_order_relaxed);
                }
                if (since == 0 || since >= clock_now) continue;
                const int fd = slot.fd.load(std::memory_order_relaxed);
                if (fd < 0) continue;
                if (clock_now - since > oldest.age_ns) {
                    oldest.age_ns = clock_now - since;
                    oldest.producer = p.name;
                    oldest.fd = fd;
                }
            }
        }
        return oldest;
    }

    std::unique_ptr<Spec> make_spec(const ProducerConfig& p) {
        auto spec = std::make_unique<Spec>();
        spec->config = p;
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

    // Starts `count` threads with `start_one(i)` and waits until each runs. If one cannot be
    // started, waits for those that were and rethrows the failure; the caller unwinds them.
    template <typename F>
    std::size_t start_threads(std::size_t count, F start_one) {
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

    void start_spec(Spec& spec) {
        try {
            start_threads(spec.threads.size(), [&](std::size_t i) { spec.threads[i]->start(); });
        } catch (...) {
            stop_spec(spec, detail::steady_ns());
            throw;
        }
    }

    static void stop_spec(Spec& spec, std::int64_t deadline_ns) {
        for (auto& t : spec.threads) t->request_stop(deadline_ns);
        for (auto& t : spec.threads) t->join();
    }

    ProducerReport spec_report(const Spec& spec) const {
        ProducerReport r;
        r.name = spec.config.name;
        r.kind = spec.config.kind;
        r.fd_mode = spec.config.fd_mode;
        r.threads = spec.config.threads;
        r.stalls = spec.stalls;
        const std::int64_t now = detail::steady_ns();
        // What consumers read first: a value is counted as written before it can be read, so
        // this order never shows more read than written.
        for (const auto& t : spec.threads) {
            for (const std::uint32_t index : t->slots()) {
                const detail::Slot& slot = shared.slots[index];
                r.value_read += slot.value_read.get();
                r.overruns += slot.overruns.get();
                r.clock_jumps += slot.clock_jumps.get();
            }
            r.value_read += t->value_drained.get() + t->expirations_drained.get();
            r.overruns += t->overruns_drained.get();
            r.fired += t->fired.get();
            r.value_written += t->value_written.get();
            r.write_retries += t->write_retries.get();
            r.fd_exhaustion += t->fd_exhaustion.get();
            r.errors += t->errors.get();
            // Skipped before due: a skip is counted before the schedule moves on.
            r.skipped += t->schedule().skipped();
            r.late += t->schedule().late();
            r.due += t->due_by(now);
        }
        if (r.kind == ProducerKind::timerfd) {
            // The kernel fires timers: what was written is what the expirations read say.
            r.expirations = r.value_read;
            r.fired = r.value_written = r.due = r.expirations;
        }
        return r;
    }

    // Joins consumers that left the pool and folds their counters into `departed`.
    void reap_consumers() {
        std::erase_if(consumers, [&](const std::unique_ptr<ConsumerThread>& c) {
            if (!c->exited()) return false;
            c->join();
            departed.wakeups += c->wakeups.get();
            departed.epoll_returns += c->epoll_returns.get();
            departed.spin_polls += c->spin_polls.get();
            departed.dispatched += c->dispatched.get();
            departed.stale += c->stale.get();
            departed.errors += c->errors.get();
            departed.handler_errors += c->handler_errors.get();
            if (!stopped) ++retired;
            return true;
        });
    }

    // Releases stopped producers whose fds are all consumed: their counts move to `finished`
    // and their slots become free.
    void release_drained() {
        const std::int64_t now = detail::steady_ns();
        std::erase_if(retiring, [&](const std::unique_ptr<Spec>& spec) {
            for (auto& t : spec->threads)
                if (!t->finished()) return false;  // still draining; looked at again later
            for (auto& t : spec->threads) t->join();
            for (auto& t : spec->threads)
                if (!t->settle(now)) return false;
            ProducerReport r = spec_report(*spec);
            accumulate(entry_for(finished, r), r);
            for (auto& t : spec->threads) shared.slots.release(t->slots());
            return true;
        });
    }

    [[nodiscard]] std::uint32_t running_consumers() const {
        return static_cast<std::uint32_t>(std::count_if(
            consumers.begin(), consumers.end(), [](const auto& c) { return !c->exited(); }));
    }

    // New consumers get `placement`.
    void resize_pool(std::uint32_t target, std::int64_t deadline_ns, const Placement& placement);

    // Why the threads just started could not all be placed as configured ("" when they were).
    [[nodiscard]] std::string placement_errors() const {
        for (const auto& c : consumers)
            if (!c->placement_error.empty()) return c->placement_error;
        for (const auto& spec : specs)
            for (const auto& t : spec->threads)
                if (!t->placement_error.empty()) return t->placement_error;
        return {};
    }

    // Applies `next` to the running consumers and to the threads of `specs[i]` (those of
    // producers whose placement alone changed, with their new placement); on a failure puts back
    // what it changed and returns why.
    std::string replace_placements(const Placement& consumers_next,
                                   const std::vector<std::pair<Spec*, Placement>>& producers_next);
};

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

    std::uint64_t total = 0;
    for (const auto& p : config.producers) total += slots_needed(p);
    if (total > shared.slots.available())
        throw std::length_error("too many producer slots (at most 16M)");
    for (const auto& p : impl_->config.producers) impl_->specs.push_back(impl_->make_spec(p));
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

std::string Engine::Impl::replace_placements(
    const Placement& consumers_next,
    const std::vector<std::pair<Spec*, Placement>>& producers_next) {
    struct Undo {
        pid_t tid;
        std::uint32_t index;
        const Placement* old;
        std::string prefix;
    };
    std::vector<Undo> done;
    const auto put_back = [&] {
        for (const auto& u : done)
            (void)detail::apply_placement(*u.old, shared.placement_defaults, u.tid, u.index,
                                          u.prefix);
    };
    if (consumers_next != config.daemon.placement) {
        for (const auto& c : consumers) {
            if (c->exited()) continue;
            const pid_t tid = c->tid.load(std::memory_order_relaxed);
            if (std::string why = detail::apply_placement(consumers_next, shared.placement_defaults,
                                                          tid, c->index(), "daemon.");
                !why.empty()) {
                put_back();
                return why;
            }
            done.push_back({tid, c->index(), &config.daemon.placement, "daemon."});
        }
    }
    for (const auto& [spec, next] : producers_next) {
        const std::string prefix = "producer." + spec->config.name + ".";
        for (const auto& t : spec->threads) {
            const pid_t tid = t->tid.load(std::memory_order_relaxed);
            if (tid == 0 || t->finished()) continue;
            if (std::string why = detail::apply_placement(next, shared.placement_defaults, tid,
                                                          t->index(), prefix);
                !why.empty()) {
                put_back();
                return why;
            }
            done.push_back({tid, t->index(), &spec->config.placement, prefix});
        }
    }
    return {};
}

void Engine::Impl::resize_pool(std::uint32_t target, std::int64_t deadline_ns,
                               const Placement& placement) {
    reap_consumers();
    // Consumers still running, less those already asked to leave.
    const std::uint64_t pending = retire_requested - retired;
    std::uint64_t intended = consumers.size() - std::min<std::uint64_t>(pending, consumers.size());
    const std::uint64_t before = intended;
    if (before == target) return;
    const int retire = shared.retire_fd.get();
    // Growing while some are still asked to leave: take the requests back first.
    std::uint64_t unit = 0;
    while (intended < target && retire_requested > retired &&
           ::read(retire, &unit, sizeof unit) == static_cast<ssize_t>(sizeof unit)) {
        --retire_requested;
        ++intended;
    }
    if (intended < target) {
        std::vector<std::uint32_t> used;
        for (const auto& c : consumers) used.push_back(c->index());
        std::sort(used.begin(), used.end());
        std::vector<std::unique_ptr<ConsumerThread>> fresh;
        for (std::uint32_t index = 0, u = 0; fresh.size() < target - intended; ++index) {
            while (u < used.size() && used[u] < index) ++u;
            if (u < used.size() && used[u] == index) continue;
            fresh.push_back(std::make_unique<ConsumerThread>(shared, index, placement));
        }
        // A consumer joins the pool once it runs; one that could not be started is dropped.
        start_threads(fresh.size(), [&](std::size_t i) {
            fresh[i]->start();
            consumers.push_back(std::move(fresh[i]));
        });
    } else if (intended > target) {
        const std::uint64_t leave = intended - target;
        if (::write(retire, &leave, sizeof leave) != static_cast<ssize_t>(sizeof leave))
            throw_errno("write (retire eventfd)");
        retire_requested += leave;
        // Each leaving consumer first finishes the batch in hand; wait for them, within reason:
        // at most kLeaveWait, so that the supervisor is back to its signals and watchdog soon. A
        // consumer still busy then leaves after its batch and is joined by collect().
        const auto deadline =
            std::min(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns)),
                     std::chrono::steady_clock::now() + kLeaveWait);
        {
            detail::MutexLock lock(shared.lifecycle_mutex);
            shared.lifecycle_cv.wait_until(lock, deadline, [&] {
                const auto gone = static_cast<std::uint64_t>(std::count_if(
                    consumers.begin(), consumers.end(), [](const auto& c) { return c->exited(); }));
                return gone >= retire_requested - retired;
            });
        }
        reap_consumers();
    }
    log::emit(log::Level::info, "consumer pool resized",
              {{"from", before}, {"to", target}, {"running", running_consumers()}});
}

bool Engine::reconfigure(const Config& next) {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    bool changed = false;
    const std::int64_t deadline = detail::steady_ns() + next.daemon.shutdown_timeout.count();

    // Which running producers carry on untouched: same name, same table.
    std::vector<std::unique_ptr<Spec>*> unchanged(next.producers.size(), nullptr);
    std::uint64_t needed = 0;
    // A producer whose table differs only in its placement keeps its threads: they are placed
    // again where they run.
    const auto same_but_placement = [](ProducerConfig a, const ProducerConfig& b) {
        a.placement = b.placement;
        return a == b;
    };
    std::vector<std::pair<Spec*, Placement>> replaced;
    for (std::size_t j = 0; j < next.producers.size(); ++j) {
        for (auto& spec : impl.specs) {
            if (same_but_placement(spec->config, next.producers[j])) {
                unchanged[j] = &spec;
                if (spec->config.placement != next.producers[j].placement)
                    replaced.emplace_back(spec.get(), next.producers[j].placement);
            }
        }
        if (unchanged[j] == nullptr) needed += slots_needed(next.producers[j]);
    }
    if (needed > impl.shared.slots.available())
        throw std::length_error("too many producer slots (at most 16M)");

    // All or nothing: first start what is new (a bigger pool, new or retuned producers), and if
    // any thread cannot be started, stop what this reload started and leave everything that ran
    // as it was. Only then stop what goes, which cannot fail.
    const std::uint32_t consumers_before = impl.config.daemon.consumers;
    std::vector<std::unique_ptr<Spec>> fresh(next.producers.size());
    // Placement first: it is what most often fails (EPERM), and it is undone on a failure.
    if (const std::string why = impl.replace_placements(next.daemon.placement, replaced);
        !why.empty()) {
        log::emit(log::Level::err, "reload could not place its threads; nothing changed",
                  {{"error", why}});
        throw std::system_error(EPERM, std::generic_category(), why);
    }
    // Puts back the placement of every thread replace_placements() changed (their configs
    // still hold it until the commit below).
    const auto undo_placements = [&] {
        if (next.daemon.placement != impl.config.daemon.placement) {
            for (const auto& c : impl.consumers)
                if (!c->exited())
                    (void)detail::apply_placement(
                        impl.config.daemon.placement, impl.shared.placement_defaults,
                        c->tid.load(std::memory_order_relaxed), c->index(), "daemon.");
        }
        for (const auto& [spec, placement] : replaced)
            for (const auto& t : spec->threads)
                if (!t->finished())
                    (void)detail::apply_placement(
                        spec->config.placement, impl.shared.placement_defaults,
                        t->tid.load(std::memory_order_relaxed), t->index(),
                        "producer." + spec->config.name + ".");
    };
    try {
        if (next.daemon.consumers > consumers_before)
            impl.resize_pool(next.daemon.consumers, deadline, next.daemon.placement);
        for (std::size_t j = 0; j < next.producers.size(); ++j) {
            if (unchanged[j] != nullptr) continue;
            fresh[j] = impl.make_spec(next.producers[j]);
            fresh[j]->set_epoch();
            impl.start_spec(*fresh[j]);  // on failure, stops what of it started
        }
    } catch (const std::exception& e) {
        // Producers this reload started have stopped; their few fires stay accounted under their
        // name once drained. The pool goes back to its size.
        for (auto& spec : fresh) {
            if (!spec) continue;
            Impl::stop_spec(*spec, detail::steady_ns());
            impl.retiring.push_back(std::move(spec));
        }
        undo_placements();
        try {
            impl.resize_pool(consumers_before, deadline, impl.config.daemon.placement);
        } catch (const std::exception& again) {
            log::emit(log::Level::err, "cannot shrink the pool back after a failed reload",
                      {{"error", again.what()}});
        }
        log::emit(log::Level::err, "reload could not start its threads; nothing changed",
                  {{"error", e.what()}, {"consumers", impl.running_consumers()}});
        throw;
    }

    // Commit. What goes stops firing now, and drains in the background (within
    // shutdown_timeout): the supervisor does not wait for it, so signals and the watchdog are
    // served meanwhile; collect() joins it once drained.
    std::vector<std::unique_ptr<Spec>> kept(next.producers.size());
    for (std::size_t j = 0; j < next.producers.size(); ++j)
        kept[j] = unchanged[j] != nullptr ? std::move(*unchanged[j]) : std::move(fresh[j]);
    for (const auto& [spec, placement] : replaced) {
        spec->config.placement = placement;
        log::emit(log::Level::info, "producer placed anew", {{"producer", spec->config.name}});
        changed = true;
    }
    if (impl.config.daemon.placement != next.daemon.placement) {
        log::emit(log::Level::info, "consumers placed anew");
        changed = true;
    }
    for (auto& spec : impl.specs) {
        if (!spec) continue;
        for (auto& t : spec->threads) t->request_stop(deadline);
        const bool retuned =
            std::any_of(next.producers.begin(), next.producers.end(),
                        [&](const ProducerConfig& p) { return p.name == spec->config.name; });
        const ProducerReport r = impl.spec_report(*spec);
        log::emit(log::Level::info, retuned ? "producer stopped for retuning" : "producer removed",
                  {{"producer", r.name},
                   {"fired", r.fired},
                   {"value_written", r.value_written},
                   {"value_read", r.value_read},
                   {"in_flight", static_cast<std::int64_t>(r.value_written - r.value_read)}});
        impl.retiring.push_back(std::move(spec));
        changed = true;
    }
    impl.specs.clear();
    for (std::size_t j = 0; j < next.producers.size(); ++j) {
        if (unchanged[j] != nullptr) continue;
        const ProducerConfig& p = next.producers[j];
        log::emit(log::Level::info, "producer started",
                  {{"producer", p.name}, {"kind", to_string(p.kind)}, {"threads", p.threads}});
        changed = true;
    }
    if (next.daemon.consumers != consumers_before) {
        changed = true;
        if (next.daemon.consumers < consumers_before)
            impl.resize_pool(next.daemon.consumers, deadline, next.daemon.placement);
    }
    if (impl.config.daemon.max_events != next.daemon.max_events) {
        impl.shared.max_events.store(next.daemon.max_events, std::memory_order_relaxed);
        log::emit(log::Level::info, "max_events changed",
                  {{"from", impl.config.daemon.max_events}, {"to", next.daemon.max_events}});
        changed = true;
    }
    if (impl.config.daemon.spin != next.daemon.spin) {
        impl.shared.spin_ns.store(next.daemon.spin.count(), std::memory_order_relaxed);
        log::emit(log::Level::info, "spin changed",
                  {{"from_us", static_cast<double>(impl.config.daemon.spin.count()) / 1e3},
                   {"to_us", static_cast<double>(next.daemon.spin.count()) / 1e3}});
        changed = true;
    }
    if (impl.config.daemon.shutdown_timeout != next.daemon.shutdown_timeout) changed = true;
    impl.config.daemon = next.daemon;
    impl.config.producers.clear();
    for (auto& spec : kept) {
        impl.config.producers.push_back(spec->config);
        impl.specs.push_back(std::move(spec));
    }
    impl.release_drained();
    return changed;
}

void Engine::collect() {
    ASSERT_ON_THREAD(impl_->supervisor);
    impl_->reap_consumers();
    impl_->release_drained();
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

std::vector<std::uint32_t> Engine::stuck_consumers(std::chrono::nanoseconds limit) const {
    ASSERT_ON_THREAD(impl_->supervisor);
    std::vector<std::uint32_t> stuck;
    const std::int64_t now = detail::steady_ns();
    for (const auto& c : impl_->consumers) {
        const std::int64_t since = c->busy_since.load(std::memory_order_relaxed);
        if (since != 0 && now - since > limit.count()) stuck.push_back(c->index());
    }
    return stuck;
}

std::chrono::nanoseconds Engine::check_stalls(std::chrono::nanoseconds limit) {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    const std::int64_t now = detail::steady_ns();
    bool busy = !impl.retiring.empty();
    // With nothing in flight and only timers running, the next look is due only after the next
    // expiry could have stalled, so an idle daemon does not wake for its canary.
    std::int64_t next_timer = std::numeric_limits<std::int64_t>::max();
    for (auto* list : {&impl.specs, &impl.retiring}) {
        for (auto& spec : *list) {
            const ProducerConfig& p = spec->config;
            if (p.kind == ProducerKind::eventfd) {
                busy = true;
            } else {
                const std::int64_t clock_now = detail::clock_ns(p.clock);
                for (const auto& t : spec->threads) {
                    for (const std::uint32_t index : t->slots()) {
                        const detail::Slot& slot = impl.shared.slots[index];
                        const std::int64_t due = slot.stamp.load(std::memory_order_relaxed);
                        if (due != 0 && slot.fd.load(std::memory_order_relaxed) >= 0)
                            next_timer =
                                std::min(next_timer, std::max<std::int64_t>(due - clock_now, 0));
                    }
                }
            }
            const InFlightAge oldest = impl.oldest_in_flight(*spec, now);
            if (oldest.age_ns != 0) busy = true;
            if (oldest.age_ns <= limit.count()) {
                if (spec->stalled)
                    log::emit(log::Level::info, "stall over; events in flight move again",
                              {{"producer", spec->config.name}});
                spec->stalled = false;
                continue;
            }
            if (spec->stalled) continue;
            spec->stalled = true;
            ++spec->stalls;
            log::emit(log::Level::warn,
                      "event in flight too long; a wake-up may be lost or stalled",
                      {{"producer", spec->config.name},
                       {"fd", oldest.fd},
                       {"age_s", static_cast<double>(oldest.age_ns) / 1e9},
                       {"stall_after_s", std::chrono::duration<double>(limit).count()}});
        }
    }
    if (busy) return limit;
    if (next_timer == std::numeric_limits<std::int64_t>::max()) return std::chrono::nanoseconds(0);
    return std::chrono::nanoseconds(next_timer) + limit;
}

void Engine::begin_warmup() {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    if (impl.warming) return;  // one warm-up at a time; the caller extends it
    impl.warmup_start = impl.shared.cpu_latency.snapshot();
    impl.warming = true;
}

void Engine::end_warmup() {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    if (!impl.warming) return;
    merge_by_cpu(impl.excluded,
                 since_by_cpu(impl.shared.cpu_latency.snapshot(), impl.warmup_start));
    impl.warming = false;
}

void Engine::report_into(Report& out) const {
    const Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    out.consumers = impl.stopped ? impl.pool_at_stop : impl.running_consumers();
    // Consumers first, then producers: see spec_report().
    out.events_dispatched = impl.departed.dispatched;
    out.epoll_wakeups = impl.departed.wakeups;
    out.epoll_returns = impl.departed.epoll_returns;
    out.spin_polls = impl.departed.spin_polls;
    out.stale_events = impl.departed.stale;
    out.consumer_errors = impl.departed.errors;
    out.handler_errors = impl.departed.handler_errors;
    for (const auto& c : impl.consumers) {
        out.events_dispatched += c->dispatched.get();
        out.epoll_wakeups += c->wakeups.get();
        out.epoll_returns += c->epoll_returns.get();
        out.spin_polls += c->spin_polls.get();
        out.stale_events += c->stale.get();
        out.consumer_errors += c->errors.get();
        out.handler_errors += c->handler_errors.get();
    }
    std::vector<CpuLatency> latency = impl.shared.cpu_latency.snapshot();
    std::vector<CpuLatency> excluded = impl.excluded;
    if (impl.warming) merge_by_cpu(excluded, since_by_cpu(latency, impl.warmup_start));
    if (!excluded.empty()) latency = since_by_cpu(latency, excluded);
    const CpuLatency all = total_of(latency);
    out.eventfd_latency = all.eventfd_same_cpu;
    out.eventfd_latency.merge(all.eventfd_cross_cpu);
    out.eventfd_delivery = all.delivery_same_cpu;
    out.eventfd_delivery.merge(all.delivery_cross_cpu);
    out.timerfd_latency = all.timerfd;
    out.by_cpu = std::move(latency);
    const CpuLatency left_out = total_of(excluded);
    out.warmup_excluded_eventfd =
        left_out.eventfd_same_cpu.count() + left_out.eventfd_cross_cpu.count();
    out.warmup_excluded_timerfd = left_out.timerfd.count();
    out.oldest_in_flight = InFlightAge{};
    const std::int64_t now = detail::steady_ns();
    for (const auto* list : {&impl.specs, &impl.retiring}) {
        for (const auto& spec : *list) {
            InFlightAge age = impl.oldest_in_flight(*spec, now);
            if (age.age_ns > out.oldest_in_flight.age_ns) out.oldest_in_flight = std::move(age);
        }
    }
    out.producers.clear();
    for (const auto& spec : impl.specs) out.producers.push_back(impl.spec_report(*spec));
    // Producers a reload removed or retuned keep their counts, under their name.
    for (const auto& spec : impl.retiring) {
        const ProducerReport r = impl.spec_report(*spec);
        accumulate(entry_for(out.producers, r), r);
    }
    for (const auto& r : impl.finished) accumulate(entry_for(out.producers, r), r);
}

}  // namespace evfly
