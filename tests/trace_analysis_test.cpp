// The kernel's account of an outlier, from trace events written by hand: who woke the consumer,
// where, how long it sat runnable and who ran instead, interrupts, idle, preemption.
#include "trace_analysis.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using evfly::Outlier;
using evfly::detail::analyze_trace;
using evfly::detail::TraceEvent;
using Type = TraceEvent::Type;

namespace {

// Times below are in µs.
constexpr std::int64_t kUs = 1000;
constexpr int kConsumer = 100;
constexpr int kProducer = 200;
constexpr int kHog = 300;

TraceEvent sw(std::int64_t ts, int cpu, int prev, const char* prev_comm, int next,
              const char* next_comm, long prev_state = 1) {
    TraceEvent e;
    e.type = Type::sched_switch;
    e.ts = ts * kUs;
    e.cpu = cpu;
    e.prev_pid = prev;
    e.prev_comm = prev_comm;
    e.prev_state = prev_state;
    e.next_pid = next;
    e.comm = next_comm;
    e.common_pid = prev;
    return e;
}

TraceEvent wake(Type type, std::int64_t ts, int cpu, int by, int pid, int target) {
    TraceEvent e;
    e.type = type;
    e.ts = ts * kUs;
    e.cpu = cpu;
    e.common_pid = by;
    e.pid = pid;
    e.comm = "consumer-0";
    e.target_cpu = target;
    return e;
}

TraceEvent irq(Type type, std::int64_t ts, int cpu, int number, const char* name = "") {
    TraceEvent e;
    e.type = type;
    e.ts = ts * kUs;
    e.cpu = cpu;
    e.irq = number;
    e.comm = name;
    return e;
}

// Written at 1 000 µs by the producer on CPU 1, read at 9 000 on CPU 0, handler over at 9 500.
Outlier outlier() {
    Outlier o;
    o.consumer_tid = kConsumer;
    o.cpu = 0;
    o.park_cpu = 0;
    o.fire_cpu = 1;
    o.due_ns = 900 * kUs;
    o.written_ns = 1000 * kUs;
    o.returned_ns = 8600 * kUs;
    o.turn_ns = 8700 * kUs;
    o.read_ns = 9000 * kUs;
    o.handler_end_ns = 9500 * kUs;
    return o;
}

}  // namespace

// The consumer, woken by the producer, waits while a busy task holds its CPU: the account names
// the waker, the task that ran instead with the whole runnable time, and the IRQ meanwhile.
TEST(TraceAnalysis, NamesTheTaskThatHeldTheConsumersCpu) {
    const std::vector<TraceEvent> events{
        sw(0, 1, 0, "swapper/1", kProducer, "producer-p-0"),
        sw(200, 0, 0, "swapper/0", kHog, "hog"),
        wake(Type::sched_waking, 1010, 1, kProducer, kConsumer, 0),
        wake(Type::sched_wakeup, 1020, 1, kProducer, kConsumer, 0),
        irq(Type::irq_entry, 3000, 0, 11, "virtio0"),
        irq(Type::irq_exit, 3500, 0, 11),
        sw(8500, 0, kHog, "hog", kConsumer, "consumer-0", 0),
    };
    const auto e = analyze_trace(events, outlier());
    EXPECT_TRUE(e.found_wakeup);
    EXPECT_EQ(e.waker_comm, "producer-p-0");
    EXPECT_EQ(e.waker_pid, kProducer);
    EXPECT_EQ(e.waker_cpu, 1);
    EXPECT_EQ(e.wakee_cpu, 0);  // the target, though the wake-up was recorded on CPU 1
    EXPECT_FALSE(e.from_idle);
    EXPECT_EQ(e.runnable_ns, (8500 - 1020) * kUs);
    ASSERT_EQ(e.ran_instead.size(), 1u);
    EXPECT_EQ(e.ran_instead[0].comm, "hog");
    EXPECT_EQ(e.ran_instead[0].pid, kHog);
    EXPECT_EQ(e.ran_instead[0].ns, (8500 - 1020) * kUs);
    ASSERT_EQ(e.irqs.size(), 1u);
    EXPECT_EQ(e.irqs[0].comm, "virtio0");
    EXPECT_EQ(e.irqs[0].ns, 500 * kUs);
    const auto json = nlohmann::json::parse(evfly::detail::to_json(e, outlier()));
    EXPECT_EQ(json["ran_instead"][0]["comm"], "hog");
    EXPECT_EQ(json["waking_ns"], (1010 - 900) * kUs);  // times from the due time
}

// An idle CPU takes long to wake (the IPI, the exit from a deep idle state): from_idle, and no
// task ran instead.
TEST(TraceAnalysis, AWakeUpOfAnIdleCpuIsFromIdle) {
    const std::vector<TraceEvent> events{
        sw(100, 0, kConsumer, "consumer-0", 0, "swapper/0"),
        wake(Type::sched_waking, 1010, 1, kProducer, kConsumer, 0),
        wake(Type::sched_wakeup, 1015, 1, kProducer, kConsumer, 0),
        irq(Type::softirq_entry, 5000, 0, 7),
        irq(Type::softirq_exit, 5400, 0, 7),
        sw(8500, 0, 0, "swapper/0", kConsumer, "consumer-0", 0),
    };
    const auto e = analyze_trace(events, outlier());
    EXPECT_TRUE(e.found_wakeup);
    EXPECT_TRUE(e.from_idle);
    EXPECT_TRUE(e.ran_instead.empty());
    ASSERT_EQ(e.softirqs.size(), 1u);
    EXPECT_EQ(e.softirqs[0].comm, "SCHED");
    EXPECT_EQ(e.softirqs[0].ns, 400 * kUs);
}

// Woken by an earlier event and still waiting to run when this one was written: that wake-up
// is the one this event waited on.
TEST(TraceAnalysis, AnEarlierWakeUpTheConsumerStillWaitedOnCounts) {
    const std::vector<TraceEvent> events{
        sw(0, 0, 0, "swapper/0", kHog, "hog"),
        wake(Type::sched_waking, 500, 1, kProducer, kConsumer, 0),
        sw(8500, 0, kHog, "hog", kConsumer, "consumer-0", 0),
    };
    const auto e = analyze_trace(events, outlier());
    EXPECT_TRUE(e.found_wakeup);
    EXPECT_EQ(e.waking_ts, 500 * kUs);
    ASSERT_EQ(e.ran_instead.size(), 1u);
    EXPECT_EQ(e.ran_instead[0].comm, "hog");
}

// A consumer that was running when the event was written (it only came back to epoll_wait) had
// no wake-up for it; a wake-up that ended before the write is not this event's.
TEST(TraceAnalysis, NoWakeUpWhenTheConsumerWasRunning) {
    const std::vector<TraceEvent> events{
        wake(Type::sched_waking, 100, 1, kProducer, kConsumer, 0),
        sw(200, 0, 0, "swapper/0", kConsumer, "consumer-0", 0),
    };
    const auto e = analyze_trace(events, outlier());
    EXPECT_FALSE(e.found_wakeup);
    EXPECT_TRUE(e.ran_instead.empty());
}

// Preempted while its handler ran: who ran until it ran again, and for how long.
TEST(TraceAnalysis, PreemptionInTheHandlerIsCounted) {
    const std::vector<TraceEvent> events{
        sw(8800, 0, kConsumer, "consumer-0", kHog, "hog", 0),
        sw(9300, 0, kHog, "hog", kConsumer, "consumer-0", 0),
    };
    const auto e = analyze_trace(events, outlier());
    EXPECT_EQ(e.handler_preempted_ns, 500 * kUs);
    ASSERT_EQ(e.preempted_by.size(), 1u);
    EXPECT_EQ(e.preempted_by[0].comm, "hog");
    EXPECT_EQ(e.preempted_by[0].ns, 500 * kUs);
}
