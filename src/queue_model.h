// The queueing a load implies by itself: what a pool of c consumers, each serving one event at a
// time in E[S] on average, must make events wait when they arrive at rate λ, before the host or
// evflyd add anything. Erlang C for Poisson arrivals and exponential service (M/M/c), computed
// the stable way through Erlang B; Allen–Cunneen's scaling by the squared coefficients of
// variation for the general case (G/G/c); no wait at all for evenly spaced arrivals with fixed
// work below full load (D/D/c). Pure arithmetic, unit-tested against known values.
#pragma once

#include <cstdint>
#include <optional>

namespace evfly::queue {

// The probability that an arrival finds all c servers busy, M/M/c, at an offered load of `a`
// Erlangs (a = λ·E[S]); 1 when a >= c (the queue grows without bound).
double erlang_c(std::uint32_t c, double a) noexcept;

enum class Model : std::uint8_t {
    deterministic,  // D/D/c: evenly spaced arrivals, fixed work; no wait below ρ = 1
    erlang_c,       // M/M/c: Poisson arrivals, exponential work
    allen_cunneen,  // G/G/c: Erlang C scaled by (c_a² + c_s²) / 2
};
const char* to_string(Model model) noexcept;

struct Load {
    double arrivals_per_s = 0;  // λ
    double service_ns = 0;      // E[S]
    double scv_arrivals = 0;    // c_a²: 0 evenly spaced, 1 Poisson
    double scv_service = 0;     // c_s²: 0 fixed, 1 exponential
    std::uint32_t consumers = 0;
};

struct Prediction {
    double offered = 0;      // a = λ·E[S], in Erlangs: the consumers the load keeps busy
    double utilisation = 0;  // ρ = a / c
    bool saturated = false;  // ρ >= 1: no wait is finite, the backlog grows
    // The fewest consumers with ρ < 1.
    std::uint32_t consumers_needed = 0;
    double all_busy = 0;  // the share of arrivals that find every consumer busy (Erlang C)
    // The wait before service starts (not the service itself), ns; none when saturated.
    std::optional<double> wait_mean_ns;
    std::optional<double> wait_p50_ns;
    std::optional<double> wait_p99_ns;
    // The wait's q-quantile, ns (none when saturated).
    [[nodiscard]] std::optional<double> wait_quantile_ns(double q) const noexcept;

    Model model = Model::erlang_c;
    double decay_per_ns = 0;  // P(W > t) = all_busy · exp(-decay · t)
};

Prediction predict(Model model, const Load& load) noexcept;

}  // namespace evfly::queue
