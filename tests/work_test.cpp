// The handler cost's distributions, by their statistics (seeded, so exact from run to run), and
// its two ways of spending.
#include "work.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "clock.h"

using evfly::WorkDist;
using evfly::WorkKind;
using evfly::detail::Work;

namespace {

struct Moments {
    double mean = 0;
    double scv = 0;  // squared coefficient of variation: variance / mean^2
    double p99 = 0;
};

Moments sample(const Work& w, int n = 200'000) {
    std::mt19937_64 rng(2026);
    std::vector<double> x;
    x.reserve(static_cast<std::size_t>(n));
    double sum = 0;
    for (int i = 0; i < n; ++i) {
        x.push_back(static_cast<double>(w.draw(rng)));
        sum += x.back();
    }
    Moments m;
    m.mean = sum / n;
    double var = 0;
    for (const double v : x) var += (v - m.mean) * (v - m.mean);
    m.scv = var / (n - 1) / (m.mean * m.mean);
    std::nth_element(x.begin(), x.begin() + n * 99 / 100, x.end());
    m.p99 = x[static_cast<std::size_t>(n * 99 / 100)];
    return m;
}

}  // namespace

TEST(Work, FixedIsTheSameEveryTime) {
    Work w{.dist = WorkDist::fixed, .ns = 250'000};
    const Moments m = sample(w, 1'000);
    EXPECT_EQ(m.mean, 250'000.0);
    EXPECT_EQ(m.scv, 0.0);
    EXPECT_FALSE(w.none());
    EXPECT_TRUE(Work{}.none());
}

TEST(Work, ExponentialHasItsMeanAndACoefficientOfVariationOfOne) {
    const Moments m = sample(Work{.dist = WorkDist::exponential, .ns = 100'000});
    EXPECT_NEAR(m.mean, 100'000.0, 1'000.0);
    EXPECT_NEAR(m.scv, 1.0, 0.03);
    EXPECT_NEAR(m.p99, 100'000.0 * std::log(100.0), 0.03 * 100'000.0 * std::log(100.0));
}

// A lognormal of mean 20 us and p99 100 us (the sigma the config derives: 0.8455).
TEST(Work, LognormalHasItsMeanAndItsP99) {
    constexpr double kZ99 = 2.3263478740408408;
    const double sigma = kZ99 - std::sqrt(kZ99 * kZ99 - 2 * std::log(100.0 / 20.0));
    const Moments m = sample(Work{.dist = WorkDist::lognormal, .ns = 20'000, .sigma = sigma});
    EXPECT_NEAR(m.mean, 20'000.0, 400.0);
    EXPECT_NEAR(m.p99, 100'000.0, 3'000.0);
    EXPECT_NEAR(m.scv, std::exp(sigma * sigma) - 1, 0.05);
}

TEST(Work, BimodalTakesTheSlowTimeAtItsShare) {
    const Work w{.dist = WorkDist::bimodal, .ns = 10'000, .slow_ns = 1'000'000, .slow_share = 0.02};
    const Moments m = sample(w);
    // 0.98 * 10 us + 0.02 * 1 ms = 29.8 us
    EXPECT_NEAR(m.mean, 29'800.0, 600.0);
    EXPECT_EQ(m.p99, 1'000'000.0);
}

// Both ways take at least the time drawn; a sleeping handler leaves the CPU, a busy one does not.
TEST(Work, CpuWorkBurnsTheCpuAndSleepWorkLeavesIt) {
    const std::atomic<bool> abandon{false};
    const auto cpu_ns = []() {
        timespec t{};
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
    };
    for (const WorkKind kind : {WorkKind::cpu, WorkKind::sleep}) {
        const std::int64_t wall0 = evfly::detail::steady_ns();
        const std::int64_t cpu0 = cpu_ns();
        evfly::detail::spend(kind, 20'000'000, abandon);
        const std::int64_t wall = evfly::detail::steady_ns() - wall0;
        const std::int64_t cpu = cpu_ns() - cpu0;
        EXPECT_GE(wall, 20'000'000);
        if (kind == WorkKind::sleep) {
            EXPECT_LT(cpu, 2'000'000) << "a sleeping handler used the CPU";
        } else {
            EXPECT_GT(cpu, 2'000'000) << "a busy handler did not use the CPU";
        }
    }
}
