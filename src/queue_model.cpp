#include "queue_model.h"

#include <algorithm>
#include <cmath>

namespace evfly::queue {

double erlang_c(std::uint32_t c, double a) noexcept {
    if (c == 0 || a >= static_cast<double>(c)) return 1.0;
    if (a <= 0) return 0.0;
    // Erlang B by its recurrence, B_0 = 1, B_k = a B_{k-1} / (k + a B_{k-1}): no factorials and
    // no powers, so it holds for any c; then C = B / (1 - ρ (1 - B)).
    double b = 1.0;
    for (std::uint32_t k = 1; k <= c; ++k) b = a * b / (static_cast<double>(k) + a * b);
    const double rho = a / static_cast<double>(c);
    return b / (1.0 - rho * (1.0 - b));
}

const char* to_string(Model model) noexcept {
    switch (model) {
        case Model::deterministic:
            return "D/D/c";
        case Model::erlang_c:
            return "M/M/c (Erlang C)";
        case Model::allen_cunneen:
            return "G/G/c (Allen-Cunneen)";
    }
    return "?";
}

std::optional<double> Prediction::wait_quantile_ns(double q) const noexcept {
    if (saturated) return std::nullopt;
    if (model == Model::deterministic || all_busy <= 0 || decay_per_ns <= 0) return 0.0;
    // P(W > t) = C e^{-d t} = 1 - q  =>  t = ln(C / (1 - q)) / d, and 0 when C <= 1 - q.
    return std::max(0.0, std::log(all_busy / (1.0 - q)) / decay_per_ns);
}

Prediction predict(Model model, const Load& load) noexcept {
    Prediction p;
    p.model = model;
    const double lambda_per_ns = load.arrivals_per_s / 1e9;
    p.offered = lambda_per_ns * load.service_ns;
    const auto c = static_cast<double>(load.consumers);
    p.utilisation = c > 0 ? p.offered / c : (p.offered > 0 ? INFINITY : 0.0);
    p.saturated = p.utilisation >= 1.0;
    p.consumers_needed = static_cast<std::uint32_t>(std::floor(p.offered)) + 1;
    if (p.saturated) {
        p.all_busy = 1.0;
        return p;
    }
    if (model == Model::deterministic) {
        p.all_busy = 0.0;
        p.wait_mean_ns = p.wait_p50_ns = p.wait_p99_ns = 0.0;
        return p;
    }
    p.all_busy = erlang_c(load.consumers, p.offered);
    // M/M/c: P(W > t) = C e^{-(cμ - λ) t}, E[W] = C / (cμ - λ). Allen–Cunneen scales the mean
    // by (c_a² + c_s²) / 2; the tail keeps its exponential shape with that mean.
    const double mu_per_ns = load.service_ns > 0 ? 1.0 / load.service_ns : 0.0;
    double decay = c * mu_per_ns - lambda_per_ns;
    if (model == Model::allen_cunneen) {
        const double scale = (load.scv_arrivals + load.scv_service) / 2.0;
        decay = scale > 0 ? decay / scale : 0.0;
    }
    p.decay_per_ns = decay;
    p.wait_mean_ns = decay > 0 ? p.all_busy / decay : 0.0;
    p.wait_p50_ns = p.wait_quantile_ns(0.50);
    p.wait_p99_ns = p.wait_quantile_ns(0.99);
    return p;
}

}  // namespace evfly::queue
