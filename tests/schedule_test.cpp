// The paced producer's schedule, with time given by the test: no sleep, no thread, exact.
#include "schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

using evfly::detail::Schedule;

namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kStart = 1'000 * kMs;  // any steady time; 0 means "not begun"

// Fires every due on time (at its due time plus `lag`) until `until`; returns how many.
std::uint64_t fire_until(Schedule& s, std::int64_t until, std::int64_t lag = 0) {
    std::uint64_t fired = 0;
    while (s.next_due() + lag <= until) {
        const std::int64_t now = s.next_due() + lag;
        const Schedule::Take t = s.take(now);
        s.fired(t.due, now);
        ++fired;
    }
    return fired;
}

}  // namespace

TEST(Schedule, DueTimesAreAbsoluteSoLateWakeUpsNeverDrift) {
    Schedule s(10 * kMs);
    s.begin(kStart);
    // Each wake-up 7 ms late: the due times stay on the grid, none is late (within a period).
    for (int n = 0; n < 100; ++n) {
        ASSERT_EQ(s.next_due(), kStart + n * 10 * kMs);
        const Schedule::Take t = s.take(s.next_due() + 7 * kMs);
        EXPECT_EQ(t.due, kStart + n * 10 * kMs);
        EXPECT_EQ(t.skipped, 0u);
        EXPECT_FALSE(s.fired(t.due, t.due + 7 * kMs).late);
    }
    EXPECT_EQ(s.late(), 0u);
    EXPECT_EQ(s.due_by(kStart + 995 * kMs, 100), 100u);
}

TEST(Schedule, AFireMoreThanOnePeriodAfterItsDueTimeIsLate) {
    Schedule s(10 * kMs);
    s.begin(kStart);
    const Schedule::Take t = s.take(kStart);
    EXPECT_TRUE(s.fired(t.due, kStart + 10 * kMs + 1).late);
    const Schedule::Take u = s.take(kStart + 10 * kMs + 1);
    EXPECT_FALSE(s.fired(u.due, u.due + 10 * kMs).late);  // exactly one period: not late
    EXPECT_EQ(s.late(), 1u);
}

TEST(Schedule, DueByCountsTheGridFromTheFirstFire) {
    Schedule s(5 * kMs);
    EXPECT_EQ(s.due_by(kStart, 0), 0u);  // not begun
    s.begin(kStart);
    EXPECT_EQ(s.due_by(kStart - 1, 0), 0u);
    EXPECT_EQ(s.due_by(kStart, 0), 1u);
    EXPECT_EQ(s.due_by(kStart + 5 * kMs - 1, 0), 1u);
    EXPECT_EQ(s.due_by(kStart + 5 * kMs, 0), 2u);
    EXPECT_EQ(s.due_by(kStart + 500 * kMs, 0), 101u);
}

TEST(Schedule, CatchUpWithinASecondFiresTheBacklogBackToBack) {
    Schedule s(10 * kMs);
    s.begin(kStart);
    // Woken 900 ms late: every overdue fire is made, each stamped with its own due time.
    const std::int64_t now = kStart + 900 * kMs;
    for (int n = 0; n <= 90; ++n) {
        const Schedule::Take t = s.take(now);
        EXPECT_EQ(t.due, kStart + n * 10 * kMs);
        EXPECT_EQ(t.skipped, 0u);
        s.fired(t.due, now);
    }
    EXPECT_EQ(s.skipped(), 0u);
    EXPECT_EQ(s.late(), 89u);  // all but the last two were more than a period behind
}

TEST(Schedule, BehindMoreThanASecondSkipsWholePeriodsOncePerEpisode) {
    Schedule s(kMs);  // 1 000/s
    s.begin(kStart);
    fire_until(s, kStart + 10 * kMs);
    // The process was stopped for 1.5 s: the next wake-up is 1.5 s after the fire it is for.
    const std::int64_t due = s.next_due();
    const std::int64_t now = due + 1500 * kMs;
    const Schedule::Take t = s.take(now);
    EXPECT_TRUE(t.behind_began);
    EXPECT_EQ(t.behind_ns, 1500 * kMs);
    // The 1 500 periods after the fire at hand that are already past are given up on.
    EXPECT_EQ(t.skipped, 1500u);
    EXPECT_EQ(s.skipped(), 1500u);
    EXPECT_EQ(s.next_due(), due + 1501 * kMs);
    // The schedule stays on its grid.
    EXPECT_EQ((s.next_due() - kStart) % kMs, 0);
    // A second gap before any fire on time is the same episode: not told again.
    const Schedule::Take again = s.take(s.next_due() + 1200 * kMs);
    EXPECT_FALSE(again.behind_began);
}

// Like cyclictest's next wake-up after a stall, the first fire after a gap carries its true
// lateness: due time unchanged, made late; the rest of the gap is skipped, not hidden.
TEST(Schedule, TheFirstFireAfterAGapCarriesItsWholeLateness) {
    Schedule s(kMs);
    s.begin(kStart);
    std::uint64_t fired = fire_until(s, kStart + 10 * kMs);
    const std::int64_t due = s.next_due();
    const std::int64_t now = due + 1500 * kMs;
    const Schedule::Take t = s.take(now);
    EXPECT_EQ(t.due, due);
    EXPECT_EQ(now - t.due, 1500 * kMs);
    const Schedule::Made made = s.fired(t.due, now);
    ++fired;
    EXPECT_TRUE(made.late);
    EXPECT_FALSE(made.caught_up);
    EXPECT_EQ(s.late(), 1u);
    // Back on time from the next fire, which ends the episode.
    const Schedule::Take next = s.take(s.next_due());
    EXPECT_EQ(next.skipped, 0u);
    const Schedule::Made on_time = s.fired(next.due, next.due);
    ++fired;
    EXPECT_TRUE(on_time.caught_up);
    EXPECT_EQ(on_time.skipped_in_episode, 1500u);
    s.close(s.next_due(), fired);
    EXPECT_EQ(s.due_by(now + 10'000 * kMs, fired), fired + s.skipped());
}

TEST(Schedule, DueEqualsFiredPlusSkippedOnceClosed) {
    Schedule s(kMs);
    s.begin(kStart);
    std::uint64_t fired = fire_until(s, kStart + 100 * kMs);
    // A stall of 3 s, then a few more fires on time.
    const std::int64_t resumed = s.next_due() + 3000 * kMs;
    const Schedule::Take t = s.take(resumed);
    s.fired(t.due, resumed);
    ++fired;
    fired += fire_until(s, resumed + 50 * kMs);
    // Stopped 20 ms after the last fire: 20 fires owed, less the one due within the last period.
    const std::int64_t stop = s.next_due() + 20 * kMs;
    const std::uint64_t skipped_before = s.skipped();
    s.close(stop, fired);
    EXPECT_EQ(s.due_by(stop + 10'000 * kMs, fired), fired + s.skipped());
    EXPECT_EQ(s.skipped() - skipped_before, 20u);
}

TEST(Schedule, ClosedRightAfterAFireOwesNothing) {
    Schedule s(10 * kMs);
    s.begin(kStart);
    const std::uint64_t fired = fire_until(s, kStart + 50 * kMs);
    s.close(kStart + 55 * kMs, fired);  // the next fire (at 60 ms) was not due yet
    EXPECT_EQ(s.skipped(), 0u);
    EXPECT_EQ(s.due_by(kStart + 1000 * kMs, fired), fired);
}

TEST(Schedule, FlatOutHasNoScheduleAndDueIsWhatWasFired) {
    Schedule s(0);
    s.begin(kStart);
    EXPECT_TRUE(s.flat_out());
    EXPECT_FALSE(s.fired(kStart, kStart + 5000 * kMs).late);
    s.close(kStart + 10'000 * kMs, 12345);
    EXPECT_EQ(s.due_by(kStart, 12345), 12345u);
    EXPECT_EQ(s.skipped() + s.late(), 0u);
}

// Poisson arrivals: exponential gaps of the mean period, reproducible from the seed.
TEST(Schedule, PoissonGapsAreExponentialByAKolmogorovSmirnovTest) {
    using evfly::detail::Arrivals;
    const std::int64_t mean = 1 * kMs;
    Schedule s(Arrivals{.kind = Arrivals::Kind::poisson, .period_ns = mean, .seed = 42});
    s.begin(kStart);
    constexpr int kN = 20'000;
    std::vector<double> gaps;
    std::int64_t last = kStart;
    for (int i = 0; i < kN; ++i) {
        const Schedule::Take t = s.take(s.next_due());
        s.fired(t.due, t.due);
        if (i > 0) gaps.push_back(static_cast<double>(t.due - last));
        last = t.due;
    }
    std::sort(gaps.begin(), gaps.end());
    double d = 0;
    double sum = 0;
    const auto n = static_cast<double>(gaps.size());
    for (std::size_t i = 0; i < gaps.size(); ++i) {
        const double f = 1.0 - std::exp(-gaps[i] / static_cast<double>(mean));
        d = std::max({d, std::abs(static_cast<double>(i + 1) / n - f),
                      std::abs(f - static_cast<double>(i) / n)});
        sum += gaps[i];
    }
    EXPECT_LT(d, 1.63 / std::sqrt(n)) << "KS statistic, critical value at 1 %";
    EXPECT_NEAR(sum / n, static_cast<double>(mean), 0.03 * static_cast<double>(mean));
    // On time, what was due is exactly what was drawn.
    EXPECT_EQ(s.due_by(last, kN), static_cast<std::uint64_t>(kN));
    EXPECT_EQ(s.late(), 0u);
    // The same seed draws the same arrivals; another seed others.
    const auto first_dues = [](std::uint64_t seed) {
        Schedule r(Arrivals{.kind = Arrivals::Kind::poisson, .period_ns = 1 * kMs, .seed = seed});
        r.begin(kStart);
        std::vector<std::int64_t> dues;
        for (int i = 0; i < 50; ++i) dues.push_back(r.take(r.next_due()).due);
        return dues;
    };
    EXPECT_EQ(first_dues(7), first_dues(7));
    EXPECT_NE(first_dues(7), first_dues(8));
}

// A Poisson producer stopped for 5 s at 1 000/s: the fire at hand keeps its due time, about
// 5 000 are skipped (within 5 standard deviations), and at the stop due == fired + skipped.
TEST(Schedule, APoissonProducerBehindSkipsWhatFellDueMeanwhile) {
    using evfly::detail::Arrivals;
    Schedule s(Arrivals{.kind = Arrivals::Kind::poisson, .period_ns = 1 * kMs, .seed = 3});
    s.begin(kStart);
    const std::uint64_t before = fire_until(s, kStart + 100 * kMs);
    const std::int64_t due = s.next_due();
    const std::int64_t now = due + 5'000 * kMs;
    const Schedule::Take t = s.take(now);
    EXPECT_EQ(t.due, due);
    EXPECT_TRUE(t.behind_began);
    EXPECT_NEAR(static_cast<double>(t.skipped), 5'000.0, 5 * std::sqrt(5'000.0));
    EXPECT_GT(s.next_due(), now);
    s.fired(t.due, now);
    const std::uint64_t after = fire_until(s, now + 100 * kMs);
    s.close(now + 100 * kMs, before + 1 + after);
    EXPECT_EQ(s.due_by(0, 0), before + 1 + after + s.skipped());
}

// Bursts: `burst` events due together every burst * period; due_by counts whole bursts; a fire is
// late only a whole burst period after its due time; a stall skips the rest of its burst and the
// bursts after it.
TEST(Schedule, BurstsAreDueTogetherEveryBurstPeriod) {
    using evfly::detail::Arrivals;
    Schedule s(Arrivals{.kind = Arrivals::Kind::burst, .period_ns = 1 * kMs, .burst = 10});
    EXPECT_EQ(s.cycle(), 10 * kMs);
    s.begin(kStart);
    for (int b = 0; b < 3; ++b) {
        for (int i = 0; i < 10; ++i) {
            const Schedule::Take t = s.take(kStart + b * 10 * kMs + 9 * kMs);
            EXPECT_EQ(t.due, kStart + b * 10 * kMs);
            EXPECT_FALSE(s.fired(t.due, kStart + b * 10 * kMs + 9 * kMs).late);
        }
    }
    EXPECT_EQ(s.due_by(kStart, 30), 10u);
    EXPECT_EQ(s.due_by(kStart + 10 * kMs - 1, 30), 10u);
    EXPECT_EQ(s.due_by(kStart + 20 * kMs, 30), 30u);
    // Four of the fourth burst, then a 2 s stall: the fifth fire keeps its due time; the other
    // five of its burst and the 200 bursts after it are skipped.
    for (int i = 0; i < 4; ++i) s.fired(s.take(kStart + 30 * kMs).due, kStart + 30 * kMs);
    const std::int64_t now = kStart + 30 * kMs + 2'000 * kMs;
    const Schedule::Take t = s.take(now);
    EXPECT_EQ(t.due, kStart + 30 * kMs);
    EXPECT_EQ(t.skipped, 5u + 200u * 10u);
    EXPECT_TRUE(s.fired(t.due, now).late);
    EXPECT_EQ(s.next_due(), kStart + 2'040 * kMs);
    s.close(kStart + 2'040 * kMs, 35);
    EXPECT_EQ(s.due_by(0, 0), 35u + s.skipped());
}
