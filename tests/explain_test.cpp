// Explaining outliers, the parts without threads: the cause from the segments and the pool's
// state, where consumers were parked, and the store of outliers.
#include "explain.h"

#include <gtest/gtest.h>

using evfly::Cause;
using evfly::Outlier;
using evfly::detail::classify;
using evfly::detail::OutlierStore;
using evfly::detail::ParkLog;

namespace {

constexpr std::int64_t kUs = 1000;

Outlier with(std::int64_t producer, std::int64_t wake_up, std::int64_t batch) {
    Outlier o;
    o.producer_ns = producer * kUs;
    o.wake_up_ns = wake_up * kUs;
    o.batch_ns = batch * kUs;
    o.latency_ns = o.producer_ns + o.wake_up_ns + o.batch_ns;
    return o;
}

}  // namespace

TEST(Classify, AFireMadeLateIsTheProducers) {
    EXPECT_EQ(classify(with(1500, 20, 0)), Cause::producer);
}

TEST(Classify, AWakeUpWhileAConsumerWasParkedIsSlowWaking) {
    Outlier o = with(50, 900, 1);
    o.parked_at_write = 1;
    EXPECT_EQ(classify(o), Cause::wake_up);
}

TEST(Classify, AWakeUpWhileNoConsumerWasParkedIsQueueing) {
    EXPECT_EQ(classify(with(50, 900, 1)), Cause::queueing);
}

TEST(Classify, AWaitInABatchWhileAnotherConsumerWasFreeIsTheBatch) {
    Outlier o = with(50, 10, 900);
    o.parked_in_batch = 1;
    EXPECT_EQ(classify(o), Cause::batch);
    // ...and with nobody free, the batch was only where it queued.
    o.parked_in_batch = 0;
    EXPECT_EQ(classify(o), Cause::queueing);
}

TEST(Classify, AWaitBehindHandlersThatOverranTheirWorkIsTheHandlers) {
    Outlier o = with(50, 10, 900);
    o.parked_in_batch = 1;
    o.overrun_ahead_ns = 600 * kUs;
    EXPECT_EQ(classify(o), Cause::handler);
}

TEST(ParkLog, KnowsWhenItsConsumerWasParked) {
    ParkLog log;
    EXPECT_FALSE(log.parked_during(0, 100));
    log.park(100);
    EXPECT_TRUE(log.parked());
    EXPECT_TRUE(log.parked_during(150, 150));  // parked now, since 100
    EXPECT_FALSE(log.parked_during(50, 99));
    log.unpark(200);
    EXPECT_FALSE(log.parked());
    EXPECT_TRUE(log.parked_during(150, 150));
    EXPECT_TRUE(log.parked_during(190, 250));
    EXPECT_FALSE(log.parked_during(201, 300));
    // Older parks roll off after kIntervals.
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(ParkLog::kIntervals); ++i) {
        log.park(1000 + 10 * i);
        log.unpark(1005 + 10 * i);
    }
    EXPECT_FALSE(log.parked_during(150, 150));
    EXPECT_TRUE(log.parked_during(1002, 1002));
}

TEST(OutlierStore, CountsEveryOutlierAndKeepsTheSlowest) {
    OutlierStore store;
    store.configure(3, 0);
    std::vector<std::uint64_t> heard;
    store.set_listener(
        [&](const Outlier& o) { heard.push_back(static_cast<std::uint64_t>(o.latency_ns)); });
    for (const std::int64_t latency : {5, 9, 1, 7, 3, 8}) {
        Outlier o;
        o.latency_ns = latency;
        o.cause = latency % 2 == 0 ? Cause::batch : Cause::wake_up;
        store.add(o);
    }
    evfly::ExplainReport r;
    store.report_into(r);
    EXPECT_EQ(r.outliers, 6u);
    EXPECT_EQ(r.causes[static_cast<std::size_t>(Cause::batch)], 1u);
    EXPECT_EQ(r.causes[static_cast<std::size_t>(Cause::wake_up)], 5u);
    ASSERT_EQ(r.worst.size(), 3u);
    EXPECT_EQ(r.worst[0].latency_ns, 9);
    EXPECT_EQ(r.worst[1].latency_ns, 8);
    EXPECT_EQ(r.worst[2].latency_ns, 7);
    // The listener (the tracer) hears only of outliers the store keeps.
    EXPECT_EQ(heard, (std::vector<std::uint64_t>{5, 9, 1, 7, 8}));
    // A trace attached by id lands on its outlier.
    store.attach_trace(r.worst[0].id, "{\"x\":1}");
    store.report_into(r);
    EXPECT_EQ(r.worst[0].trace, "{\"x\":1}");
    EXPECT_EQ(r.worst[1].trace, "");
}
