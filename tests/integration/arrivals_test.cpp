// Arrivals and handler costs on the real evflyd: Poisson arrivals at their rate with the seed
// said, bursts that queue, producers of one rate spread over the period unless aligned, work
// drawn from its distribution, and sleeping handlers that leave the CPU. These measure time:
// they run alone.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::expect_clean;
using evfly::test::producer;
using evfly::test::run_evflyd;
using evfly::test::summary_of;
using evfly::test::TempDir;
using nlohmann::json;

namespace {

const auto run = evfly::test::run_config;

std::uint64_t u64(const json& j) { return j.get<std::uint64_t>(); }

}  // namespace

// 1 000/s for 2 s as a Poisson process: about 2 000 due (within 5 standard deviations, and the
// start and stop), all fired; the seed given is the seed said, and one drawn is said too.
TEST(Arrivals, PoissonComesAtItsRateAndSaysItsSeed) {
    TempDir dir;
    const std::string body = R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "p"
kind = "eventfd"
rate = 1000
arrival = "poisson"
)";
    const json s = run(dir, "seeded", body + "seed = 7\n", "2s");
    expect_clean(s);
    const json p = producer(s, "p");
    EXPECT_EQ(p["arrival"], "poisson");
    EXPECT_EQ(u64(p["seed"]), 7u);
    EXPECT_NEAR(static_cast<double>(u64(p["due"])), 2'000.0, 5 * std::sqrt(2'000.0) + 50);
    EXPECT_EQ(u64(p["due"]), u64(p["fired"]) + u64(p["skipped"]));
    const json drawn = producer(run(dir, "drawn", body, "300ms"), "p");
    ASSERT_TRUE(drawn["seed"].is_number_unsigned()) << drawn.dump();
    // The seed said can be given back.
    const json again = producer(
        run(dir, "again", body + "seed = " + std::to_string(u64(drawn["seed"])) + "\n", "300ms"),
        "p");
    EXPECT_EQ(again["seed"], drawn["seed"]);
}

// 50 events at once every 50 ms, each its own eventfd with 100 us of work, one consumer: the
// median event waits for about 24 others (2.4 ms), the last for 49.
TEST(Arrivals, BurstsQueueBehindEachOther) {
    TempDir dir;
    const json s = run(dir, "burst", R"(
[daemon]
consumers = 1
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "b"
kind = "eventfd"
rate = 1000
arrival = "burst"
burst = 50
work = "100us"
)",
                       "1s");
    expect_clean(s);
    EXPECT_EQ(producer(s, "b")["arrival"], "burst");
    const json& l = s["latency_ns"]["eventfd"];
    EXPECT_GT(u64(l["p50"]), 1'000'000u) << l.dump();
    EXPECT_GT(u64(l["p99"]), 3'000'000u) << l.dump();
}

// Two producers of one rate, 100 ms of (sleeping) work each, one consumer: spread over the
// period (the default) neither waits for the other; aligned, one of each pair waits 100 ms.
TEST(Arrivals, ProducersOfOneRateAreSpreadUnlessAligned) {
    TempDir dir;
    const auto config = [](const char* phase) {
        std::string c =
            "[daemon]\nconsumers = 1\nstats_interval = \"0s\"\n[log]\nsink = \"stderr\"\n";
        for (const char* name : {"a", "b"})
            c += std::string("[[producer]]\nname = \"") + name +
                 "\"\nkind = \"eventfd\"\nrate = 4\nwork = \"100ms\"\nwork_kind = \"sleep\"\n"
                 "phase = \"" +
                 phase + "\"\n";
        return c;
    };
    const json spread = run(dir, "spread", config("spread"), "2s");
    const json aligned = run(dir, "aligned", config("aligned"), "2s");
    EXPECT_LT(u64(spread["latency_ns"]["eventfd"]["p99"]), 50'000'000u) << spread.dump();
    EXPECT_GT(u64(aligned["latency_ns"]["eventfd"]["p99"]), 90'000'000u) << aligned.dump();
}

// Work drawn from an exponential distribution of mean 1 ms, sleeping: the handler segment's
// median is near ln 2 ms and its p99 near ln 100 ms (plus the sleep's own overshoot), and the
// handlers leave the CPU; the same work burning the CPU takes it.
TEST(Arrivals, ExponentialWorkHasItsShapeAndSleepingWorkLeavesTheCpu) {
    TempDir dir;
    const auto config = [](const char* kind) {
        return std::string(R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "w"
kind = "eventfd"
rate = 500
arrival = "poisson"
seed = 11
work = "1ms"
work_dist = "exponential"
work_kind = ")") +
               kind + "\"\n";
    };
    const json sleep = run(dir, "sleep", config("sleep"), "3s");
    expect_clean(sleep);
    const json& h = sleep["segments_ns"]["eventfd"]["handler"];
    ASSERT_GT(u64(h["count"]), 1'000u);
    EXPECT_GT(u64(h["p50"]), 600'000u) << h.dump();
    EXPECT_LT(u64(h["p50"]), 1'200'000u) << h.dump();  // and a sanitizer's overhead
    EXPECT_GT(u64(h["p99"]), 3'000'000u) << h.dump();
    EXPECT_LT(u64(h["p99"]), 7'000'000u) << h.dump();
    EXPECT_EQ(producer(sleep, "w")["work_dist"], "exponential");
    const auto cpu_s = [](const json& s) {
        return s["resources"]["cpu_user_s"].get<double>() +
               s["resources"]["cpu_sys_s"].get<double>();
    };
    // 1 500 events of 1 ms: 1.5 CPU-seconds burnt, or only the daemon's own asleep.
    const json cpu = run(dir, "cpu", config("cpu"), "3s");
    EXPECT_GT(cpu_s(cpu), 0.8) << cpu["resources"].dump();
    EXPECT_LT(cpu_s(sleep), 0.5 * cpu_s(cpu)) << sleep["resources"].dump();
}
