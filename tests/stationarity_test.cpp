#include "evfly/stationarity.h"

#include <gtest/gtest.h>

#include <random>

#include "evfly/slo.h"

namespace evfly {
namespace {

// `n` intervals whose p99 and service mean are `p99_ns` and `service_ns` with 20 % noise, the
// service doubling from interval `step` on.
std::vector<IntervalStats> series(std::size_t n, double p99_ns, double service_ns,
                                  std::size_t step = SIZE_MAX) {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> noise(0.8, 1.2);
    std::vector<IntervalStats> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        out[i].eventfd.count = 1000;
        out[i].eventfd.p99 = static_cast<std::uint64_t>(p99_ns * noise(rng));
        out[i].service_count = 1000;
        out[i].service_mean_ns = service_ns * noise(rng) * (i >= step ? 2.0 : 1.0);
    }
    return out;
}

TEST(Stationarity, MannKendallSeesATrendAndNotNoise) {
    std::vector<double> rising;
    for (int i = 0; i < 20; ++i) rising.push_back(i);
    // S = 190, var = 20 * 19 * 45 / 18 = 950: z = 189 / 30.8.
    EXPECT_NEAR(mann_kendall_z(rising), 189.0 / std::sqrt(950.0), 1e-9);
    std::vector<double> falling(rising.rbegin(), rising.rend());
    EXPECT_NEAR(mann_kendall_z(falling), -mann_kendall_z(rising), 1e-9);
    EXPECT_EQ(mann_kendall_z({5, 5, 5, 5, 5}), 0.0);
    EXPECT_EQ(mann_kendall_z({1, 2}), 0.0);
}

TEST(Stationarity, MannWhitneySeesAStepBetweenTheHalves) {
    // Every value of the second half above every one of the first: U = 144 of 144.
    std::vector<double> low(12, 1.0), high(12, 2.0);
    for (std::size_t i = 0; i < 12; ++i) {
        low[i] += 0.01 * static_cast<double>(i % 5);
        high[i] += 0.01 * static_cast<double>(i % 3);
    }
    EXPECT_NEAR(mann_whitney_z(low, high), 72.0 / std::sqrt(300.0), 1e-9);
    EXPECT_NEAR(mann_whitney_z(high, low), -72.0 / std::sqrt(300.0), 1e-9);
    EXPECT_EQ(mann_whitney_z(low, low), 0.0);
    EXPECT_EQ(mann_whitney_z({}, low), 0.0);
}

TEST(Stationarity, ASteadyRunIsStationary) {
    const Stationarity s = check_stationarity(series(24, 100'000, 1'000'000));
    EXPECT_TRUE(s.checked);
    EXPECT_TRUE(s.stationary()) << s.reason;
    ASSERT_EQ(s.series.size(), 2u);
    EXPECT_EQ(s.series[0].name, "eventfd_p99");
    EXPECT_EQ(s.series[1].name, "service_mean");
    EXPECT_NEAR(s.series[1].ratio, 1.0, 0.2);
}

TEST(Stationarity, AHandlerCostThatDoublesHalfwayIsFlagged) {
    const Stationarity s = check_stationarity(series(24, 100'000, 1'000'000, 12));
    EXPECT_TRUE(s.checked);
    EXPECT_FALSE(s.stationary());
    EXPECT_FALSE(s.series[0].drifted);  // the latency did not move
    EXPECT_TRUE(s.series[1].drifted);
    EXPECT_NEAR(s.series[1].ratio, 2.0, 0.4);
    EXPECT_GT(s.series[1].halves_z, 3.0);
    EXPECT_NE(s.reason.find("service_mean drifted"), std::string::npos) << s.reason;
}

TEST(Stationarity, ATrendTooSmallToMatterIsNotFlagged) {
    // A steady 10 % climb: significant, but the halves are not 1.5x apart.
    std::vector<IntervalStats> s(24);
    for (std::size_t i = 0; i < s.size(); ++i) {
        s[i].eventfd.count = 1000;
        s[i].eventfd.p99 = 100'000 + 500 * i;
    }
    const Stationarity st = check_stationarity(s);
    EXPECT_GT(st.series[0].trend_z, 3.0);
    EXPECT_TRUE(st.stationary());
}

TEST(Stationarity, TooFewIntervalsAreNotChecked) {
    const Stationarity s = check_stationarity(series(5, 100'000, 1'000'000, 2));
    EXPECT_FALSE(s.checked);
    EXPECT_TRUE(s.stationary());
    EXPECT_NE(s.reason.find("at least 8 intervals"), std::string::npos) << s.reason;
}

TEST(Stationarity, TheGateDoesNotPassADriftingRunUnlessTold) {
    const Stationarity drifting = check_stationarity(series(24, 100'000, 1'000'000, 12));
    Config::Slo slo;
    slo.counts["max_lost"] = 0;
    const SloResult gated = evaluate_slo(slo, Report{}, drifting);
    ASSERT_EQ(gated.violations.size(), 1u);
    EXPECT_EQ(gated.violations[0].key, "stationarity");
    EXPECT_NE(gated.violations[0].note.find("service_mean drifted"), std::string::npos);
    slo.allow_non_stationary = true;
    EXPECT_TRUE(evaluate_slo(slo, Report{}, drifting).passed());
    // No [slo] limits: nothing is gated.
    EXPECT_FALSE(evaluate_slo(Config::Slo{}, Report{}, drifting).checked);
    EXPECT_TRUE(evaluate_slo(Config::Slo{}, Report{}, drifting).passed());
}

}  // namespace
}  // namespace evfly
