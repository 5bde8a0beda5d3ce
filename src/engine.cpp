#include "evfly/engine.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>

#include "engine_impl.h"
#include "evfly/log.h"

namespace evfly {

using detail::ConsumerThread;
using detail::ProducerThread;
using detail::Shared;

struct Engine::Impl {
    explicit Impl(const Config& cfg) : config(cfg), shared(config) {}
    Config config;  // owned copy: threads keep references into it
    Shared shared;
    bool started = false;
    bool stopped = false;
};

namespace {
std::uint32_t slots_per_thread(const ProducerConfig& p) {
    if (p.kind == ProducerKind::timerfd) return p.timers;
    return p.fd_mode == FdMode::per_event ? p.max_in_flight : 1;
}
}  // namespace

Engine::Engine(const Config& config) : impl_(std::make_unique<Impl>(config)) {
    Shared& shared = impl_->shared;
    shared.stop_fd = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!shared.stop_fd) throw_errno("eventfd");
    // Level-triggered on purpose: once written and never read, it stays ready, so every consumer
    // that calls epoll_wait receives it.
    if (const int err = shared.epoll.add(shared.stop_fd.get(), EPOLLIN,
                                         detail::make_token(detail::kStopIndex, 0))) {
        throw std::system_error(err, std::generic_category(), "epoll_ctl ADD (stop eventfd)");
    }

    std::uint64_t total = 0;
    for (const auto& p : impl_->config.producers)
        total += std::uint64_t{slots_per_thread(p)} * p.threads;
    if (total >= detail::kStopIndex) throw std::length_error("too many producer slots");
    shared.slot_count = static_cast<std::uint32_t>(total);
    shared.slots = std::make_unique<detail::Slot[]>(total);

    std::uint32_t next_slot = 0;
    for (std::uint32_t spec = 0; spec < impl_->config.producers.size(); ++spec) {
        const ProducerConfig& p = impl_->config.producers[spec];
        const std::uint32_t count = slots_per_thread(p);
        for (std::uint32_t t = 0; t < p.threads; ++t) {
            shared.producers.push_back(
                std::make_unique<ProducerThread>(shared, spec, t, next_slot, count));
            next_slot += count;
        }
    }
    if (const char* wedge = std::getenv("EVFLY_TEST_WEDGE_CONSUMER_MS")) {
        shared.test_wedge_ns.store(std::strtoll(wedge, nullptr, 10) * 1'000'000);
    }
    for (std::uint32_t c = 0; c < impl_->config.daemon.consumers; ++c) {
        shared.consumers.push_back(std::make_unique<ConsumerThread>(shared, c));
    }
}

Engine::~Engine() {
    stop(std::chrono::steady_clock::now() + impl_->config.daemon.shutdown_timeout);
}

void Engine::start() {
    Shared& shared = impl_->shared;
    impl_->started = true;
    shared.epoch_realtime = detail::clock_ns(CLOCK_REALTIME);
    shared.epoch_monotonic = detail::clock_ns(CLOCK_MONOTONIC);
    shared.epoch_boottime = detail::clock_ns(CLOCK_BOOTTIME);
    // Consumers first: by the time anything fires, someone is waiting for it.
    for (auto& c : shared.consumers) c->start();
    for (auto& p : shared.producers) p->start();
    std::unique_lock lock(shared.started_mutex);
    const auto expected = shared.consumers.size() + shared.producers.size();
    shared.started_cv.wait(lock, [&] { return shared.started == expected; });
}

bool Engine::stop(std::chrono::steady_clock::time_point deadline) {
    if (impl_->stopped) return true;
    impl_->stopped = true;
    Shared& shared = impl_->shared;
    shared.drain_deadline_ns.store(
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count(),
        std::memory_order_release);
    // Producers stop firing, retire their persistent fds (reading what is left) and wait until
    // the consumers have closed every per-event fd they fired, or the deadline passes.
    for (auto& p : shared.producers) p->request_stop();
    for (auto& p : shared.producers) p->join();

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
    for (auto& c : shared.consumers) c->join();
    std::uint64_t leftovers = 0;
    for (auto& p : shared.producers) leftovers += p->abandon_leftovers();
    if (leftovers != 0) log::emit(log::Level::warn, "closed unconsumed fds", {{"fds", leftovers}});
    return drained;
}

std::vector<std::uint32_t> Engine::stuck_consumers(std::chrono::nanoseconds limit) const {
    std::vector<std::uint32_t> stuck;
    const std::int64_t now = detail::steady_ns();
    const auto& consumers = impl_->shared.consumers;
    for (std::uint32_t i = 0; i < consumers.size(); ++i) {
        const std::int64_t since = consumers[i]->busy_since.load(std::memory_order_relaxed);
        if (since != 0 && now - since > limit.count()) stuck.push_back(i);
    }
    return stuck;
}

void Engine::report_into(Report& out) const {
    const Shared& shared = impl_->shared;
    const auto& specs = impl_->config.producers;
    out.consumers = static_cast<std::uint32_t>(shared.consumers.size());
    out.producers.assign(specs.size(), ProducerReport{});
    for (std::size_t i = 0; i < specs.size(); ++i) {
        out.producers[i].name = specs[i].name;
        out.producers[i].kind = specs[i].kind;
        out.producers[i].fd_mode = specs[i].fd_mode;
        out.producers[i].threads = specs[i].threads;
    }
    // Read the consumers first: a value is counted as written before it can be read, so this
    // order never shows more read than written.
    out.events_dispatched = out.epoll_wakeups = out.stale_events = out.consumer_errors = 0;
    out.eventfd_latency = HistogramSnapshot{};
    out.timerfd_latency = HistogramSnapshot{};
    HistogramSnapshot scratch;
    for (const auto& c : shared.consumers) {
        for (std::size_t i = 0; i < specs.size(); ++i) {
            const detail::SpecCounters& sc = c->per_spec[i];
            out.producers[i].value_read += sc.value_read.get();
            out.producers[i].expirations += sc.expirations.get();
            out.producers[i].overruns += sc.overruns.get();
        }
        out.events_dispatched += c->dispatched.get();
        out.epoll_wakeups += c->wakeups.get();
        out.stale_events += c->stale.get();
        out.consumer_errors += c->errors.get();
        c->eventfd_latency.snapshot_into(scratch);
        out.eventfd_latency.merge(scratch);
        c->timerfd_latency.snapshot_into(scratch);
        out.timerfd_latency.merge(scratch);
    }
    std::size_t producer = 0;
    for (std::size_t spec = 0; spec < specs.size(); ++spec) {
        ProducerReport& r = out.producers[spec];
        for (std::uint32_t t = 0; t < specs[spec].threads; ++t, ++producer) {
            const ProducerThread& p = *shared.producers[producer];
            r.value_read += p.value_drained.get() + p.expirations_drained.get();
            r.expirations += p.expirations_drained.get();
            r.overruns += p.overruns_drained.get();
            r.fired += p.fired.get();
            r.value_written += p.value_written.get();
            r.write_retries += p.write_retries.get();
            r.fd_exhaustion += p.fd_exhaustion.get();
            r.errors += p.errors.get();
        }
        if (r.kind == ProducerKind::timerfd) {
            // The kernel fires timers: what was written is what the expirations read say.
            r.fired = r.value_written = r.expirations;
        }
    }
}

}  // namespace evfly
