// End-to-end runs of the real evflyd binary, read back through its summary and its logs.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
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

namespace {

const char* kFlatOutPersistent = R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "flood"
kind = "eventfd"
threads = 2
rate = 0
fd_mode = "persistent"
)";

const char* kFlatOutPerEvent = R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "burst"
kind = "eventfd"
threads = 2
rate = 0
fd_mode = "per-event"
)";

}  // namespace

TEST(Daemon, FlatOutPersistentLosesNothingAndLeaksNoFd) {
    TempDir dir;
    const auto config = dir.write("p.toml", kFlatOutPersistent);
    const std::string summary = dir.path() + "/summary.json";
    const auto r = run_evflyd({"-c", config, "--run-for", "1500ms", "--summary", summary});
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_GT(s["totals"]["value_read"].get<long>(), 10'000);
    EXPECT_EQ(s["totals"]["fired"], s["totals"]["value_written"]);
}

// Every percentile of the summary comes with its 95 % interval from the sample count: a flat-out
// run's p99 is bounded on both sides; 40 events leave a p99 with no upper bound, said as null.
TEST(Daemon, PercentilesCarryTheirConfidenceIntervals) {
    TempDir dir;
    const std::string summary = dir.path() + "/summary.json";
    const auto r = run_evflyd({"-c", dir.write("p.toml", kFlatOutPersistent), "--run-for", "500ms",
                               "--summary", summary});
    ASSERT_EQ(r.code, 0) << r.err;
    const json many = summary_of(summary)["latency_ns"]["eventfd"];
    ASSERT_GT(many["count"].get<std::uint64_t>(), 1'000u);  // 563 bound a p99 on both sides
    const json& p99 = many["ci95"]["p99"];
    ASSERT_TRUE(p99[0].is_number() && p99[1].is_number()) << many.dump();
    EXPECT_LE(p99[0].get<std::uint64_t>(), many["p99"].get<std::uint64_t>());
    EXPECT_GE(p99[1].get<std::uint64_t>(), many["p99"].get<std::uint64_t>());
    const std::string few = dir.write("few.toml", R"(
[log]
sink = "stderr"
[[producer]]
name = "slow"
kind = "eventfd"
rate = 100
)");
    const auto f = run_evflyd({"-c", few, "--run-for", "400ms", "--summary", summary});
    ASSERT_EQ(f.code, 0) << f.err;
    const json sparse = summary_of(summary)["latency_ns"]["eventfd"];
    ASSERT_GT(sparse["count"].get<std::uint64_t>(), 20u);
    ASSERT_LT(sparse["count"].get<std::uint64_t>(), 100u);
    EXPECT_TRUE(sparse["ci95"]["p99"][1].is_null()) << sparse.dump();
    EXPECT_TRUE(sparse["ci95"]["p50"][0].is_number()) << sparse.dump();
    EXPECT_TRUE(sparse["ci95"]["p50"][1].is_number()) << sparse.dump();
}

TEST(Daemon, FlatOutPerEventConsumesEveryFdOnce) {
    TempDir dir;
    const auto config = dir.write("e.toml", kFlatOutPerEvent);
    const std::string summary = dir.path() + "/summary.json";
    const auto r = run_evflyd({"-c", config, "--run-for", "1500ms", "--summary", summary});
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_GT(s["totals"]["fired"].get<long>(), 1'000);
    EXPECT_EQ(s["totals"]["events_dispatched"], s["totals"]["fired"]);
    EXPECT_EQ(s["totals"]["stale_events"], 0);
    EXPECT_EQ(s["latency_ns"]["eventfd"]["count"], s["totals"]["fired"]);
}

TEST(Daemon, MixedLoadWithMoreConsumersThanCores) {
    TempDir dir;
    const auto config = dir.write("mixed.toml", R"(
[daemon]
consumers = 8
max_events = 16
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "burst"
kind = "eventfd"
threads = 2
rate = 0
max_in_flight = 128
work = "2us"
[[producer]]
name = "steady"
kind = "eventfd"
fd_mode = "persistent"
rate = 20000
[[producer]]
name = "tick"
kind = "timerfd"
threads = 2
timers = 4
initial = "2ms"
interval = "2ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    const auto r = run_evflyd({"-c", config, "--run-for", "1500ms", "--summary", summary});
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["consumers"], 8);
    EXPECT_GT(producer(s, "burst")["fired"].get<long>(), 0);
    EXPECT_GT(producer(s, "steady")["fired"].get<long>(), 1000);
    EXPECT_GT(producer(s, "tick")["expirations"].get<long>(), 1000);
}

class SignalUnderLoad : public ::testing::TestWithParam<int> {};

TEST_P(SignalUnderLoad, DrainsAndExitsZero) {
    TempDir dir;
    const auto config = dir.write("load.toml", std::string(kFlatOutPerEvent) + R"(
[[producer]]
name = "flood"
kind = "eventfd"
rate = 0
fd_mode = "persistent"
[[producer]]
name = "tick"
kind = "timerfd"
initial = "1ms"
interval = "1ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    std::this_thread::sleep_for(1s);
    p.signal(GetParam());
    const auto code = p.wait(30s);
    ASSERT_TRUE(code.has_value());
    EXPECT_EQ(*code, 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_GT(s["totals"]["fired"].get<long>(), 100);
    EXPECT_NE(p.err().find(GetParam() == SIGTERM ? "SIGTERM" : "SIGINT"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(TermAndInt, SignalUnderLoad, ::testing::Values(SIGTERM, SIGINT));

TEST(Daemon, IdleConsumersNeverWake) {
    TempDir dir;
    const auto config = dir.write("idle.toml", R"(
[daemon]
consumers = 16
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "later"
kind = "timerfd"
initial = "1h"
)");
    Process p({"-c", config});
    // Wait for every consumer to be up and parked in epoll_wait.
    for (int i = 0; i < 200 && evfly::test::thread_count(p.pid(), "consumer-") < 16; ++i)
        std::this_thread::sleep_for(10ms);
    ASSERT_EQ(evfly::test::thread_count(p.pid(), "consumer-"), 16);
    std::this_thread::sleep_for(200ms);
    const long long consumers_before = evfly::test::thread_ctx_switches(p.pid(), "consumer-");
    const long long supervisor_before = evfly::test::thread_ctx_switches(p.pid(), "supervisor");
    std::this_thread::sleep_for(2s);
    // Idle cost does not grow with run time: not one context switch in two seconds.
    EXPECT_EQ(evfly::test::thread_ctx_switches(p.pid(), "consumer-"), consumers_before);
    EXPECT_EQ(evfly::test::thread_ctx_switches(p.pid(), "supervisor"), supervisor_before);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(10s), 0);
}

TEST(Daemon, SixtyFourFdLimitUnderPerEventLoad) {
    TempDir dir;
    const auto config = dir.write("e.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "burst"
kind = "eventfd"
threads = 2
rate = 0
max_in_flight = 1024
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions options;
    options.nofile = 64;
    const auto r = run_evflyd({"-c", config, "--run-for", "1500ms", "--summary", summary}, options);
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_GT(s["totals"]["fired"].get<long>(), 100);
    // It did run out, backed off, and recovered.
    EXPECT_GT(producer(s, "burst")["fd_exhaustion"].get<long>(), 0);
    EXPECT_NE(r.err.find("out of file descriptors"), std::string::npos);
}

TEST(Daemon, EveryDebugLogLineIsValidJson) {
    TempDir dir;
    const auto config = dir.write("dbg.toml", R"(
[daemon]
consumers = 2
stats_interval = "200ms"
[log]
level = "debug"
sink = "stderr"
[[producer]]
name = "n"
kind = "eventfd"
threads = 2
rate = 50
[[producer]]
name = "t"
kind = "timerfd"
initial = "10ms"
interval = "50ms"
)");
    const auto r = run_evflyd({"-c", config, "--run-for", "1s"});
    ASSERT_EQ(r.code, 0) << r.err;
    int events = 0;
    int stats = 0;
    for (const auto& line : evfly::test::lines(r.err)) {
        json j;
        ASSERT_NO_THROW(j = json::parse(line)) << line;
        for (const char* key : {"ts", "level", "thread", "msg"})
            ASSERT_TRUE(j.contains(key)) << line;
        if (j["msg"] == "event") {
            ++events;
            EXPECT_EQ(j["level"], "debug");
            EXPECT_EQ(j["thread"].get<std::string>().rfind("consumer-", 0), 0u) << line;
            for (const char* key : {"consumer", "producer", "fd", "value", "latency_us"})
                EXPECT_TRUE(j.contains(key)) << line;
        }
        if (j["msg"] == "stats") {
            ++stats;
            for (const char* key :
                 {"events_per_s", "eventfd_p99_us", "timerfd_p99_us", "log_dropped", "in_flight"})
                EXPECT_TRUE(j.contains(key)) << line;
        }
    }
    EXPECT_GT(events, 60);  // ~100 eventfd + ~20 timer events
    EXPECT_GE(stats, 3);
}

TEST(Daemon, InfoLevelHasNoPerEventLinesAndTextFormatWorks) {
    TempDir dir;
    const auto config = dir.write(
        "i.toml",
        "[log]\nsink = \"stderr\"\n[[producer]]\nname = \"n\"\nkind = \"eventfd\"\nrate = 100\n");
    const auto r = run_evflyd({"-c", config, "--run-for", "500ms", "--log-format", "text"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err.find("msg\":\"event"), std::string::npos);
    EXPECT_EQ(r.err.find("] event "), std::string::npos);
    EXPECT_NE(r.err.find(" info [supervisor] started "), std::string::npos) << r.err;
}

TEST(Daemon, SummaryToStdoutHasTheContractKeys) {
    const auto r = run_evflyd({"--run-for", "200ms", "--summary", "-"});
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = json::parse(r.out);
    for (const char* key : {"evfly_version", "elapsed_s", "consumers", "producers", "totals",
                            "latency_ns", "resources"})
        EXPECT_TRUE(s.contains(key)) << key;
    for (const char* key :
         {"fired", "value_written", "value_read", "lost", "events_dispatched", "epoll_wakeups"})
        EXPECT_TRUE(s["totals"].contains(key)) << key;
    for (const char* key : {"count", "p50", "p90", "p99", "p999", "max"})
        EXPECT_TRUE(s["latency_ns"]["timerfd"].contains(key)) << key;
    for (const char* key : {"name", "kind", "threads", "fired", "value_written", "value_read",
                            "expirations", "overruns"})
        EXPECT_TRUE(s["producers"][0].contains(key)) << key;
}

TEST(Daemon, PeakRssIsTheDaemonsOwnNotItsParents) {
    // Linux carries getrusage's ru_maxrss across execve: a daemon started by a large parent
    // would report the parent's peak. Make this test process large, then start evflyd from it.
    std::vector<char> ballast(std::size_t{128} << 20);
    for (std::size_t i = 0; i < ballast.size(); i += 4096) ballast[i] = 1;
    const auto r = run_evflyd({"--run-for", "100ms", "--summary", "-"});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto rss_kib = json::parse(r.out)["resources"]["max_rss_kib"].get<std::uint64_t>();
    EXPECT_GT(rss_kib, 1024u);
    EXPECT_LT(rss_kib, 64u * 1024) << "the parent's 128 MiB leaked into the daemon's peak RSS";
    EXPECT_EQ(ballast[4096], 1);
}

TEST(Daemon, ThreadsCarryTheirNames) {
    TempDir dir;
    const auto config =
        dir.write("n.toml",
                  "[daemon]\nconsumers = 3\n[log]\nsink = \"stderr\"\n[[producer]]\nname = "
                  "\"notify\"\nkind = \"eventfd\"\nthreads = 2\n");
    Process p({"-c", config});
    // "started" is logged once every thread runs.
    for (int i = 0; i < 1000 && p.err().find("\"started\"") == std::string::npos; ++i)
        std::this_thread::sleep_for(10ms);
    EXPECT_EQ(evfly::test::thread_count(p.pid(), "consumer-"), 3);
    EXPECT_EQ(evfly::test::thread_count(p.pid(), "producer-notif"),
              2);  // 15 bytes of "producer-notify-0"
    EXPECT_EQ(evfly::test::thread_count(p.pid(), "supervisor"), 1);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(10s), 0);
}

// sd_notify without systemd: a datagram socket of ours stands in for PID 1.
TEST(Daemon, NotifiesReadyWatchdogAndStopping) {
    TempDir dir;
    const NotifySocket notify(dir.path() + "/notify.sock");
    SpawnOptions options;
    options.env = {notify.env(), "WATCHDOG_USEC=200000"};
    Process p({"--run-for", "1s"}, options);
    std::string received;
    for (const auto& m : notify.until_stopping()) received += m.text + "\n";
    EXPECT_EQ(p.wait(10s), 0);
    const auto ready = received.find("READY=1");
    const auto watchdog = received.find("WATCHDOG=1");
    const auto stopping = received.find("STOPPING=1");
    ASSERT_NE(ready, std::string::npos) << received;
    ASSERT_NE(watchdog, std::string::npos) << received;
    ASSERT_NE(stopping, std::string::npos) << received;
    EXPECT_LT(ready, watchdog);
    EXPECT_LT(watchdog, stopping);
    // The stop asks for the drain's shutdown_timeout (5 s) and 10 s more, so that a unit's
    // TimeoutStopSec= never cuts a long drain short.
    EXPECT_NE(received.find("STOPPING=1\nEXTEND_TIMEOUT_USEC=15000000"), std::string::npos)
        << received;
}

TEST(Daemon, StatusCarriesTheLiveSummaryEveryStatsInterval) {
    TempDir dir;
    const NotifySocket notify(dir.path() + "/notify.sock");
    const std::string config = dir.write("status.toml", R"(
[daemon]
consumers = 3
stats_interval = "100ms"
[log]
sink = "stderr"
[[producer]]
name = "steady"
kind = "eventfd"
threads = 1
rate = 500
)");
    SpawnOptions options;
    options.env = {notify.env()};
    Process p({"-c", config, "--run-for", "800ms"}, options);
    std::vector<std::string> statuses;
    for (const auto& m : notify.until_stopping())
        if (m.text.rfind("STATUS=", 0) == 0 && m.text.find("events/s") != std::string::npos)
            statuses.push_back(m.text);
    EXPECT_EQ(p.wait(10s), 0);
    ASSERT_GE(statuses.size(), 4u);
    // One line that `systemctl status` shows: rates, p99s, the pool and the fds in flight.
    const std::string& last = statuses.back();
    EXPECT_EQ(last.find('\n'), std::string::npos) << last;
    for (const char* part :
         {"events/s", "values/s", "eventfd p99", "timerfd p99", "3 consumers", "in flight"})
        EXPECT_NE(last.find(part), std::string::npos) << part << " in " << last;
}

TEST(Daemon, PrometheusTextfilePassesPromtoolAndMatchesTheSummary) {
    ASSERT_EQ(std::system("command -v promtool >/dev/null"), 0)
        << "promtool not installed (tests/setup installs Debian's prometheus)";
    TempDir dir;
    const std::string prom = dir.path() + "/evfly.prom";
    const std::string config = dir.write("metrics.toml", R"(
[daemon]
stats_interval = "100ms"
[log]
sink = "stderr"
[metrics]
textfile = ")" + prom + R"("
[[producer]]
name = "steady"
kind = "eventfd"
threads = 2
rate = 500
[[producer]]
name = "tick"
kind = "timerfd"
initial = "5ms"
interval = "5ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--run-for", "800ms", "--summary", summary});
    std::this_thread::sleep_for(450ms);
    // While it runs: a whole, valid file (written to a temporary name, then renamed).
    EXPECT_EQ(std::system(("promtool check metrics < " + prom).c_str()), 0);
    ASSERT_EQ(p.wait(10s), 0) << p.err();
    EXPECT_EQ(std::system(("promtool check metrics < " + prom).c_str()), 0);
    // The last write is the final accounting.
    const json s = summary_of(summary);
    const std::string text = evfly::test::read_file(prom);
    for (const char* name : {"steady", "tick"}) {
        const std::string line =
            std::string("evfly_values_read_total{producer=\"") + name + "\",kind=\"" +
            producer(s, name)["kind"].get<std::string>() + "\"} " +
            std::to_string(producer(s, name)["value_read"].get<std::uint64_t>());
        EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\n" << text;
    }
    EXPECT_NE(text.find("evfly_consumers 4\n"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(prom + ".tmp"));
}

// The textfile exists once evflyd is ready, not one stats_interval later (node_exporter would
// meet a dangling link under the textfile drop-in), and a reload that moves it writes the new one
// at once and removes the old.
TEST(Daemon, TheTextfileIsThereOnceReadyAndMovesAtOnce) {
    TempDir dir;
    const std::string first = dir.path() + "/first.prom";
    const std::string second = dir.path() + "/second.prom";
    const auto config_with = [&](const std::string& prom) {
        return "[daemon]\nconsumers = 2\nstats_interval = \"1h\"\n[log]\nsink = \"stderr\"\n"
               "[metrics]\ntextfile = \"" +
               prom + "\"\n[[producer]]\nname = \"steady\"\nkind = \"eventfd\"\nrate = 100\n";
    };
    const std::string config = dir.write("t.toml", config_with(first));
    Process p({"-c", config});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    const std::string text = evfly::test::read_file(first);
    EXPECT_NE(text.find("evfly_consumers 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("evfly_start_time_seconds "), std::string::npos) << text;
    EXPECT_NE(text.find("evfly_events_total{producer=\"steady\",kind=\"eventfd\"} "),
              std::string::npos)
        << text;
    dir.write("t.toml", config_with(second));
    p.signal(SIGHUP);
    ASSERT_TRUE(evfly::test::wait_logged(p, "config reloaded")) << p.err();
    EXPECT_FALSE(std::filesystem::exists(first));
    EXPECT_NE(evfly::test::read_file(second).find("evfly_consumers 2\n"), std::string::npos);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(10s), 0) << p.err();
}

TEST(Daemon, FileSinkGetsEveryLine) {
    TempDir dir;
    const std::string log = dir.path() + "/evfly.log";
    const auto config = dir.write("f.toml", "[log]\nsink = \"file\"\nfile = \"" + log +
                                                "\"\n[daemon]\nstats_interval = \"100ms\"\n");
    const auto r = run_evflyd({"-c", config, "--run-for", "500ms"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err, "");  // nothing on stderr: it all went to the file
    int stats = 0;
    bool started = false;
    bool stopped = false;
    for (const auto& line : evfly::test::lines(evfly::test::read_file(log))) {
        const json j = json::parse(line);
        stats += j["msg"] == "stats" ? 1 : 0;
        started = started || j["msg"] == "started";
        stopped = stopped || j["msg"] == "stopped";
    }
    EXPECT_TRUE(started);
    EXPECT_TRUE(stopped);
    EXPECT_GE(stats, 3);
}

TEST(Daemon, LogRotationWithSigusr1LosesNoLine) {
    TempDir dir;
    const std::string log = dir.path() + "/evfly.log";
    const auto config = dir.write("rot.toml", R"(
[daemon]
stats_interval = "0s"
[log]
level = "debug"
sink = "file"
file = ")" + log + R"("
[[producer]]
name = "steady"
kind = "eventfd"
threads = 1
rate = 2000
fd_mode = "per-event"
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--run-for", "1500ms", "--summary", summary});
    // Signals only once the daemon takes them (before that, SIGUSR1's default ends a process).
    for (int i = 0; i < 1000 && evfly::test::read_file(log).find("started") == std::string::npos;
         ++i)
        std::this_thread::sleep_for(10ms);
    // What logrotate does: move the file away, then tell the daemon (postrotate).
    std::this_thread::sleep_for(200ms);
    ASSERT_EQ(std::rename(log.c_str(), (log + ".2").c_str()), 0);
    p.signal(SIGUSR1);
    std::this_thread::sleep_for(400ms);
    ASSERT_EQ(std::rename(log.c_str(), (log + ".1").c_str()), 0);
    p.signal(SIGUSR1);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    ASSERT_EQ(s["totals"]["log_dropped"], 0);
    std::uint64_t events = 0;
    int reopened = 0;
    for (const std::string suffix : {".2", ".1", ""}) {
        std::uint64_t in_file = 0;
        for (const auto& line : evfly::test::lines(evfly::test::read_file(log + suffix))) {
            const json j = json::parse(line);  // every line whole: none split across files
            in_file += j["msg"] == "event" ? 1u : 0u;
            reopened += j["msg"] == "log file reopened" ? 1 : 0;
        }
        EXPECT_GT(in_file, 0u) << "no event line in evfly.log" << suffix;
        events += in_file;
    }
    EXPECT_EQ(events, s["totals"]["value_read"].get<std::uint64_t>());
    EXPECT_EQ(reopened, 2);
}

TEST(Daemon, UnopenableLogFileIsAStartupResourceError) {
    TempDir dir;
    // spdlog creates missing directories, so make the parent a regular file.
    const auto blocker = dir.write("not-a-dir", "");
    const auto config =
        dir.write("f.toml", "[log]\nsink = \"file\"\nfile = \"" + blocker + "/evfly.log\"\n");
    const auto r = run_evflyd({"-c", config, "--run-for", "1s"});
    EXPECT_EQ(r.code, 71);
    EXPECT_NE(r.err.find("cannot open log file"), std::string::npos) << r.err;
}
