#include "evfly/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using evfly::Histogram;
using evfly::HistogramSnapshot;

namespace {
std::uint64_t exact_quantile(std::vector<std::uint64_t> sorted, double q) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::max<std::size_t>(rank, 1) - 1];
}
}  // namespace

TEST(Histogram, BucketsAreNarrowerThanOnePercentFromOneMicrosecondToSixtySeconds) {
    for (std::uint64_t v = 1000; v < 60'000'000'000ULL; v = v + v / 7 + 1) {
        const auto bucket = HistogramSnapshot::bucket_of(v);
        const auto rep = HistogramSnapshot::bucket_value(bucket);
        EXPECT_LE(
            std::abs(static_cast<double>(rep) - static_cast<double>(v)) / static_cast<double>(v),
            0.01)
            << v;
        EXPECT_EQ(HistogramSnapshot::bucket_of(rep), bucket) << v;
    }
    // Exact below 128 ns, and buckets never go backwards.
    for (std::uint64_t v = 0; v < 128; ++v)
        EXPECT_EQ(HistogramSnapshot::bucket_value(HistogramSnapshot::bucket_of(v)), v);
    for (std::uint64_t v = 1; v < 1'000'000; v += 97) {
        EXPECT_LE(HistogramSnapshot::bucket_of(v - 1), HistogramSnapshot::bucket_of(v));
    }
}

TEST(Histogram, PercentilesMatchExactOnesWithinOnePercent) {
    std::mt19937_64 rng(42);
    // Log-uniform over 1 us .. 60 s, the range evfly promises.
    std::uniform_real_distribution<double> exponent(3.0, std::log10(60e9));
    std::vector<std::uint64_t> values;
    Histogram h;
    for (int i = 0; i < 200'000; ++i) {
        const auto v = static_cast<std::uint64_t>(std::pow(10.0, exponent(rng)));
        values.push_back(v);
        h.record(v);
    }
    std::sort(values.begin(), values.end());
    HistogramSnapshot s;
    h.snapshot_into(s);
    ASSERT_EQ(s.count(), values.size());
    for (const double q : {0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999}) {
        const double exact = static_cast<double>(exact_quantile(values, q));
        const double got = static_cast<double>(s.quantile(q));
        EXPECT_LE(std::abs(got - exact) / exact, 0.01)
            << "q=" << q << " exact=" << exact << " got=" << got;
    }
    const auto p = s.percentiles();
    EXPECT_EQ(p.max, values.back());
    EXPECT_EQ(p.count, values.size());
}

TEST(Histogram, MergeAndSinceGiveIntervalCounts) {
    Histogram a;
    Histogram b;
    for (int i = 0; i < 100; ++i) a.record(1000);
    HistogramSnapshot before;
    a.snapshot_into(before);
    for (int i = 0; i < 50; ++i) a.record(5'000'000);
    for (int i = 0; i < 50; ++i) b.record(2000);
    HistogramSnapshot after;
    a.snapshot_into(after);
    const HistogramSnapshot interval = after.since(before);
    EXPECT_EQ(interval.count(), 50u);
    EXPECT_NEAR(static_cast<double>(interval.quantile(0.5)), 5e6, 5e4);

    HistogramSnapshot merged;
    merged.merge(after);
    HistogramSnapshot sb;
    b.snapshot_into(sb);
    merged.merge(sb);
    EXPECT_EQ(merged.count(), 200u);
    EXPECT_EQ(merged.max(), 5'000'000u);
    EXPECT_NEAR(static_cast<double>(merged.quantile(0.25)), 1000, 10);
    EXPECT_NEAR(static_cast<double>(merged.quantile(0.6)), 2000, 20);
}

TEST(Histogram, EmptyAndHugeValues) {
    HistogramSnapshot empty;
    EXPECT_EQ(empty.percentiles().p99, 0u);
    Histogram h;
    h.record(~std::uint64_t{0});
    HistogramSnapshot s;
    h.snapshot_into(s);
    EXPECT_EQ(s.max(), ~std::uint64_t{0});
    EXPECT_EQ(s.count(), 1u);
}

TEST(Histogram, BucketBoundsAreExactlyTheValuesThatMapToTheBucket) {
    for (std::size_t b = 0; b + 1 < HistogramSnapshot::kBuckets; ++b) {
        const std::uint64_t lower = HistogramSnapshot::bucket_lower(b);
        const std::uint64_t upper = HistogramSnapshot::bucket_upper(b);
        ASSERT_LE(lower, upper) << b;
        ASSERT_EQ(HistogramSnapshot::bucket_of(lower), b) << b;
        ASSERT_EQ(HistogramSnapshot::bucket_of(upper), b) << b;
        ASSERT_EQ(HistogramSnapshot::bucket_of(upper + 1), b + 1) << b;
        // The reported value is the midpoint, as the summary documents it.
        ASSERT_EQ(HistogramSnapshot::bucket_value(b), lower + (upper - lower) / 2) << b;
    }
    HistogramSnapshot h;
    h.add(1'000);
    h.add(1'000);
    h.add(5'000'000);
    EXPECT_EQ(h.bucket_count(HistogramSnapshot::bucket_of(1'000)), 2u);
    EXPECT_EQ(h.bucket_count(HistogramSnapshot::bucket_of(5'000'000)), 1u);
}

TEST(Histogram, CoarseBucketsAreWithinThreePercentAndAgreeWithTheFineOnes) {
    using Coarse = evfly::CoarseHistogramSnapshot;
    for (std::size_t b = 0; b + 1 < Coarse::kBuckets; ++b) {
        ASSERT_EQ(Coarse::bucket_of(Coarse::bucket_lower(b)), b) << b;
        ASSERT_EQ(Coarse::bucket_of(Coarse::bucket_upper(b) + 1), b + 1) << b;
    }
    evfly::CoarseHistogram coarse;
    Histogram fine;
    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> values;
    for (int i = 0; i < 20'000; ++i) {
        const auto v = static_cast<std::uint64_t>(
            std::exp(std::uniform_real_distribution<double>(std::log(100.0), std::log(1e9))(rng)));
        values.push_back(v);
        coarse.record(v);
        fine.record(v);
    }
    std::sort(values.begin(), values.end());
    Coarse cs;
    HistogramSnapshot fs;
    coarse.snapshot_into(cs);
    fine.snapshot_into(fs);
    EXPECT_EQ(cs.count(), fs.count());
    EXPECT_EQ(cs.max(), fs.max());
    for (const double q : {0.5, 0.9, 0.99, 0.999}) {
        const auto exact = static_cast<double>(exact_quantile(values, q));
        EXPECT_LE(std::abs(static_cast<double>(cs.quantile(q)) - exact) / exact, 0.032) << q;
    }
}

// A percentile's 95 % interval from its order statistics: wide from 200 samples, narrow from
// 200 000, and an end the sample cannot bound is unknown, not made up.
TEST(Histogram, PercentileIntervalsNarrowWithTheSampleCount) {
    const auto uniform = [](std::uint64_t n) {
        HistogramSnapshot h;
        for (std::uint64_t i = 1; i <= n; ++i) h.add(i * 1'000'000 / n * 100);  // 100 ns .. 100 ms
        return h;
    };
    const HistogramSnapshot few = uniform(200);
    const HistogramSnapshot many = uniform(200'000);
    // p50 of 200: ranks 86 and 115 of 200, about 30 % of the median wide.
    const auto few_p50 = few.quantile_interval(0.50);
    ASSERT_TRUE(few_p50.lower && few_p50.upper);
    EXPECT_LT(*few_p50.lower, few.quantile(0.50));
    EXPECT_GT(*few_p50.upper, few.quantile(0.50));
    EXPECT_GT(static_cast<double>(*few_p50.upper - *few_p50.lower),
              0.25 * static_cast<double>(few.quantile(0.50)));
    // p99 of 200: the upper end would be rank 202 of 200: unknown.
    const auto few_p99 = few.quantile_interval(0.99);
    EXPECT_TRUE(few_p99.lower.has_value());
    EXPECT_FALSE(few_p99.upper.has_value());
    EXPECT_FALSE(few.quantile_interval(0.999).upper.has_value());
    // p99 of 200 000: within 2 % (ranks 197 912 .. 198 088, then the buckets' 0.8 %).
    const auto many_p99 = many.quantile_interval(0.99);
    ASSERT_TRUE(many_p99.lower && many_p99.upper);
    EXPECT_LE(*many_p99.lower, many.quantile(0.99));
    EXPECT_GE(*many_p99.upper, many.quantile(0.99));
    EXPECT_LT(static_cast<double>(*many_p99.upper - *many_p99.lower),
              0.02 * static_cast<double>(many.quantile(0.99)));
    EXPECT_FALSE(HistogramSnapshot().quantile_interval(0.5).lower.has_value());
}

// The intervals cover the true percentile about 95 % of the time: 2 000 samples of 1 000 from an
// exponential distribution (seeded), its true p99 known.
TEST(Histogram, PercentileIntervalsCoverTheTruthNineteenTimesInTwenty) {
    std::mt19937_64 rng(20261203);
    std::exponential_distribution<double> exp(1.0 / 100'000.0);  // mean 100 us
    const double true_p99 = -std::log(0.01) * 100'000.0;
    const double true_p50 = -std::log(0.5) * 100'000.0;
    int covered99 = 0;
    int covered50 = 0;
    const int trials = 2'000;
    for (int t = 0; t < trials; ++t) {
        HistogramSnapshot h;
        for (int i = 0; i < 1'000; ++i) h.add(static_cast<std::uint64_t>(exp(rng)));
        // The buckets are 0.8 % wide: widen each end by that much before judging.
        const auto covers = [&h](double q, double truth) {
            const auto i = h.quantile_interval(q);
            return i.lower && i.upper && static_cast<double>(*i.lower) * 0.992 <= truth &&
                   truth <= static_cast<double>(*i.upper) * 1.008;
        };
        covered99 += covers(0.99, true_p99) ? 1 : 0;
        covered50 += covers(0.50, true_p50) ? 1 : 0;
    }
    EXPECT_GT(covered99, trials * 92 / 100) << covered99;
    EXPECT_LT(covered99, trials * 99 / 100) << covered99;
    EXPECT_GT(covered50, trials * 92 / 100) << covered50;
    EXPECT_LT(covered50, trials * 99 / 100) << covered50;
}
