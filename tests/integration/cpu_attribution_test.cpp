// Per-CPU attribution: every eventfd sample is filed under the CPU its consumer read it on, as
// same-CPU or cross-CPU by the CPU its producer fired it on; timers under the CPU that read them.
// Placement makes the answer known in advance: consumers pinned to CPU 0, producers pinned to CPU
// 0 (every hand-off same-CPU) or CPU 1 (every one cross-CPU), in every eventfd mode.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::expect_clean;
using evfly::test::run_evflyd;
using evfly::test::summary_of;
using evfly::test::TempDir;
using nlohmann::json;

namespace {

std::string config(int producer_cpu, const std::string& metrics, const std::string& daemon_extra) {
    const std::string cpu = "cpus = \"" + std::to_string(producer_cpu) + "\"\n";
    return "[daemon]\nconsumers = 2\ncpus = \"0\"\nstats_interval = \"0s\"\n" + daemon_extra +
           "\n[log]\nsink = \"stderr\"\n[metrics]\ntextfile = \"" + metrics +
           "\"\n"
           "[[producer]]\nname = \"written\"\nkind = \"eventfd\"\nrate = 400\n" +
           cpu +
           "[[producer]]\nname = \"created\"\nkind = \"eventfd\"\nfire = \"create\"\nrate = 300\n" +
           cpu +
           "[[producer]]\nname = \"persistent\"\nkind = \"eventfd\"\nfd_mode = \"persistent\"\n"
           "rate = 300\n" +
           cpu +
           "[[producer]]\nname = \"units\"\nkind = \"eventfd\"\nfd_mode = \"semaphore\"\n"
           "rate = 300\n" +
           cpu +
           "[[producer]]\nname = \"tick\"\nkind = \"timerfd\"\ninitial = \"2ms\"\n"
           "interval = \"2ms\"\n";
}

std::uint64_t count(const json& stats) { return stats["count"].get<std::uint64_t>(); }

// The count of a metrics series, e.g. evfly_cpu_latency_seconds_count{kind="eventfd",...}.
std::uint64_t metric(const std::string& text, const std::string& series) {
    const auto at = text.find(series + " ");
    if (at == std::string::npos) return 0;
    return std::stoull(text.substr(at + series.size() + 1));
}

void expect_split(int producer_cpu, const std::string& daemon_extra) {
    SCOPED_TRACE("producers on CPU " + std::to_string(producer_cpu) + " " + daemon_extra);
    TempDir dir;
    const std::string metrics = dir.path() + "/evfly.prom";
    const std::string path = dir.write("evfly.toml", config(producer_cpu, metrics, daemon_extra));
    const std::string summary = dir.path() + "/summary.json";
    const auto r = run_evflyd({"-c", path, "--run-for", "2s", "--summary", summary}, {}, 30s);
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    const std::uint64_t eventfd = count(s["latency_ns"]["eventfd"]);
    const std::uint64_t timerfd = count(s["latency_ns"]["timerfd"]);
    ASSERT_GT(eventfd, 1000u);
    ASSERT_GT(timerfd, 300u);

    const json& by = s["by_cpu"];
    const bool same = producer_cpu == 0;
    // The totals are the sums of the split, so every sample is in exactly one side of it, with
    // a warm-up or without.
    // Every eventfd sample has a fire CPU, so the split accounts for all of them.
    const std::uint64_t want_same = same ? eventfd : 0;
    const std::uint64_t want_cross = same ? 0 : eventfd;
    EXPECT_EQ(count(by["eventfd"]["same_cpu"]), want_same);
    EXPECT_EQ(count(by["eventfd"]["cross_cpu"]), want_cross);
    // Delivery is its own histogram: at a warm-up's edge a sample's two parts may fall on either
    // side of the snapshot, so its split is checked against its own total.
    const std::uint64_t delivered = count(s["delivery_ns"]["eventfd"]);
    EXPECT_EQ(count(by["eventfd_delivery"]["same_cpu"]), same ? delivered : 0);
    EXPECT_EQ(count(by["eventfd_delivery"]["cross_cpu"]), same ? 0 : delivered);
    EXPECT_EQ(by["same_cpu_share"].get<double>(), same ? 1.0 : 0.0);
    // Consumers ran on CPU 0 only.
    ASSERT_EQ(by["consumer_cpus"].size(), 1u) << by.dump();
    const json& cpu0 = by["consumer_cpus"][0];
    EXPECT_EQ(cpu0["cpu"], 0);
    EXPECT_EQ(count(cpu0["eventfd"]["same_cpu"]), want_same);
    EXPECT_EQ(count(cpu0["eventfd"]["cross_cpu"]), want_cross);
    EXPECT_EQ(count(cpu0["timerfd"]), timerfd);
    // The full histograms of the split (for plots and merging) hold the same samples.
    const auto total = [](const json& buckets) {
        std::uint64_t n = 0;
        for (const auto& b : buckets) n += b[2].get<std::uint64_t>();
        return n;
    };
    const json& hist = s["by_cpu_histograms_ns"];
    EXPECT_EQ(total(hist["eventfd_same_cpu"]), want_same);
    EXPECT_EQ(total(hist["eventfd_cross_cpu"]), want_cross);
    EXPECT_EQ(total(hist["eventfd_delivery_same_cpu"]), same ? delivered : 0);
    EXPECT_EQ(total(hist["eventfd_delivery_cross_cpu"]), same ? 0 : delivered);
    // A split's percentiles come from its own samples.
    const json& split = cpu0["eventfd_delivery"][same ? "same_cpu" : "cross_cpu"];
    EXPECT_GT(split["p50"].get<std::uint64_t>(), 0u);
    EXPECT_LE(split["p50"].get<std::uint64_t>(), split["max"].get<std::uint64_t>());

    // The metrics file carries the same split under a cpu label.
    const std::string text = evfly::test::read_file(metrics);
    const std::string labels = R"({kind="eventfd",cpu="0",handoff=")";
    EXPECT_EQ(metric(text, "evfly_cpu_latency_seconds_count" + labels + "same_cpu\"}"), want_same)
        << text;
    EXPECT_EQ(metric(text, "evfly_cpu_latency_seconds_count" + labels + "cross_cpu\"}"),
              want_cross);
    EXPECT_EQ(metric(text, "evfly_cpu_delivery_seconds_count" + labels +
                               (same ? "same_cpu" : "cross_cpu") + "\"}"),
              delivered);
    EXPECT_EQ(
        metric(text, R"(evfly_cpu_latency_seconds_count{kind="timerfd",cpu="0",handoff="timer"})"),
        timerfd);
}

}  // namespace

TEST(CpuAttribution, SameCpuHandOffsAreFiledAsSameCpu) { expect_split(0, ""); }

TEST(CpuAttribution, CrossCpuHandOffsAreFiledAsCrossCpuAndWarmUpLeavesThemOutToo) {
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs two CPUs";
    expect_split(1, "warmup = \"300ms\"");
}
