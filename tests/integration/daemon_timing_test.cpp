// End-to-end runs of the real evflyd binary whose assertions depend on time: exact fire counts
// against a schedule, watchdog silences, start-up time. They run alone (the timing binary), so a
// flat-out test beside them on a 2-core machine cannot skew them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::expect_clean;
using evfly::test::NotifySocket;
using evfly::test::Process;
using evfly::test::producer;
using evfly::test::run_evflyd;
using evfly::test::SpawnOptions;
using evfly::test::summary_of;
using evfly::test::TempDir;
using nlohmann::json;

TEST(Daemon, ClassicDemoRunsOnTheEmbeddedDefault) {
    TempDir dir;
    const std::string summary = dir.path() + "/summary.json";
    // Without -c and without /etc/evfly/evfly.toml... unless the host has one installed.
    if (access("/etc/evfly/evfly.toml", F_OK) == 0) GTEST_SKIP() << "/etc/evfly/evfly.toml exists";
    const auto r = run_evflyd({"--run-for", "5250ms", "--summary", summary});
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["consumers"], 4);
    // Two threads at 1/s, spread over the period: thread 0 fires at 0..5 s (six), thread 1 at
    // 0.5..4.5 s (five).
    EXPECT_EQ(producer(s, "notify")["fired"], 11);
    EXPECT_EQ(producer(s, "notify")["value_read"], 11);
    // Two timers due at 1 s and 4 s.
    EXPECT_EQ(producer(s, "tick")["expirations"], 4);
    EXPECT_EQ(producer(s, "tick")["overruns"], 0);
    EXPECT_EQ(s["latency_ns"]["eventfd"]["count"], 11);
    EXPECT_EQ(s["latency_ns"]["timerfd"]["count"], 4);
    EXPECT_NEAR(s["elapsed_s"].get<double>(), 5.25, 0.5);
    for (const char* key : {"cpu_user_s", "cpu_sys_s", "max_rss_kib", "voluntary_ctx_switches",
                            "involuntary_ctx_switches"}) {
        EXPECT_TRUE(s["resources"].contains(key)) << key;
    }
}

TEST(Daemon, StuckConsumerWithholdsTheWatchdogUntilItRecovers) {
    TempDir dir;
    const NotifySocket notify(dir.path() + "/notify.sock");
    const std::string config = dir.write("wedge.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "steady"
kind = "eventfd"
threads = 1
rate = 100
fd_mode = "per-event"
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions options;
    // Pings every 200 ms; a consumer busy on one event for over 400 ms is stuck. The consumer
    // that takes the first event spends 2 s on it (a test-only hook), then recovers.
    options.env = {notify.env(), "WATCHDOG_USEC=400000", "EVFLY_TEST_WEDGE_CONSUMER_MS=2000"};
    Process p({"-c", config, "--run-for", "4s", "--summary", summary}, options);
    std::vector<std::chrono::steady_clock::time_point> pings;
    for (const auto& m : notify.until_stopping())
        if (m.text.find("WATCHDOG=1") != std::string::npos) pings.push_back(m.at);
    ASSERT_EQ(p.wait(10s), 0) << p.err();
    ASSERT_GE(pings.size(), 3u);
    // The longest silence covers the wedge; pings come before and after it.
    std::chrono::steady_clock::duration longest{};
    for (std::size_t i = 1; i < pings.size(); ++i)
        longest = std::max(longest, pings[i] - pings[i - 1]);
    EXPECT_GT(longest, 1200ms);
    EXPECT_LT(longest, 2600ms);
    const std::string err = p.err();
    EXPECT_NE(err.find("withholding the watchdog ping"), std::string::npos) << err;
    EXPECT_NE(err.find("watchdog pings resumed"), std::string::npos) << err;
    const json s = summary_of(summary);
    expect_clean(s);
}

// max_in_flight is a bound, not an allocation: a per-event thread takes slots as its fds in
// flight grow, so a generous bound costs neither start-up time nor memory.
TEST(Daemon, AGenerousMaxInFlightCostsNothingUntilUsed) {
    TempDir dir;
    const auto peak_with = [&](int max_in_flight) {
        const std::string config =
            dir.write("many.toml",
                      "[daemon]\nconsumers = 2\nstats_interval = \"0s\"\n[log]\nsink = "
                      "\"stderr\"\n[[producer]]\nname = \"many\"\nkind = \"eventfd\"\n"
                      "threads = 16\nrate = 200\nmax_in_flight = " +
                          std::to_string(max_in_flight) + "\n");
        const std::string summary = dir.path() + "/summary.json";
        const auto begin = std::chrono::steady_clock::now();
        Process p({"-c", config, "--run-for", "600ms", "--summary", summary});
        EXPECT_TRUE(evfly::test::wait_logged(p, "started", 1, 5s)) << p.err();
        EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
        EXPECT_EQ(p.wait(20s), 0) << p.err();
        const json s = summary_of(summary);
        expect_clean(s);
        return s["resources"]["max_rss_kib"].get<std::int64_t>();
    };
    const std::int64_t small = peak_with(64);
    const std::int64_t huge = peak_with(1'000'000);
    EXPECT_LT(huge - small, 32 * 1024) << small << " KiB with 64, " << huge << " KiB with 1000000";
}
