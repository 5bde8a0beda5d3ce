// The engine's accounting (what each producer fired, what the pool read, the latency
// histograms with the warm-up left out) and its health probes (stuck consumers, the stall
// canary).
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine_state.h"
#include "evfly/log.h"

namespace evfly {

using detail::ConsumerThread;
using detail::ProducerThread;
using detail::Shared;
using detail::Spec;

void accumulate_into(std::vector<ProducerReport>& list, const ProducerReport& r) {
    for (auto& e : list) {
        if (e.name == r.name && e.kind == r.kind) {
            e.add(r);
            return;
        }
    }
    ProducerReport& e = list.emplace_back();
    e.name = r.name;
    e.kind = r.kind;
    e.fd_mode = r.fd_mode;
    e.rate = r.rate;
    e.arrival = r.arrival;
    e.seed = r.seed;
    e.work_dist = r.work_dist;
    e.work_kind = r.work_kind;
    e.add(r);
}

ProducerReport Engine::Impl::spec_report(const Spec& spec) const {
    ProducerReport r;
    r.name = spec.config.name;
    r.kind = spec.config.kind;
    r.fd_mode = spec.config.fd_mode;
    r.threads = spec.config.threads;
    r.rate = spec.config.rate;
    r.arrival = spec.config.arrival;
    r.seed = spec.seed;
    r.work_dist = spec.config.work_dist;
    r.work_kind = spec.config.work_kind;
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
        r.drained_at_stop += t->value_drained.get() + t->expirations_drained.get();
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
        r.expirations = r.value_read + r.drained_at_stop;
        r.fired = r.value_written = r.due = r.expirations;
    }
    return r;
}

InFlightAge Engine::Impl::oldest_in_flight(const Spec& spec, std::int64_t now) const {
    InFlightAge oldest;
    const ProducerConfig& p = spec.config;
    const bool timer = p.kind == ProducerKind::timerfd;
    const bool per_event = !timer && p.fd_mode == FdMode::per_event;
    const bool persistent = !timer && p.fd_mode == FdMode::persistent;
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
                // A persistent stamp can outlive the fire it was for (read by the same read that
                // took the stamp before it): in flight only while a value is unread. What was
                // read first, so the comparison never shows a value read before it was written.
                if (persistent) {
                    const std::uint64_t read = slot.value_read.get() + t->value_drained.get();
                    if (t->value_written.get() <= read) since = 0;
                }
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
    update_outlier_thresholds();
}

void Engine::end_warmup() {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    if (!impl.warming) return;
    merge_by_cpu(impl.excluded,
                 since_by_cpu(impl.shared.cpu_latency.snapshot(), impl.warmup_start));
    impl.warming = false;
    update_outlier_thresholds();
}

void Engine::report_into(Report& out) const {
    const Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    out.consumers = impl.stopped ? impl.pool_at_stop : impl.running_consumers();
    // Consumers first, then producers: see spec_report().
    static_cast<PoolCounts&>(out) = impl.departed;
    for (const auto& c : impl.consumers)
        PoolCounts::each(out, c->counts,
                         [](const char*, std::uint64_t& into, const detail::Counter& counter) {
                             into += counter.get();
                         });
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
    out.explain = ExplainReport{};
    if (const Config::Explain& e = impl.config.explain; e.enabled()) {
        out.explain.enabled = true;
        out.explain.over = format_over(e);
        out.explain.over_eventfd_ns = impl.shared.over_eventfd_ns.load(std::memory_order_relaxed);
        out.explain.over_timerfd_ns = impl.shared.over_timerfd_ns.load(std::memory_order_relaxed);
        impl.shared.outliers.report_into(out.explain);
        if (impl.tracer) {
            out.explain.trace = impl.tracer->status();
        } else if (!impl.trace_unavailable.empty()) {
            out.explain.trace.state = "unavailable";
            out.explain.trace.reason = impl.trace_unavailable;
        }
    }
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
    for (const auto& spec : impl.retiring) accumulate_into(out.producers, impl.spec_report(*spec));
    for (const auto& r : impl.finished) accumulate_into(out.producers, r);
}

}  // namespace evfly
