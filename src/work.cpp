#include "work.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

#include "clock.h"

namespace evfly::detail {

namespace {
constexpr std::int64_t kMaxDrawNs = 10'000'000'000;
}

Work Work::of(const ProducerConfig& p) noexcept {
    Work w;
    w.dist = p.work_dist;
    w.kind = p.work_kind;
    w.ns = p.work.count();
    w.sigma = p.work_sigma;
    w.slow_ns = p.work_slow.count();
    w.slow_share = p.work_slow_share;
    return w;
}

std::int64_t Work::draw(std::mt19937_64& rng) const noexcept {
    double x = 0;
    switch (dist) {
        case WorkDist::fixed:
            return ns;
        case WorkDist::exponential:
            x = std::exponential_distribution<double>(1.0 / static_cast<double>(ns))(rng);
            break;
        case WorkDist::lognormal: {
            // mean = exp(mu + sigma^2 / 2)
            const double mu = std::log(static_cast<double>(ns)) - sigma * sigma / 2;
            x = std::lognormal_distribution<double>(mu, sigma)(rng);
            break;
        }
        case WorkDist::bimodal:
            return std::bernoulli_distribution(slow_share)(rng) ? slow_ns : ns;
    }
    return std::clamp<std::int64_t>(static_cast<std::int64_t>(x), 0, kMaxDrawNs);
}

void spend(WorkKind kind, std::int64_t ns, const std::atomic<bool>& abandon) noexcept {
    if (ns <= 0) return;
    const std::int64_t until = steady_ns() + ns;
    if (kind == WorkKind::sleep) {
        const timespec at{static_cast<time_t>(until / 1'000'000'000),
                          static_cast<long>(until % 1'000'000'000)};
        while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) == EINTR &&
               !abandon.load(std::memory_order_relaxed)) {
        }
        return;
    }
    while (steady_ns() < until && !abandon.load(std::memory_order_relaxed)) {
    }
}

}  // namespace evfly::detail
