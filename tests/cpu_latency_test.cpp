// Per-CPU attribution on its own: the recorder's split rule, its many writers, and the by-CPU
// arithmetic reports and warm-ups use.
#include "cpu_latency.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

using evfly::CpuLatency;
using evfly::merge_by_cpu;
using evfly::since_by_cpu;
using evfly::detail::CpuLatencyRecorder;

TEST(CpuLatency, ASampleIsSameCpuOnlyWhenFiredWhereItWasReadAndNoneIsLost) {
    CpuLatencyRecorder recorder;
    recorder.record_eventfd(2, 2, 1000, 500, {});
    recorder.record_eventfd(2, 0, 9000, 8000, {});
    recorder.record_eventfd(2, 0, 9100, 8100, {});
    recorder.record_eventfd(2, -1, 7, 7, {});   // fire CPU unknown: not seen to be the same
    recorder.record_eventfd(-1, -1, 7, 7, {});  // read CPU unknown: CPU -1, never same-CPU
    recorder.record_eventfd(static_cast<int>(CpuLatencyRecorder::kMaxCpus), 2, 7, 7, {});
    recorder.record_timer(0, 40'000, {});
    const std::vector<CpuLatency> cpus = recorder.snapshot();
    ASSERT_EQ(cpus.size(), 3u);
    EXPECT_EQ(cpus[0].cpu, -1);
    EXPECT_EQ(cpus[0].eventfd_same_cpu.count(), 0u);
    EXPECT_EQ(cpus[0].eventfd_cross_cpu.count(), 2u);
    EXPECT_EQ(cpus[1].cpu, 0);
    EXPECT_EQ(cpus[1].timerfd.count(), 1u);
    EXPECT_EQ(cpus[1].eventfd_same_cpu.count() + cpus[1].eventfd_cross_cpu.count(), 0u);
    EXPECT_EQ(cpus[2].cpu, 2);
    EXPECT_EQ(cpus[2].eventfd_same_cpu.count(), 1u);
    EXPECT_EQ(cpus[2].delivery_same_cpu.max(), 500u);
    EXPECT_EQ(cpus[2].eventfd_cross_cpu.count(), 3u);
    EXPECT_EQ(cpus[2].eventfd_cross_cpu.max(), 9100u);
    EXPECT_EQ(cpus[2].delivery_cross_cpu.count(), 3u);
    // Nothing is lost: the totals a report derives hold every sample.
    const CpuLatency all = evfly::total_of(cpus);
    EXPECT_EQ(all.eventfd_same_cpu.count() + all.eventfd_cross_cpu.count(), 6u);
    EXPECT_EQ(all.timerfd.count(), 1u);
}

TEST(CpuLatency, ManyWritersOnOneCpuLoseNoSample) {
    // Threads can move between sched_getcpu() and the record, so one CPU's histograms take
    // several writers at once; none of their samples may be lost.
    CpuLatencyRecorder recorder;
    constexpr int kThreads = 4;
    constexpr std::uint64_t kEach = 50'000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&recorder, t] {
            for (std::uint64_t i = 0; i < kEach; ++i)
                recorder.record_eventfd(1, t % 2, 1000 + i, 100 + static_cast<std::uint64_t>(t),
                                        {});
        });
    }
    for (auto& t : threads) t.join();
    const auto cpus = recorder.snapshot();
    ASSERT_EQ(cpus.size(), 1u);
    EXPECT_EQ(cpus[0].eventfd_same_cpu.count(), kEach * kThreads / 2);
    EXPECT_EQ(cpus[0].eventfd_cross_cpu.count(), kEach * kThreads / 2);
    EXPECT_EQ(cpus[0].eventfd_cross_cpu.max(), 1000 + kEach - 1);
    EXPECT_EQ(cpus[0].delivery_same_cpu.max(), 103u);
}

TEST(CpuLatency, ByCpuMergeAndDifferenceKeepCpuOrder) {
    CpuLatencyRecorder a;
    a.record_timer(4, 10, {});
    a.record_timer(1, 10, {});
    CpuLatencyRecorder b;
    b.record_timer(2, 10, {});
    b.record_timer(4, 20, {});
    std::vector<CpuLatency> all = a.snapshot();
    merge_by_cpu(all, b.snapshot());
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].cpu, 1);
    EXPECT_EQ(all[1].cpu, 2);
    EXPECT_EQ(all[2].cpu, 4);
    EXPECT_EQ(all[2].timerfd.count(), 2u);

    // What came after an earlier view: CPUs with nothing new are left out.
    const std::vector<CpuLatency> earlier = a.snapshot();
    a.record_timer(4, 30, {});
    a.record_timer(7, 30, {});
    const std::vector<CpuLatency> diff = since_by_cpu(a.snapshot(), earlier);
    ASSERT_EQ(diff.size(), 2u);
    EXPECT_EQ(diff[0].cpu, 4);
    EXPECT_EQ(diff[0].timerfd.count(), 1u);
    EXPECT_EQ(diff[1].cpu, 7);
}
