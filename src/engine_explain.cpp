// The engine's side of [explain]: the outlier thresholds the consumers compare against (fixed,
// or a percentile of the cumulative histograms) and the kernel tracer's life across reloads.
#include <cmath>
#include <system_error>

#include "engine_state.h"
#include "evfly/log.h"

namespace evfly {

void Engine::set_explain(const Config::Explain& explain) {
    Impl& impl = *impl_;
    using Trace = Config::Explain::Trace;
    const bool trace = explain.enabled() && explain.trace != Trace::off;
    const Config::Explain& before = impl.config.explain;
    // A tracer whose settings change is opened anew; opening is the step that can fail, so it
    // comes first and, with trace = "required", refuses the whole change.
    if (!trace || before.trace_buffer_kb != explain.trace_buffer_kb ||
        before.trace_every != explain.trace_every) {
        impl.shared.outliers.set_listener(nullptr);
        impl.tracer.reset();
    }
    if (trace && !impl.tracer) {
        std::string why;
        auto tracer = detail::Tracer::open(explain, impl.shared.placement_defaults.cpus,
                                           impl.shared.outliers, &why);
        if (!tracer && explain.trace == Trace::required)
            throw std::system_error(EPERM, std::generic_category(), why);
        if (!tracer && why != impl.trace_unavailable)
            log::emit(log::Level::warn,
                      "kernel tracing unavailable; outliers are explained without it",
                      {{"error", why}});
        impl.trace_unavailable = tracer ? "" : why;
        impl.tracer = std::move(tracer);
        if (impl.tracer)
            impl.shared.outliers.set_listener(
                [t = impl.tracer.get()](const Outlier& o) { t->offer(o); });
    }
    if (!trace) impl.trace_unavailable.clear();
    impl.config.explain = explain;
    impl.shared.outliers.configure(explain.worst, explain.log_over ? explain.log_over->count() : 0);
    update_outlier_thresholds();
}

void Engine::update_outlier_thresholds() {
    Impl& impl = *impl_;
    const Config::Explain& explain = impl.config.explain;
    // No outlier during a warm-up: its latency is left out of the histograms, and so are they.
    if (impl.warming || !explain.enabled()) {
        impl.shared.over_eventfd_ns.store(0, std::memory_order_relaxed);
        impl.shared.over_timerfd_ns.store(0, std::memory_order_relaxed);
        return;
    }
    if (explain.over) {
        impl.shared.over_eventfd_ns.store(explain.over->count(), std::memory_order_relaxed);
        impl.shared.over_timerfd_ns.store(explain.over->count(), std::memory_order_relaxed);
        return;
    }
    const auto& q = explain.over_quantile;
    Report r;
    report_into(r);
    // A percentile is known once at least 1 / (1 - q) samples are: p99.9 after 1 000.
    const auto needed = static_cast<std::uint64_t>(std::ceil(1.0 / (1.0 - *q)));
    const auto threshold = [&](const HistogramSnapshot& h) -> std::int64_t {
        return h.count() < needed ? 0 : static_cast<std::int64_t>(h.quantile(*q));
    };
    impl.shared.over_eventfd_ns.store(threshold(r.eventfd_latency), std::memory_order_relaxed);
    impl.shared.over_timerfd_ns.store(threshold(r.timerfd_latency), std::memory_order_relaxed);
}

}  // namespace evfly
