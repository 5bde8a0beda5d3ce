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
