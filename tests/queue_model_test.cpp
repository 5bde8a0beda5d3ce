#include "queue_model.h"

#include <gtest/gtest.h>

namespace evfly::queue {
namespace {

// The worked example of M/M/c: λ = 200 000/s, E[S] = 20 µs, so a = 4 Erlangs.
Load example(std::uint32_t consumers) { return Load{200'000.0, 20'000.0, 1.0, 1.0, consumers}; }

TEST(QueueModel, ErlangCMatchesKnownValues) {
    EXPECT_NEAR(erlang_c(5, 4.0), 0.554, 0.0005);
    EXPECT_NEAR(erlang_c(6, 4.0), 0.285, 0.0005);
    EXPECT_NEAR(erlang_c(8, 4.0), 0.059, 0.0005);
    // One server: C = ρ.
    EXPECT_NEAR(erlang_c(1, 0.3), 0.3, 1e-12);
    // Saturated, idle.
    EXPECT_EQ(erlang_c(4, 4.0), 1.0);
    EXPECT_EQ(erlang_c(4, 0.0), 0.0);
    // Large pools stay finite and in [0, 1] (no factorial overflow).
    const double big = erlang_c(2000, 1950.0);
    EXPECT_GT(big, 0.0);
    EXPECT_LT(big, 1.0);
}

TEST(QueueModel, ErlangCWaitPercentilesMatchKnownValues) {
    const Prediction five = predict(Model::erlang_c, example(5));
    EXPECT_NEAR(five.offered, 4.0, 1e-9);
    EXPECT_NEAR(five.utilisation, 0.8, 1e-9);
    EXPECT_FALSE(five.saturated);
    EXPECT_NEAR(five.all_busy, 0.554, 0.0005);
    ASSERT_TRUE(five.wait_p99_ns);
    EXPECT_NEAR(*five.wait_p99_ns / 1e3, 80.3, 0.1);
    // More than half the arrivals wait: the median is ln(0.554 / 0.5) / 50 000/s.
    EXPECT_NEAR(*five.wait_p50_ns / 1e3, 2.05, 0.01);
    // E[W] = C / (cμ - λ) = 0.554 / 50 000/s.
    EXPECT_NEAR(*five.wait_mean_ns / 1e3, 11.08, 0.02);

    const Prediction eight = predict(Model::erlang_c, example(8));
    EXPECT_NEAR(eight.all_busy, 0.059, 0.0005);
    EXPECT_NEAR(*eight.wait_p99_ns / 1e3, 8.9, 0.05);
    // Fewer than half wait at all: the median wait is zero.
    EXPECT_EQ(*eight.wait_p50_ns, 0.0);
}

TEST(QueueModel, EvenlySpacedFixedWorkDoesNotWaitBelowFullLoad) {
    const Prediction p = predict(Model::deterministic, Load{200'000.0, 20'000.0, 0, 0, 5});
    EXPECT_NEAR(p.utilisation, 0.8, 1e-9);
    EXPECT_EQ(p.all_busy, 0.0);
    EXPECT_EQ(*p.wait_p99_ns, 0.0);
    EXPECT_EQ(*p.wait_mean_ns, 0.0);
}

TEST(QueueModel, AllenCunneenScalesTheWaitByTheVariation) {
    // Poisson arrivals, fixed work (M/D/c): half the M/M/c mean wait.
    const Prediction md = predict(Model::allen_cunneen, Load{200'000.0, 20'000.0, 1.0, 0.0, 5});
    const Prediction mm = predict(Model::erlang_c, example(5));
    EXPECT_NEAR(*md.wait_mean_ns, *mm.wait_mean_ns / 2, 1e-6);
    EXPECT_NEAR(*md.wait_p99_ns, *mm.wait_p99_ns / 2, 1e-6);
    // c_a² = c_s² = 1 is M/M/c itself.
    const Prediction same = predict(Model::allen_cunneen, example(5));
    EXPECT_NEAR(*same.wait_p99_ns, *mm.wait_p99_ns, 1e-6);
    // More variable arrivals (bursts) wait longer.
    const Prediction bursty = predict(Model::allen_cunneen, Load{200'000.0, 20'000.0, 7.0, 1.0, 5});
    EXPECT_GT(*bursty.wait_p99_ns, 3.9 * *mm.wait_p99_ns);
}

TEST(QueueModel, AFullPoolSaysSoAndHowManyItNeeds) {
    const Prediction p = predict(Model::erlang_c, example(4));
    EXPECT_TRUE(p.saturated);
    EXPECT_EQ(p.all_busy, 1.0);
    EXPECT_FALSE(p.wait_p99_ns);
    EXPECT_EQ(p.consumers_needed, 5u);
    const Prediction q = predict(Model::erlang_c, Load{200'000.0, 17'500.0, 1, 1, 2});
    EXPECT_TRUE(q.saturated);
    EXPECT_EQ(q.consumers_needed, 4u);  // a = 3.5
    EXPECT_TRUE(predict(Model::deterministic, Load{1000.0, 2e6, 0, 0, 1}).saturated);
    // No consumers at all: saturated by any load.
    EXPECT_TRUE(predict(Model::erlang_c, Load{1.0, 1.0, 1, 1, 0}).saturated);
}

}  // namespace
}  // namespace evfly::queue
