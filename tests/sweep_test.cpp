#include "evfly/sweep.h"

#include <gtest/gtest.h>

namespace evfly {
namespace {

using namespace std::chrono_literals;

TEST(Sweep, ParsesRangesAndLists) {
    std::string why;
    const auto range = parse_sweep("consumers=1..4", &why);
    ASSERT_TRUE(range) << why;
    EXPECT_EQ(range->parameter, "consumers");
    EXPECT_EQ(range->values, (std::vector<std::uint32_t>{1, 2, 3, 4}));
    const auto list = parse_sweep("threads=8,2,4", &why);
    ASSERT_TRUE(list) << why;
    EXPECT_EQ(list->parameter, "threads");
    EXPECT_EQ(list->values, (std::vector<std::uint32_t>{8, 2, 4}));
    const auto one = parse_sweep("consumers=3", &why);
    ASSERT_TRUE(one) << why;
    EXPECT_EQ(one->values, (std::vector<std::uint32_t>{3}));
}

TEST(Sweep, RefusesWhatItCannotRunAndSaysWhy) {
    for (const auto& [text, expect] : std::vector<std::pair<std::string, std::string>>{
             {"consumers", "expected consumers=FIRST..LAST"},
             {"rate=1..4", "only consumers and threads"},
             {"consumers=0..4", "1 <= FIRST <= LAST <= 1024"},
             {"consumers=4..2", "1 <= FIRST <= LAST"},
             {"consumers=1..2000", "<= 1024"},
             {"consumers=1,x", "whole number from 1 to 1024"},
             {"consumers=1,,2", "whole number"},
             {"consumers=2,2", "listed twice"},
             {"consumers=1..100", "at most 64 stages"},
         }) {
        std::string why;
        EXPECT_FALSE(parse_sweep(text, &why)) << text;
        EXPECT_NE(why.find(expect), std::string::npos) << text << ": " << why;
    }
}

TEST(Sweep, AStageIsATimeOrASampleCount) {
    SweepPlan plan;
    std::string why;
    ASSERT_TRUE(parse_stage("5s", plan, &why)) << why;
    EXPECT_EQ(plan.stage, 5s);
    EXPECT_EQ(plan.stage_samples, 0u);
    ASSERT_TRUE(parse_stage("20000", plan, &why)) << why;
    EXPECT_EQ(plan.stage_samples, 20000u);
    for (const char* bad : {"5x", "50ms", "99", "", "-1s"}) {
        EXPECT_FALSE(parse_stage(bad, plan, &why)) << bad;
        EXPECT_FALSE(why.empty());
    }
}

TEST(Sweep, TargetsNameAStatisticAndABound) {
    std::string why;
    const auto t = parse_target("p99=2ms", &why);
    ASSERT_TRUE(t) << why;
    EXPECT_EQ(t->kind, "");
    EXPECT_EQ(t->stat, "p99");
    EXPECT_EQ(t->limit, 2ms);
    EXPECT_EQ(t->to_string(), "p99 <= 2ms");
    const auto k = parse_target("timerfd_p999=500us", &why);
    ASSERT_TRUE(k) << why;
    EXPECT_EQ(k->kind, "timerfd");
    EXPECT_EQ(k->stat, "p999");
    for (const char* bad : {"p98=1ms", "p99", "p99=", "p99=0s", "rate_p99=1ms", "p99=fast"}) {
        EXPECT_FALSE(parse_target(bad, &why)) << bad;
        EXPECT_FALSE(why.empty());
    }
    Config::Slo slo;
    slo.latency["eventfd_p99"] = 3ms;
    const auto from_slo = targets_of(slo);
    ASSERT_EQ(from_slo.size(), 1u);
    EXPECT_EQ(from_slo[0].to_string(), "eventfd_p99 <= 3ms");
}

TEST(Sweep, ImposeSetsTheSweptParameter) {
    Config config;
    config.producers.resize(2);
    SweepPlan consumers;
    consumers.parameter = "consumers";
    impose(consumers, 7, config);
    EXPECT_EQ(config.daemon.consumers, 7u);
    SweepPlan threads;
    threads.parameter = "threads";
    impose(threads, 3, config);
    EXPECT_EQ(config.producers[0].threads, 3u);
    EXPECT_EQ(config.producers[1].threads, 3u);
}

// A stage of `n` samples all of `ns`, but for `slow` of them at 100 x.
SweepStage stage(std::uint32_t value, std::uint64_t n, std::uint64_t ns, std::uint64_t slow = 0) {
    SweepStage s;
    s.value = value;
    for (std::uint64_t i = 0; i < n; ++i) s.latency.add(i < slow ? ns * 100 : ns);
    return s;
}

TEST(Sweep, AStageMeetsATargetByItsUpperConfidenceBound) {
    const std::vector<SweepTarget> p99_1ms{{"", "p99", 1ms}};
    // 10 000 samples at 100 us: met.
    SweepStage fast = stage(4, 10'000, 100'000);
    judge(fast, p99_1ms);
    EXPECT_TRUE(fast.meets) << fast.misses;
    // 200 samples cannot bound a p99 from above: not met, and it says why.
    SweepStage few = stage(4, 200, 100'000);
    judge(few, p99_1ms);
    EXPECT_FALSE(few.meets);
    EXPECT_NE(few.misses.find("200 samples cannot bound it"), std::string::npos) << few.misses;
    // 0.9 % at 10 ms: the p99 itself is 100 us, but its upper bound reaches the slow ones.
    SweepStage edge = stage(4, 10'000, 100'000, 90);
    EXPECT_EQ(edge.latency.quantile(0.99), edge.latency.quantile(0.5));
    judge(edge, p99_1ms);
    EXPECT_FALSE(edge.meets) << "upper bound " << *edge.latency.quantile_interval(0.99).upper;
    // Skipped fires or a stage cut short never meet.
    SweepStage skipped = stage(4, 10'000, 100'000);
    skipped.skipped = 3;
    judge(skipped, p99_1ms);
    EXPECT_FALSE(skipped.meets);
    EXPECT_NE(skipped.misses.find("3 fires skipped"), std::string::npos);
    // Without a target nothing "meets".
    SweepStage any = stage(4, 10'000, 100'000);
    judge(any, {});
    EXPECT_FALSE(any.meets);
}

TEST(Sweep, RecommendsTheSmallestThatMeetsAndFindsTheKnee) {
    SweepResult r;
    r.plan.parameter = "consumers";
    r.plan.targets = {{"", "p99", 1ms}};
    // 1 and 2 cannot keep up, 3 misses, 4 meets, 5 and 6 meet and are no better than 4.
    r.stages.push_back(stage(1, 5'000, 900'000'000));
    r.stages.back().stopped_early = "hopeless";
    r.stages.push_back(stage(2, 5'000, 500'000'000));
    r.stages.back().skipped = 10;
    r.stages.push_back(stage(3, 5'000, 3'000'000));
    r.stages.push_back(stage(4, 5'000, 200'000));
    r.stages.push_back(stage(5, 5'000, 190'000));
    r.stages.push_back(stage(6, 5'000, 195'000));
    for (auto& s : r.stages) judge(s, r.plan.targets);
    recommend(r);
    ASSERT_TRUE(r.recommended);
    EXPECT_EQ(*r.recommended, 4u) << r.reason;
    ASSERT_TRUE(r.knee);
    EXPECT_EQ(*r.knee, 4u);
    const std::string table = sweep_table(r);
    EXPECT_NE(table.find("recommended: 4 consumers"), std::string::npos) << table;
    EXPECT_NE(table.find("stopped early"), std::string::npos) << table;

    // A target none meets: no recommendation, and why.
    SweepResult none = r;
    none.recommended.reset();
    none.knee.reset();
    none.plan.targets = {{"", "p99", std::chrono::nanoseconds(1'000)}};
    for (auto& s : none.stages) judge(s, none.plan.targets);
    recommend(none);
    EXPECT_FALSE(none.recommended);
    EXPECT_NE(none.reason.find("no stage meets p99 <= 1us"), std::string::npos) << none.reason;

    // No target: the knee is the recommendation.
    SweepResult knee = r;
    knee.recommended.reset();
    knee.knee.reset();
    knee.plan.targets.clear();
    for (auto& s : knee.stages) judge(s, knee.plan.targets);
    recommend(knee);
    ASSERT_TRUE(knee.recommended);
    EXPECT_EQ(*knee.recommended, 4u);
    EXPECT_NE(knee.reason.find("the knee"), std::string::npos);
}

}  // namespace
}  // namespace evfly
