// The SLO gate against reports built by hand: each limit is met at equality and violated above.
#include "evfly/slo.h"

#include <gtest/gtest.h>

using evfly::Config;
using evfly::Report;

namespace {

Report report_with(std::uint64_t eventfd_ns, std::uint64_t timerfd_ns) {
    Report r;
    evfly::ProducerReport p;
    p.name = "p";
    p.due = 10;
    p.fired = p.value_written = 9;
    p.value_read = 6;
    p.drained_at_stop = 2;  // lost 1
    p.skipped = 3;
    p.late = 2;
    p.stalls = 1;
    p.overruns = 4;
    p.clock_jumps = 5;
    r.producers.push_back(p);
    for (int i = 0; i < 100; ++i) {
        r.eventfd_latency.add(eventfd_ns);
        r.eventfd_delivery.add(eventfd_ns / 2);
        r.timerfd_latency.add(timerfd_ns);
    }
    return r;
}

}  // namespace

TEST(Slo, NoTableIsNoGate) {
    const auto result = evfly::evaluate_slo(Config::Slo{}, report_with(1'000, 1'000), {});
    EXPECT_FALSE(result.checked);
    EXPECT_TRUE(result.passed());
}

TEST(Slo, EachCountLimitIsMetAtItsValueAndViolatedBelowIt) {
    const Report r = report_with(1'000, 1'000);
    const std::map<std::string, std::uint64_t> actual{
        {"max_lost", 1},     {"max_skipped", 3},     {"max_late", 2},           {"max_stalls", 1},
        {"max_overruns", 4}, {"max_clock_jumps", 5}, {"max_drained_at_stop", 2}};
    ASSERT_EQ(actual.size(), evfly::slo_count_keys().size());
    for (const auto& [key, value] : actual) {
        Config::Slo slo;
        slo.counts[key] = value;
        EXPECT_TRUE(evfly::evaluate_slo(slo, r, {}).passed()) << key;
        slo.counts[key] = value - 1;
        const auto result = evfly::evaluate_slo(slo, r, {});
        ASSERT_EQ(result.violations.size(), 1u) << key;
        EXPECT_EQ(result.violations[0].key, key);
        EXPECT_EQ(result.violations[0].actual, value);
        EXPECT_EQ(result.violations[0].limit, value - 1);
        EXPECT_STREQ(result.violations[0].unit, "");
    }
}

TEST(Slo, LatencyLimitsPerKindAndStatistic) {
    const Report r = report_with(200'000, 3'000'000);
    const std::uint64_t efd = r.eventfd_latency.percentiles().p99;
    Config::Slo slo;
    slo.latency["eventfd_p99"] = std::chrono::nanoseconds(efd);
    slo.latency["timerfd_max"] = std::chrono::milliseconds(10);
    EXPECT_TRUE(evfly::evaluate_slo(slo, r, {}).passed());
    slo.latency["eventfd_p99"] = std::chrono::nanoseconds(efd - 1);
    slo.latency["timerfd_p50"] = std::chrono::milliseconds(1);
    slo.latency["eventfd_delivery_max"] = std::chrono::microseconds(50);
    const auto result = evfly::evaluate_slo(slo, r, {});
    ASSERT_EQ(result.violations.size(), 3u);
    for (const auto& v : result.violations) {
        EXPECT_STREQ(v.unit, "ns");
        EXPECT_GT(v.actual, v.limit) << v.key;
    }
    EXPECT_EQ(evfly::slo_latency_keys().size(), 15u);
}
