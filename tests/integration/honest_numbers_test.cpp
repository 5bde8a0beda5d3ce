// Honest numbers under overload, against the real evflyd: latency counted from when each event
// was due, schedule shortfalls counted, the stall canary, the summary's histograms and time
// series, warm-up, the SLO gate, host context and realtime timers across a wall-clock step.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::count_logged;
using evfly::test::expect_clean;
using evfly::test::log_lines;
using evfly::test::NotifySocket;
using evfly::test::Process;
using evfly::test::producer;
using evfly::test::run_evflyd;
using evfly::test::SpawnOptions;
using evfly::test::summary_of;
using evfly::test::TempDir;
using nlohmann::json;

namespace {

constexpr int kExitSloViolated = 79;

std::uint64_t u64(const json& j) { return j.get<std::uint64_t>(); }

// Every producer: what the schedule called for is what was fired plus what was given up on.
void expect_schedule_adds_up(const json& s) {
    for (const auto& p : s["producers"]) {
        EXPECT_EQ(u64(p["due"]), u64(p["fired"]) + u64(p["skipped"])) << p.dump();
        EXPECT_EQ(u64(p["backlog"]), 0u) << p.dump();
    }
    EXPECT_EQ(u64(s["totals"]["due"]), u64(s["totals"]["fired"]) + u64(s["totals"]["skipped"]));
}

// The "stats" lines logged so far.
std::vector<json> stats_lines(const std::vector<json>& lines) {
    std::vector<json> out;
    for (const auto& l : lines)
        if (l["msg"] == "stats") out.push_back(l);
    return out;
}

const json* first_logged(const std::vector<json>& lines, const std::string& msg) {
    for (const auto& l : lines)
        if (l["msg"] == msg) return &l;
    return nullptr;
}

const char* const kBehind = "producer behind its schedule; skipping what is overdue";
const char* const kStall = "event in flight too long; a wake-up may be lost or stalled";

}  // namespace

// The issue's case: 2 000 events/s asked of one consumer that handles 1 000/s. The producer can
// fire only as slots come back, so stamping at the write would hide the queue (coordinated
// omission); counted from the due time, the latency shows it.
TEST(HonestNumbers, OverloadedPacedPerEventCountsLatencyFromTheDueTime) {
    TempDir dir;
    const std::string prom = dir.path() + "/evfly.prom";
    const std::string config = dir.write("overload.toml", R"(
[daemon]
consumers = 1
stats_interval = "500ms"
[log]
sink = "stderr"
[metrics]
textfile = ")" + prom + R"("
[[producer]]
name = "paced"
kind = "eventfd"
rate = 2000
fd_mode = "per-event"
max_in_flight = 64
work = "1ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    const NotifySocket notify(dir.path() + "/notify.sock");
    SpawnOptions spawn;
    spawn.env = {notify.env()};
    Process p({"-c", config, "--run-for", "4s", "--summary", summary}, spawn);
    std::string status;
    for (const auto& m : notify.until_stopping()) status += m.text + "\n";
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    expect_schedule_adds_up(s);
    const json paced = producer(s, "paced");
    // 4 s at 2 000/s were due; at most ~1 000/s could be served.
    EXPECT_GE(u64(paced["due"]), 7000u);
    EXPECT_LE(u64(paced["fired"]) * 10, u64(paced["due"]) * 7);
    EXPECT_GT(u64(paced["late"]) + u64(paced["skipped"]), 1000u);
    // Delivery (write -> consumed) is what 64 fds in flight at 1 ms each cost; counted from the
    // due time the wait for a free slot comes on top: the event due at t is served near 2t.
    const std::uint64_t latency_p50 = u64(s["latency_ns"]["eventfd"]["p50"]);
    const std::uint64_t delivery_p50 = u64(s["delivery_ns"]["eventfd"]["p50"]);
    EXPECT_GE(latency_p50, 200'000'000u);
    EXPECT_GE(latency_p50, 3 * delivery_p50);
    EXPECT_GE(delivery_p50, 10'000'000u);
    EXPECT_EQ(u64(s["latency_ns"]["eventfd"]["count"]), u64(paced["fired"]));
    // The shortfall is said where operators look: one warning per episode, the stats line,
    // STATUS= and the metrics file.
    const auto lines = log_lines(p);
    EXPECT_GE(count_logged(p, kBehind), 1u);
    EXPECT_LE(count_logged(p, kBehind), 3u);
    bool said_behind = false;
    for (const auto& l : stats_lines(lines))
        said_behind |= l["behind"].get<std::string>().find("paced:") != std::string::npos;
    EXPECT_TRUE(said_behind) << p.err();
    EXPECT_NE(status.find("behind: paced:"), std::string::npos) << status;
    const std::string text = evfly::test::read_file(prom);
    EXPECT_NE(text.find("evfly_schedule_skipped_total{producer=\"paced\",kind=\"eventfd\"} " +
                        std::to_string(u64(paced["skipped"])) + "\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("evfly_delivery_seconds_count{kind=\"eventfd\"}"), std::string::npos);
    EXPECT_NE(text.find("\nevfly_oldest_in_flight_seconds "), std::string::npos);
    // tests/setup installs promtool (Debian's prometheus).
    EXPECT_EQ(std::system(("promtool check metrics < " + prom).c_str()), 0);
}

// Two consumers, two producer threads, twice what the pool can take: the same honesty.
TEST(HonestNumbers, SeveralConsumersOverloadedStillAddUp) {
    TempDir dir;
    const std::string config = dir.write("pool.toml", R"(
[daemon]
consumers = 2
stats_interval = "300ms"
[log]
sink = "stderr"
[[producer]]
name = "pair"
kind = "eventfd"
threads = 2
rate = 2000
max_in_flight = 32
work = "1ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--run-for", "2500ms", "--summary", summary});
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    expect_schedule_adds_up(s);
    const json pair = producer(s, "pair");
    EXPECT_GT(u64(pair["late"]) + u64(pair["skipped"]), 500u);
    EXPECT_GE(u64(s["latency_ns"]["eventfd"]["p50"]), 2 * u64(s["delivery_ns"]["eventfd"]["p50"]));
    bool said_behind = false;
    for (const auto& l : stats_lines(log_lines(p)))
        said_behind |= l["behind"].get<std::string>().find("pair:") != std::string::npos;
    EXPECT_TRUE(said_behind) << p.err();
}

// A stopped daemon cannot fire: a short stop shows as late fires (the backlog is fired at once,
// each stamped with its own due time), a stop beyond the 1 s catch-up limit as skipped fires,
// logged once. Persistent and per-event producers alike; nothing is lost.
TEST(HonestNumbers, SigstopOfTheDaemonShowsAsLateAndSkippedFires) {
    TempDir dir;
    const std::string config = dir.write("stop.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "steady"
kind = "eventfd"
fd_mode = "persistent"
rate = 1000
[[producer]]
name = "single"
kind = "eventfd"
fd_mode = "per-event"
rate = 500
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    std::this_thread::sleep_for(300ms);
    p.signal(SIGSTOP);
    std::this_thread::sleep_for(400ms);
    p.signal(SIGCONT);
    std::this_thread::sleep_for(400ms);
    p.signal(SIGSTOP);
    std::this_thread::sleep_for(1600ms);
    p.signal(SIGCONT);
    std::this_thread::sleep_for(400ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    expect_schedule_adds_up(s);
    const json steady = producer(s, "steady");
    const json single = producer(s, "single");
    // 400 ms stopped: ~400 and ~200 fires made late, then (1.6 s stopped) ~1 600 and ~800 due
    // fires given up on.
    EXPECT_GE(u64(steady["late"]), 200u);
    EXPECT_GE(u64(single["late"]), 100u);
    EXPECT_GE(u64(steady["skipped"]), 500u);
    EXPECT_GE(u64(single["skipped"]), 250u);
    // The late fires count from their due time, so the stop is in the latency.
    EXPECT_GE(u64(s["latency_ns"]["eventfd"]["max"]), 300'000'000u);
    // Once per episode: the long stop is one episode for each producer.
    EXPECT_GE(count_logged(p, kBehind), 2u);
    EXPECT_LE(count_logged(p, kBehind), 4u);
}

// A stop longer than the 1 s catch-up limit: the first fire after it carries its whole lateness
// (as cyclictest's first wake-up after a stall does), in the maximum and in the histogram; what
// was due during the stop beyond that fire is skipped, and counted.
TEST(HonestNumbers, AStopLongerThanTheCatchUpLimitShowsInTheLatency) {
    TempDir dir;
    const std::string config = dir.write("gap.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "steady"
kind = "eventfd"
fd_mode = "persistent"
rate = 1000
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    std::this_thread::sleep_for(500ms);
    p.signal(SIGSTOP);
    std::this_thread::sleep_for(1500ms);
    p.signal(SIGCONT);
    std::this_thread::sleep_for(500ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    expect_schedule_adds_up(s);
    EXPECT_GE(u64(s["latency_ns"]["eventfd"]["max"]), 1'400'000'000u);
    std::uint64_t beyond_a_second = 0;
    for (const auto& b : s["histograms_ns"]["eventfd"])
        if (u64(b[0]) >= 1'000'000'000u) beyond_a_second += u64(b[2]);
    EXPECT_GE(beyond_a_second, 1u);
    EXPECT_GE(u64(producer(s, "steady")["skipped"]), 1000u);
    EXPECT_GE(u64(producer(s, "steady")["late"]), 1u);
}

// The only consumer is held for the whole run (test hook) while a persistent producer fires
// 100/s: no consumer reads anything, the stop reads it all. That is not "read": it is counted as
// drained_at_stop (per producer, in the totals, the stopped line and the metrics), with no
// latency sample and nothing dispatched, and lost stays 0 because every value was accounted for.
TEST(HonestNumbers, ValuesOnlyTheStopReadAreDrainedAtStopNotRead) {
    TempDir dir;
    const std::string prom = dir.path() + "/evfly.prom";
    const std::string config = dir.write("held.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
stall_after = "0s"
[log]
sink = "stderr"
[metrics]
textfile = ")" + prom + R"("
[[producer]]
name = "held"
kind = "eventfd"
fd_mode = "persistent"
rate = 100
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env = {"EVFLY_TEST_WEDGE_CONSUMER_MS=4000"};
    const auto r = run_evflyd({"-c", config, "--run-for", "3s", "--summary", summary}, spawn, 30s);
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    const json held = producer(s, "held");
    EXPECT_GE(u64(held["drained_at_stop"]), 250u);
    EXPECT_EQ(u64(held["value_read"]), 0u);
    EXPECT_EQ(u64(held["value_written"]), u64(held["drained_at_stop"]));
    EXPECT_EQ(u64(s["totals"]["drained_at_stop"]), u64(held["drained_at_stop"]));
    EXPECT_EQ(s["totals"]["lost"], 0);
    EXPECT_EQ(u64(s["totals"]["events_dispatched"]), 0u);
    EXPECT_EQ(u64(s["latency_ns"]["eventfd"]["count"]), 0u);
    bool stopped = false;
    for (const auto& line : evfly::test::lines(r.err)) {
        if (line.find("\"msg\":\"stopped\"") == std::string::npos) continue;
        stopped = true;
        EXPECT_EQ(u64(json::parse(line)["drained_at_stop"]), u64(held["drained_at_stop"]));
    }
    EXPECT_TRUE(stopped) << r.err;
    const std::string metrics = evfly::test::read_file(prom);
    EXPECT_NE(metrics.find("evfly_drained_at_stop_total{producer=\"held\",kind=\"eventfd\"} " +
                           std::to_string(u64(held["drained_at_stop"])) + "\n"),
              std::string::npos)
        << metrics;
}

// A consumer held on one per-event fd (test hook), which EPOLLONESHOT keeps every other
// consumer from taking: the canary sees it, warns once with producer, fd and age, counts one
// stall, and the oldest age is in the stats line and the metrics file. Nothing is lost.
TEST(HonestNumbers, StallCanaryWarnsOnceForAnEventHeldInFlight) {
    TempDir dir;
    const std::string prom = dir.path() + "/evfly.prom";
    const std::string config = dir.write("stall.toml", R"(
[daemon]
consumers = 2
stats_interval = "100ms"
stall_after = "300ms"
[log]
sink = "stderr"
[metrics]
textfile = ")" + prom + R"("
[[producer]]
name = "slow"
kind = "eventfd"
rate = 50
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env = {"EVFLY_TEST_WEDGE_CONSUMER_MS=1500"};
    Process p({"-c", config, "--run-for", "2500ms", "--summary", summary}, spawn);
    ASSERT_TRUE(evfly::test::wait_logged(p, kStall, 1, 10s)) << p.err();
    // While it is held, the metrics file says how old the oldest event is.
    std::this_thread::sleep_for(250ms);
    const std::string during = evfly::test::read_file(prom);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(count_logged(p, kStall), 1u) << p.err();
    // A test hook never goes unnoticed.
    EXPECT_EQ(count_logged(p, "test-only hook set; never in production"), 1u) << p.err();
    const auto lines = log_lines(p);
    const json* warning = first_logged(lines, kStall);
    ASSERT_NE(warning, nullptr);
    EXPECT_EQ((*warning)["producer"], "slow");
    EXPECT_GE((*warning)["fd"].get<int>(), 0);
    EXPECT_GE((*warning)["age_s"].get<double>(), 0.3);
    EXPECT_EQ(u64(s["totals"]["stalls"]), 1u);
    EXPECT_EQ(u64(producer(s, "slow")["stalls"]), 1u);
    EXPECT_EQ(u64(s["stall_canary"]["stalls"]), 1u);
    double oldest_ms = 0;
    for (const auto& l : stats_lines(lines))
        oldest_ms = std::max(oldest_ms, l["oldest_in_flight_ms"].get<double>());
    EXPECT_GE(oldest_ms, 300.0);
    const std::string gauge = "\nevfly_oldest_in_flight_seconds ";
    const auto at = during.find(gauge);
    ASSERT_NE(at, std::string::npos) << during;
    EXPECT_GE(std::stod(during.substr(at + gauge.size())), 0.3) << during;
    EXPECT_NE(during.find("evfly_stalls_total{producer=\"slow\",kind=\"eventfd\"} 1\n"),
              std::string::npos)
        << during;
}

// "0s" turns the canary off: the same hold is neither logged nor counted.
TEST(HonestNumbers, StallCanaryOff) {
    TempDir dir;
    const std::string config = dir.write("off.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
stall_after = "0s"
[log]
sink = "stderr"
[[producer]]
name = "slow"
kind = "eventfd"
rate = 50
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    // Held longer than the default stall_after (1 s): a "0s" read as the default would warn.
    spawn.env = {"EVFLY_TEST_WEDGE_CONSUMER_MS=1500"};
    const auto r =
        run_evflyd({"-c", config, "--run-for", "2500ms", "--summary", summary}, spawn, 20s);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err.find(kStall), std::string::npos);
    EXPECT_EQ(u64(summary_of(summary)["totals"]["stalls"]), 0u);
}

// The buckets in the summary are enough to re-derive every percentile it reports, and the time
// series has one entry per stats interval.
TEST(HonestNumbers, SummaryHistogramsReproduceItsPercentilesAndTheSeriesEachInterval) {
    TempDir dir;
    const std::string config = dir.write("mix.toml", R"(
[daemon]
consumers = 2
stats_interval = "100ms"
[log]
sink = "stderr"
[[producer]]
name = "events"
kind = "eventfd"
rate = 2000
[[producer]]
name = "tick"
kind = "timerfd"
initial = "1ms"
interval = "1ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--run-for", "1200ms", "--summary", summary});
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    const std::vector<std::pair<std::string, json>> kinds{
        {"eventfd", s["latency_ns"]["eventfd"]},
        {"eventfd_delivery", s["delivery_ns"]["eventfd"]},
        {"timerfd", s["latency_ns"]["timerfd"]}};
    for (const auto& [kind, stats] : kinds) {
        const json& buckets = s["histograms_ns"][kind];
        std::uint64_t total = 0;
        std::uint64_t previous_upper = 0;
        for (const auto& b : buckets) {
            ASSERT_EQ(b.size(), 3u);
            EXPECT_LE(u64(b[0]), u64(b[1]));
            EXPECT_GE(u64(b[0]), previous_upper);  // ascending, disjoint
            previous_upper = u64(b[1]);
            EXPECT_GT(u64(b[2]), 0u);  // only the non-empty ones
            total += u64(b[2]);
        }
        ASSERT_EQ(total, u64(stats["count"])) << kind;
        ASSERT_GT(total, 100u) << kind;
        const std::uint64_t max = u64(stats["max"]);
        for (const auto& [q, key] : std::vector<std::pair<double, const char*>>{
                 {0.5, "p50"}, {0.9, "p90"}, {0.99, "p99"}, {0.999, "p999"}}) {
            const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
            std::uint64_t seen = 0;
            std::uint64_t value = 0;
            for (const auto& b : buckets) {
                seen += u64(b[2]);
                if (seen >= rank) {
                    value = std::min(u64(b[0]) + (u64(b[1]) - u64(b[0])) / 2, max);
                    break;
                }
            }
            EXPECT_EQ(value, u64(stats[key])) << kind << " " << key;
        }
        EXPECT_GE(max, u64(buckets.back()[0]));
        EXPECT_LE(max, u64(buckets.back()[1]));
    }
    const auto stats = stats_lines(log_lines(p));
    ASSERT_GE(stats.size(), 8u);
    ASSERT_EQ(s["timeseries"].size(), stats.size());
    double t = 0;
    for (std::size_t i = 0; i < stats.size(); ++i) {
        const json& entry = s["timeseries"][i];
        EXPECT_GT(entry["t_s"].get<double>(), t);
        t = entry["t_s"].get<double>();
        EXPECT_NEAR(entry["interval_s"].get<double>(), stats[i]["interval_s"].get<double>(),
                    0.0011);
        EXPECT_EQ(u64(entry["eventfd_ns"]["count"]), u64(stats[i]["eventfd_count"]));
        EXPECT_EQ(u64(entry["timerfd_ns"]["count"]), u64(stats[i]["timerfd_count"]));
    }
    EXPECT_EQ(u64(s["timeseries_dropped"]), 0u);
}

// Latency recorded in the warm-up is left out of the histograms and said so; counts are not.
TEST(HonestNumbers, WarmupLeavesEarlyLatencyOutButNotTheCounts) {
    TempDir dir;
    const std::string config = dir.write("warm.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
warmup = "400ms"
[log]
sink = "stderr"
[[producer]]
name = "events"
kind = "eventfd"
rate = 1000
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--run-for", "1s", "--summary", summary});
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(count_logged(p, "warm-up over; latency counts from now"), 1u);
    EXPECT_DOUBLE_EQ(s["warmup"]["duration_s"].get<double>(), 0.4);
    const std::uint64_t excluded = u64(s["warmup"]["excluded"]["eventfd"]);
    const std::uint64_t counted = u64(s["latency_ns"]["eventfd"]["count"]);
    // ~400 of ~1 000 events in the warm-up; every event is in exactly one of the two.
    EXPECT_GE(excluded, 200u);
    EXPECT_GE(counted, 300u);
    EXPECT_EQ(excluded + counted, u64(producer(s, "events")["value_read"]));
    // The warm-up's end is one snapshot per histogram: a consumer may record an event's latency
    // just before it and its delivery just after, one event each at most.
    EXPECT_LE(std::max(u64(s["delivery_ns"]["eventfd"]["count"]), counted) -
                  std::min(u64(s["delivery_ns"]["eventfd"]["count"]), counted),
              2u);
}

// A reload that changes the producers warms up again.
TEST(HonestNumbers, WarmupAgainAfterAReloadThatChangesProducers) {
    TempDir dir;
    const std::string body = R"(
[daemon]
consumers = 1
stats_interval = "0s"
warmup = "300ms"
[log]
sink = "stderr"
[[producer]]
name = "events"
kind = "eventfd"
rate = )";
    const std::string config = dir.write("warm.toml", body + "500\n");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(p, "warm-up over; latency counts from now", 1, 10s));
    std::this_thread::sleep_for(300ms);
    dir.write("warm.toml", body + "1000\n");
    p.signal(SIGHUP);
    ASSERT_TRUE(evfly::test::wait_logged(p, "warm-up over; latency counts from now", 2, 10s))
        << p.err();
    std::this_thread::sleep_for(200ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    // ~150 events in the first warm-up and ~300 in the second.
    EXPECT_GE(u64(s["warmup"]["excluded"]["eventfd"]), 250u);
    EXPECT_EQ(u64(s["warmup"]["excluded"]["eventfd"]) + u64(s["latency_ns"]["eventfd"]["count"]),
              u64(s["totals"]["value_read"]));
}

namespace {

struct SloCase {
    const char* name;
    std::string producers;  // [[producer]] tables
    std::string slo;        // the [slo] table's lines
    const char* key;        // the violation expected
    std::vector<std::string> env;
    const char* shutdown_timeout = "5s";
};

const std::string kEvents = "[[producer]]\nname = \"events\"\nkind = \"eventfd\"\nrate = 500\n";
const std::string kTicks =
    "[[producer]]\nname = \"tick\"\nkind = \"timerfd\"\ninitial = \"2ms\"\ninterval = \"2ms\"\n";
const std::string kOverload =
    "[[producer]]\nname = \"flood\"\nkind = \"eventfd\"\nrate = 4000\nmax_in_flight = 8\n"
    "work = \"1ms\"\n";

std::vector<SloCase> slo_violations() {
    return {
        {"eventfd_p99", kEvents, "eventfd_p99 = \"1ns\"", "eventfd_p99", {}},
        {"delivery_p50", kEvents, "eventfd_delivery_p50 = \"1ns\"", "eventfd_delivery_p50", {}},
        {"timerfd_p99", kTicks, "timerfd_p99 = \"1ns\"", "timerfd_p99", {}},
        {"timerfd_max", kTicks, "timerfd_max = \"1ns\"", "timerfd_max", {}},
        {"skipped", kOverload, "max_skipped = 0", "max_skipped", {}},
        {"late", kOverload, "max_late = 0", "max_late", {}},
        {"stalls", kEvents, "max_stalls = 0\n", "max_stalls", {"EVFLY_TEST_WEDGE_CONSUMER_MS=700"}},
        {"lost",
         "[[producer]]\nname = \"slow\"\nkind = \"eventfd\"\nrate = 100\nwork = \"200ms\"\n",
         "max_lost = 0",
         "max_lost",
         {},
         "10ms"},
        {"overruns",
         "[[producer]]\nname = \"busy\"\nkind = \"timerfd\"\ninitial = \"1ms\"\ninterval = "
         "\"1ms\"\nwork = \"5ms\"\n",
         "max_overruns = 0",
         "max_overruns",
         {}},
        {"drained_at_stop",
         "[[producer]]\nname = \"held\"\nkind = \"eventfd\"\nfd_mode = \"persistent\"\nrate = "
         "100\n",
         "max_drained_at_stop = 0",
         "max_drained_at_stop",
         {"EVFLY_TEST_WEDGE_CONSUMER_MS=2000"}},
    };
}

std::string slo_config(const SloCase& c) {
    return std::string(
               "[daemon]\nconsumers = 1\nstats_interval = \"0s\"\nstall_after = "
               "\"200ms\"\nshutdown_timeout = \"") +
           c.shutdown_timeout + "\"\n[log]\nsink = \"stderr\"\n[slo]\n" + c.slo + "\n" +
           c.producers;
}

}  // namespace

// Every limit here is one a healthy run meets on a loaded CI host: values are never lost and
// nothing stalls for a second, but a sanitised build sharing two CPUs with other tests can miss
// a few 5 ms periods (CI once saw skipped > 0 under ASan), so skips get room up to half of the
// 160 periods of the 800 ms run (the violation cases below prove the limit bites).
TEST(SloGate, APassingRunExitsZeroAndSaysSo) {
    TempDir dir;
    const std::string config = dir.write("pass.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[slo]
eventfd_p99 = "10s"
timerfd_p99 = "10s"
max_lost = 0
max_skipped = 80
max_stalls = 0
[[producer]]
name = "events"
kind = "eventfd"
rate = 200
[[producer]]
name = "tick"
kind = "timerfd"
initial = "5ms"
interval = "5ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    const auto r = run_evflyd({"-c", config, "--run-for", "800ms", "--summary", summary}, {}, 20s);
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    EXPECT_EQ(s["slo"]["checked"], true);
    EXPECT_EQ(s["slo"]["passed"], true);
    EXPECT_TRUE(s["slo"]["violations"].empty());
    EXPECT_EQ(r.err.find("SLO violated"), std::string::npos);
}

class SloViolation : public ::testing::TestWithParam<SloCase> {};

TEST_P(SloViolation, ExitsWithItsOwnCodeAndNamesTheLimit) {
    const SloCase& c = GetParam();
    TempDir dir;
    const std::string config = dir.write("slo.toml", slo_config(c));
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env = c.env;
    const auto r =
        run_evflyd({"-c", config, "--run-for", "1200ms", "--summary", summary}, spawn, 30s);
    ASSERT_EQ(r.code, kExitSloViolated) << r.err;
    const json s = summary_of(summary);
    EXPECT_EQ(s["slo"]["checked"], true);
    EXPECT_EQ(s["slo"]["passed"], false);
    bool found = false;
    for (const auto& v : s["slo"]["violations"]) {
        if (v["key"] != c.key) continue;
        found = true;
        EXPECT_GT(u64(v["actual"]), u64(v["limit"])) << v.dump();
    }
    EXPECT_TRUE(found) << s["slo"].dump();
    // Logged, and on stderr for whoever ran it.
    EXPECT_NE(r.err.find("\"msg\":\"SLO violated\",\"key\":\"" + std::string(c.key) + "\""),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("evflyd: SLO violated: "), std::string::npos) << r.err;
}

INSTANTIATE_TEST_SUITE_P(Each, SloViolation, ::testing::ValuesIn(slo_violations()),
                         [](const auto& test) { return std::string(test.param.name); });

// Two summaries can be compared honestly: where they ran and with which config.
TEST(HonestNumbers, HostContextInTheStartLineAndTheSummary) {
    TempDir dir;
    const std::string a = dir.write("a.toml", "[daemon]\nstats_interval = \"0s\"\n" + kEvents);
    const std::string b = dir.write("b.toml", "[daemon]\nstats_interval = \"0s\"\n" + kTicks);
    const auto hash_of = [&](const std::string& config, const std::string& name) {
        const std::string summary = dir.path() + "/" + name + ".json";
        const auto r = run_evflyd(
            {"-c", config, "--run-for", "100ms", "--summary", summary, "--log-format", "json"});
        EXPECT_EQ(r.code, 0) << r.err;
        const json s = summary_of(summary);
        utsname self{};
        EXPECT_EQ(::uname(&self), 0);
        const json& host = s["host"];
        EXPECT_EQ(host["kernel"], self.release);
        EXPECT_EQ(host["online_cpus"].get<long>(), ::sysconf(_SC_NPROCESSORS_ONLN));
        EXPECT_FALSE(host["cpu_model"].get<std::string>().empty());
        EXPECT_FALSE(host["clocksource"].get<std::string>().empty());
        EXPECT_TRUE(host["virtualized"].is_boolean());
        EXPECT_EQ(host["evfly_version"], s["evfly_version"]);
        EXPECT_EQ(host["config_hash"].get<std::string>().size(), 16u);
        // The start line carries the same context.
        EXPECT_NE(r.err.find("\"kernel\":\"" + std::string(self.release) + "\""),
                  std::string::npos);
        EXPECT_NE(r.err.find("\"config_hash\":\"" + host["config_hash"].get<std::string>()),
                  std::string::npos);
        return host["config_hash"].get<std::string>();
    };
    const std::string first = hash_of(a, "a1");
    EXPECT_EQ(hash_of(a, "a2"), first);
    EXPECT_NE(hash_of(b, "b"), first);
}

// Realtime timers are armed with TFD_TIMER_CANCEL_ON_SET (as /proc shows), and a wall-clock
// step (here injected: the read fails with ECANCELED, as the kernel reports it) is counted,
// logged once a second at most, and the timer re-armed from the new time: no lateness, no
// overruns come of it, and the timer keeps firing.
TEST(HonestNumbers, RealtimeTimersSurviveAWallClockStep) {
    TempDir dir;
    const std::string config = dir.write("wall.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "wall"
kind = "timerfd"
timers = 2
initial = "20ms"
interval = "20ms"
clock = "realtime"
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env = {"EVFLY_TEST_TIMER_CANCEL_EVERY=10"};
    Process p({"-c", config, "--summary", summary}, spawn);
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    std::this_thread::sleep_for(200ms);
    int armed_cancel_on_set = 0;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(p.pid()) + "/fdinfo")) {
        const std::string info = evfly::test::read_file(entry.path());
        // clockid 0 is CLOCK_REALTIME; flags 03 = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET.
        if (info.find("clockid: 0\n") != std::string::npos &&
            info.find("settime flags: 03\n") != std::string::npos)
            ++armed_cancel_on_set;
    }
    EXPECT_EQ(armed_cancel_on_set, 2);
    std::this_thread::sleep_for(1300ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    const json wall = producer(s, "wall");
    // ~150 reads, every tenth one canceled.
    EXPECT_GE(u64(wall["clock_jumps"]), 5u);
    EXPECT_EQ(u64(s["totals"]["clock_jumps"]), u64(wall["clock_jumps"]));
    EXPECT_GE(u64(wall["expirations"]), 40u);
    const std::size_t logged =
        count_logged(p, "wall clock set; realtime timers re-armed from the new time");
    EXPECT_GE(logged, 1u);
    EXPECT_LE(logged, 3u);
    // Had the schedule stayed on the old clock, the read after each step would be a period or
    // more late: 10% of the samples, so the p99 would show it.
    EXPECT_LT(u64(s["latency_ns"]["timerfd"]["p99"]), 10'000'000u);
    EXPECT_EQ(u64(wall["overruns"]), 0u);
}
