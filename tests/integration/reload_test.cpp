// Live reload (SIGHUP) of the real evflyd: what changes, what must not, and that nothing is lost.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

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
using evfly::test::SpawnOptions;
using evfly::test::summary_of;
using evfly::test::TempDir;
using evfly::test::thread_count;
using evfly::test::thread_ids;
using evfly::test::wait_logged;
using nlohmann::json;

namespace {

// Replaces `path` the way a careful operator (or a config manager) does: write, then rename.
void replace_file(const TempDir& dir, const std::string& path, const std::string& text) {
    const std::string tmp = dir.write("next.toml.tmp", text);
    std::filesystem::rename(tmp, path);
}

// The first stats line logged after the `nth` line with message `after` (0-based).
std::optional<json> stats_after(const Process& p, const std::string& after, std::size_t nth) {
    std::size_t seen = 0;
    bool armed = false;
    for (const auto& line : log_lines(p)) {
        if (line["msg"] == after && seen++ == nth) armed = true;
        if (armed && line["msg"] == "stats") return line;
    }
    return std::nullopt;
}

std::string config_with(int consumers, const std::string& producers,
                        const std::string& extra = "") {
    return "[daemon]\nconsumers = " + std::to_string(consumers) +
           "\nstats_interval = \"100ms\"\n[log]\nsink = \"stderr\"\n" + extra + producers;
}

const char* kFlood = R"(
[[producer]]
name = "flood"
kind = "eventfd"
threads = 2
rate = 0
fd_mode = "persistent"
)";
const char* kBurst = R"(
[[producer]]
name = "burst"
kind = "eventfd"
rate = 0
max_in_flight = 64
)";
const char* kTick = R"(
[[producer]]
name = "tick"
kind = "timerfd"
timers = 4
initial = "1ms"
interval = "1ms"
)";

// Waits up to 5 s for the process to have `count` threads named `prefix`.
bool threads_become(const Process& p, const std::string& prefix, int count) {
    for (int i = 0; i < 500; ++i) {
        if (thread_count(p.pid(), prefix) == count) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

TEST(Reload, PoolAndProducersChangeUnderFlatOutLoadLosingNothing) {
    TempDir dir;
    const std::string config =
        dir.write("evfly.toml", config_with(1, std::string(kFlood) + kBurst));
    const std::string summary = dir.path() + "/summary.json";
    const NotifySocket notify(dir.path() + "/notify");
    SpawnOptions spawn;
    spawn.env.push_back(notify.env());
    Process p({"-c", config, "--summary", summary}, spawn);
    // Read the notify socket as systemd does, all along: sd_notify blocks when nobody reads.
    std::vector<NotifySocket::Message> messages;
    std::jthread reader([&] { messages = notify.until_stopping(60s); });
    ASSERT_TRUE(wait_logged(p, "stats", 2));
    EXPECT_EQ(thread_count(p.pid(), "consumer-"), 1);
    const auto flood_threads = [&p] { return thread_ids(p.pid(), "producer-flood"); };
    const auto flood_before = flood_threads();
    ASSERT_EQ(flood_before.size(), 2u);

    // 1 -> 8 consumers; "burst" goes, "tick" arrives.
    replace_file(dir, config, config_with(8, std::string(kFlood) + kTick));
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded", 1)) << p.err();
    // Every change is in place when the reload is reported: 8 consumer threads, "tick" running,
    // "flood" untouched (same kernel threads). "burst" has stopped firing and drains in the
    // background, so the supervisor is not held up: its thread leaves once its fds are back.
    EXPECT_EQ(thread_count(p.pid(), "consumer-"), 8);
    EXPECT_TRUE(threads_become(p, "producer-burst", 0));
    EXPECT_EQ(thread_count(p.pid(), "producer-tick"), 1);
    EXPECT_EQ(flood_threads(), flood_before);
    ASSERT_TRUE(wait_logged(p, "stats", count_logged(p, "stats") + 2));
    const auto stats8 = stats_after(p, "config reloaded", 0);
    ASSERT_TRUE(stats8.has_value());
    EXPECT_EQ((*stats8)["consumers"], 8);

    // 8 -> 2 consumers; "burst" comes back, "tick" goes.
    replace_file(dir, config, config_with(2, std::string(kFlood) + kBurst));
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded", 2)) << p.err();
    EXPECT_EQ(thread_count(p.pid(), "consumer-"), 2);
    EXPECT_TRUE(threads_become(p, "producer-tick", 0));
    EXPECT_EQ(thread_count(p.pid(), "producer-burst"), 1);
    EXPECT_EQ(flood_threads(), flood_before);
    std::this_thread::sleep_for(200ms);

    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    reader.join();
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["consumers"], 2);
    EXPECT_EQ(s["reloads"]["ok"], 2);
    EXPECT_EQ(s["reloads"]["failed"], 0);
    EXPECT_EQ(producer(s, "flood")["threads"], 2);
    EXPECT_EQ(producer(s, "burst")["threads"], 1);
    EXPECT_GT(producer(s, "burst")["value_written"].get<std::uint64_t>(), 0u);
    // A removed producer's counts stay in the summary.
    EXPECT_EQ(producer(s, "tick")["threads"], 0);
    EXPECT_GT(producer(s, "tick")["expirations"].get<std::uint64_t>(), 0u);

    // systemd heard RELOADING=1, then READY=1, for each reload.
    std::string sequence;
    for (const auto& m : messages) {
        if (m.text.find("RELOADING=1") != std::string::npos) sequence += 'R';
        if (m.text.find("READY=1") != std::string::npos) sequence += 'Y';
    }
    EXPECT_EQ(sequence, "YRYRY");
}

TEST(Reload, InvalidConfigLogsEveryErrorAndKeepsTheRunningOne) {
    TempDir dir;
    const std::string metrics = dir.path() + "/evfly.prom";
    const std::string config = dir.write(
        "evfly.toml", config_with(3, kFlood, "[metrics]\ntextfile = \"" + metrics + "\"\n"));
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(wait_logged(p, "stats", 1));
    replace_file(
        dir, config,
        "[daemon]\nconsumers = 0\nbogus = 1\n[log]\nsink = \"stderr\"\n" + std::string(kFlood));
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "reload failed; the running config is kept", 1)) << p.err();
    std::vector<json> errors;
    for (const auto& line : log_lines(p))
        if (line["msg"] == "config error") errors.push_back(line);
    ASSERT_EQ(errors.size(), 2u) << p.err();
    for (const auto& e : errors) {
        EXPECT_EQ(e["file"], config);
        EXPECT_EQ(e["level"], "error");
    }
    EXPECT_EQ(errors[0]["key"], "daemon.consumers");
    EXPECT_EQ(errors[0]["line"], 2);
    EXPECT_EQ(errors[1]["key"], "daemon.bogus");
    EXPECT_EQ(errors[1]["line"], 3);
    // Still running the old config.
    ASSERT_TRUE(wait_logged(p, "stats", count_logged(p, "stats") + 2));
    EXPECT_EQ((*stats_after(p, "reload failed; the running config is kept", 0))["consumers"], 3);
    EXPECT_EQ(thread_count(p.pid(), "consumer-"), 3);
    // The failure is counted for Prometheus too (the metrics file of the config kept).
    const std::string prom = evfly::test::read_file(metrics);
    EXPECT_NE(prom.find("evfly_reloads_total{result=\"failed\"} 1\n"), std::string::npos) << prom;
    EXPECT_NE(prom.find("evfly_reloads_total{result=\"ok\"} 0\n"), std::string::npos);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0);
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["reloads"]["ok"], 0);
    EXPECT_EQ(s["reloads"]["failed"], 1);
}

TEST(Reload, UnchangedConfigTouchesNothing) {
    TempDir dir;
    const std::string config = dir.write("evfly.toml", config_with(3, std::string(kFlood) + kTick));
    Process p({"-c", config});
    ASSERT_TRUE(wait_logged(p, "stats", 1));
    const auto before = thread_ids(p.pid());
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config unchanged; nothing to do", 1)) << p.err();
    EXPECT_EQ(thread_ids(p.pid()), before);  // not one thread stopped or started
    EXPECT_EQ(count_logged(p, "config reloaded"), 0u);
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(20s), 0);
}

TEST(Reload, LogSinkFormatLevelAndStatsIntervalChangeLive) {
    TempDir dir;
    const std::string log_file = dir.path() + "/evfly.log";
    const std::string paced = R"(
[[producer]]
name = "paced"
kind = "eventfd"
rate = 200
)";
    const std::string config = dir.write(
        "evfly.toml",
        "[daemon]\nstats_interval = \"0s\"\n[log]\nsink = \"stderr\"\nlevel = \"info\"\n" + paced);
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();  // SIGHUP's default would end it before
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(count_logged(p, "stats"), 0u);  // stats are off
    replace_file(dir, config,
                 "[daemon]\nstats_interval = \"50ms\"\n[log]\nsink = \"file\"\nfile = \"" +
                     log_file + "\"\nformat = \"text\"\nlevel = \"debug\"\n" + paced);
    p.signal(SIGHUP);
    // Lines still queued when the sink changes go to the new one, so wait on the file.
    for (int i = 0; i < 500 && !std::filesystem::exists(log_file); ++i)
        std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(500ms);
    const std::string text = evfly::test::read_file(log_file);
    // Text lines at debug level, with stats every 50 ms, now go to the file...
    EXPECT_NE(text.find(" info [supervisor] config reloaded "), std::string::npos) << text;
    EXPECT_NE(text.find(" debug [consumer-"), std::string::npos);
    EXPECT_NE(text.find("changed=log,daemon.stats_interval"), std::string::npos) << text;
    std::size_t stats = 0;
    for (const auto& line : evfly::test::lines(text))
        stats += line.find("] stats ") != std::string::npos;
    EXPECT_GE(stats, 4u);
    // ...and no longer to stderr.
    const std::string err_before = p.err();
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(p.err(), err_before);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0);
    const json s = summary_of(summary);
    EXPECT_EQ(s["totals"]["lost"], 0);
    // The log file the reload opened is still open when the summary counts fds; nothing else.
    EXPECT_LE(s["resources"]["fds_at_exit"].get<int>(),
              s["resources"]["fds_at_start"].get<int>() + 1);
}

TEST(Reload, TwoHundredSighupsInTwoSecondsAlternatingValidAndInvalid) {
    TempDir dir;
    const std::string config =
        dir.write("evfly.toml", config_with(2, std::string(kFlood) + kBurst));
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(wait_logged(p, "stats", 1));
    const std::string invalid = "[daemon]\nconsumers = \"many\"\n" + std::string(kFlood);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 200; ++i) {
        std::string next;
        switch (i % 4) {
            case 0:
                next = config_with(3, std::string(kFlood) + kBurst);
                break;
            case 2:
                next = config_with(1, std::string(kFlood) + kTick);
                break;
            default:
                next = invalid;
        }
        replace_file(dir, config, next);
        p.signal(SIGHUP);
        std::this_thread::sleep_until(start + (i + 1) * 10ms);
    }
    // Signals that arrive while one is pending coalesce; every one that was taken is answered.
    std::this_thread::sleep_for(500ms);
    ASSERT_FALSE(p.wait(1ms).has_value()) << "evflyd exited: " << p.err();
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(30s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    const auto ok = s["reloads"]["ok"].get<std::uint64_t>();
    const auto failed = s["reloads"]["failed"].get<std::uint64_t>();
    EXPECT_GT(ok, 10u);
    EXPECT_GT(failed, 10u);
    EXPECT_EQ(count_logged(p, "reloading the config"), ok + failed);
}

// A reload that cannot start its threads (here: RLIMIT_NPROC, as a cgroup's pids.max would) is
// all or nothing: the pool keeps its size, the log says what failed and that nothing changed,
// and the daemon serves on.
TEST(Reload, AReloadThatCannotStartItsThreadsChangesNothing) {
    TempDir dir;
    std::filesystem::permissions(dir.path(), std::filesystem::perms(0777));
    const auto config_of = [](int consumers) {
        return "[daemon]\nconsumers = " + std::to_string(consumers) +
               "\nstats_interval = \"100ms\"\n[log]\nsink = \"stderr\"\n[[producer]]\nname = "
               "\"steady\"\nkind = \"eventfd\"\nfd_mode = \"persistent\"\nrate = 200\n";
    };
    const std::string config = dir.write("evfly.toml", config_of(2));
    std::filesystem::permissions(config, std::filesystem::perms(0644));
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    // Root is not held by RLIMIT_NPROC: run a copy as nobody, with room for a few threads more
    // than it starts with (supervisor, logger, 2 consumers, 1 producer) but not for 64.
    spawn.program = dir.path() + "/evflyd";
    std::filesystem::copy_file(EVFLYD_PATH, spawn.program);
    std::filesystem::permissions(spawn.program, std::filesystem::perms(0755));
    if (::geteuid() == 0) spawn.uid = 65534;
    spawn.nproc = 12;
    Process p({"-c", config, "--summary", summary}, spawn);
    ASSERT_TRUE(wait_logged(p, "stats", 2)) << p.err();
    ASSERT_EQ(thread_count(p.pid(), "consumer-"), 2);
    replace_file(dir, config, config_of(64));
    std::filesystem::permissions(config, std::filesystem::perms(0644));
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "reload could not start its threads; nothing changed")) << p.err();
    ASSERT_TRUE(wait_logged(p, "reload failed")) << p.err();
    EXPECT_TRUE(threads_become(p, "consumer-", 2)) << thread_count(p.pid(), "consumer-");
    EXPECT_EQ(count_logged(p, "config reloaded"), 0u);
    // Still serving: stats lines keep coming, with the pool it had.
    ASSERT_TRUE(wait_logged(p, "stats", count_logged(p, "stats") + 2)) << p.err();
    const auto stats = stats_after(p, "reload failed", 0);
    ASSERT_TRUE(stats.has_value());
    EXPECT_EQ((*stats)["consumers"], 2);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["consumers"], 2);
    EXPECT_EQ(s["reloads"]["failed"], 1);
    EXPECT_EQ(s["reloads"]["ok"], 0);
}

// A reload that removes a producer with slow fds in flight does not hold the supervisor while
// they drain (shutdown_timeout may be an hour): the reload is reported at once, the watchdog is
// pinged meanwhile, and a SIGTERM is read at once.
TEST(Reload, RemovingASlowProducerDoesNotHoldTheSupervisor) {
    TempDir dir;
    const auto config_of = [](bool with_slow) {
        std::string text =
            "[daemon]\nconsumers = 1\nstats_interval = \"0s\"\nshutdown_timeout = \"20s\"\n"
            "[log]\nsink = \"stderr\"\n[[producer]]\nname = \"steady\"\nkind = \"eventfd\"\n"
            "fd_mode = \"persistent\"\nrate = 100\n";
        if (with_slow)
            text +=
                "[[producer]]\nname = \"slow\"\nkind = \"eventfd\"\nrate = 100\n"
                "max_in_flight = 8\nwork = \"200ms\"\n";
        return text;
    };
    const std::string config = dir.write("evfly.toml", config_of(true));
    const std::string summary = dir.path() + "/summary.json";
    const NotifySocket notify(dir.path() + "/notify");
    SpawnOptions spawn;
    spawn.env = {notify.env(), "WATCHDOG_USEC=1000000"};
    Process p({"-c", config, "--summary", summary}, spawn);
    std::vector<NotifySocket::Message> messages;
    std::jthread reader([&] { messages = notify.until_stopping(60s); });
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    std::this_thread::sleep_for(600ms);  // 8 slow fds in flight: 1.6 s of work queued
    replace_file(dir, config, config_of(false));
    const auto reload_sent = std::chrono::steady_clock::now();
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded", 1, 5s)) << p.err();
    EXPECT_LT(std::chrono::steady_clock::now() - reload_sent, 1s);
    std::this_thread::sleep_for(1200ms);  // the slow fds are still draining
    const auto term_sent = std::chrono::steady_clock::now();
    p.signal(SIGTERM);
    ASSERT_TRUE(wait_logged(p, "stopping", 1, 5s)) << p.err();
    EXPECT_LT(std::chrono::steady_clock::now() - term_sent, 1s);
    ASSERT_EQ(p.wait(30s), 0) << p.err();
    reader.join();
    const json s = summary_of(summary);
    expect_clean(s);  // the slow producer's fds were drained, within shutdown_timeout
    EXPECT_EQ(producer(s, "slow")["threads"], 0);
    // The watchdog kept being pinged (every 0.5 s) from the reload to the stop.
    std::vector<std::chrono::steady_clock::time_point> pings;
    for (const auto& m : messages)
        if (m.text.find("WATCHDOG=1") != std::string::npos) pings.push_back(m.at);
    int between = 0;
    for (const auto& at : pings) between += at > reload_sent && at < term_sent ? 1 : 0;
    EXPECT_GE(between, 2);
}

// With no stats line (stats_interval = "0s") and no canary, a producer removed by a reload is
// still collected once it has drained: its thread joined, its counts kept, and the supervisor
// goes back to sleep instead of waking for it every stall_after.
TEST(Reload, ARemovedProducerIsCollectedWithoutStatsAndTheSupervisorSleepsAgain) {
    TempDir dir;
    const std::string head =
        "[daemon]\nconsumers = 2\nstats_interval = \"0s\"\nstall_after = \"200ms\"\n"
        "[log]\nsink = \"stderr\"\n[[producer]]\nname = \"later\"\nkind = \"timerfd\"\n"
        "initial = \"1h\"\n";
    const std::string config = dir.write(
        "evfly.toml", head + "[[producer]]\nname = \"gone\"\nkind = \"eventfd\"\nrate = 100\n");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    std::this_thread::sleep_for(300ms);
    replace_file(dir, config, head);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded")) << p.err();
    std::this_thread::sleep_for(700ms);  // drained and collected
    const long long before = evfly::test::thread_ctx_switches(p.pid(), "supervisor");
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(evfly::test::thread_ctx_switches(p.pid(), "supervisor"), before);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_GT(producer(s, "gone")["fired"].get<int>(), 10);
    EXPECT_EQ(producer(s, "gone")["threads"], 0);
}

// The summary's config hash is that of the config in force at the stop: after a reload, the
// hash a run started on the new file reports.
TEST(Reload, TheConfigHashFollowsAReload) {
    TempDir dir;
    const std::string a =
        "[daemon]\nconsumers = 2\nstats_interval = \"0s\"\n[log]\nsink = "
        "\"stderr\"\n" +
        std::string(kTick);
    const std::string b =
        "[daemon]\nconsumers = 3\nstats_interval = \"0s\"\n[log]\nsink = "
        "\"stderr\"\n" +
        std::string(kTick);
    const std::string fresh = dir.path() + "/fresh.json";
    const std::string b_path = dir.write("b.toml", b);
    const auto r =
        evfly::test::run_evflyd({"-c", b_path, "--run-for", "100ms", "--summary", fresh});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string expected = summary_of(fresh)["host"]["config_hash"];

    const std::string config = dir.write("evfly.toml", a);
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    replace_file(dir, config, b);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded")) << p.err();
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    EXPECT_NE(expected, "");
    EXPECT_EQ(s["host"]["config_hash"], expected);
    for (const auto& line : log_lines(p)) {
        if (line["msg"] == "config reloaded") {
            EXPECT_EQ(line["config_hash"], expected);
        }
    }
}
