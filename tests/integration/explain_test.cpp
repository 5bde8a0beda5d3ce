// [explain] on the real evflyd and the real kernel: outliers made on purpose (a pool too small,
// a CPU held by a real-time task, a stopped process, a batch that keeps others idle), each
// classified, kept, logged and counted, and, with kernel tracing, the task that held the CPU
// named. These measure time and load a CPU: they run alone.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::expect_clean;
using evfly::test::log_lines;
using evfly::test::Process;
using evfly::test::run_evflyd;
using evfly::test::SpawnOptions;
using evfly::test::summary_of;
using evfly::test::TempDir;
using nlohmann::json;

namespace {

std::uint64_t u64(const json& j) { return j.get<std::uint64_t>(); }

std::uint64_t cause(const json& s, const char* name) { return u64(s["explain"]["causes"][name]); }

// Whether this process may run a real-time task (root, and a kernel that gives it runtime).
bool can_run_realtime() {
    if (::geteuid() != 0) return false;
    return std::system("chrt -f 10 true >/dev/null 2>&1") == 0;
}

bool have_tracefs() {
    return ::geteuid() == 0 && std::filesystem::exists("/sys/kernel/tracing/instances");
}

// A task holding CPU 0 in bursts under SCHED_FIFO (chrt, taskset): started, and killed when done.
class Hog {
  public:
    Hog(int burst_ms, int every_ms, int seconds) {
        pid_ = ::fork();
        if (pid_ == 0) {
            const std::string burst = std::to_string(burst_ms);
            const std::string every = std::to_string(every_ms);
            const std::string total = std::to_string(seconds);
            ::execlp("chrt", "chrt", "-f", "50", "taskset", "-c", "0", EVFLY_HOG_PATH,
                     burst.c_str(), every.c_str(), total.c_str(), nullptr);
            ::_exit(127);
        }
    }
    ~Hog() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    Hog(const Hog&) = delete;
    Hog& operator=(const Hog&) = delete;
    [[nodiscard]] pid_t pid() const { return pid_; }

  private:
    pid_t pid_ = -1;
};

}  // namespace

// A pool too small: one consumer, handlers twice as long as the gap between events. Every
// outlier waited for a busy consumer: queueing. Counted in the summary, the stats line, the
// metrics and one log line a second, each with its path in segments.
TEST(Explain, APoolTooSmallIsQueueing) {
    TempDir dir;
    const std::string prom = dir.path() + "/evfly.prom";
    const std::string config = dir.write("queue.toml", R"(
[daemon]
consumers = 1
max_events = 1
stats_interval = "500ms"
[log]
sink = "stderr"
[metrics]
textfile = ")" + prom + R"("
[explain]
over = "2ms"
[[producer]]
name = "q"
kind = "eventfd"
rate = 200
work = "10ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    const auto r = run_evflyd({"-c", config, "--run-for", "1s", "--summary", summary}, {}, 30s);
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    const json& e = s["explain"];
    EXPECT_EQ(e["over"], "2ms");
    EXPECT_EQ(u64(e["over_ns"]), 2'000'000u);
    const std::uint64_t outliers = u64(e["outliers"]);
    EXPECT_GT(outliers, 100u);
    std::uint64_t sum = 0;
    for (const auto& [name, count] : e["causes"].items()) sum += u64(count);
    EXPECT_EQ(sum, outliers);
    EXPECT_GE(cause(s, "queueing") * 10, outliers * 9) << e["causes"].dump();
    ASSERT_EQ(e["worst"].size(), 32u);
    const json& w = e["worst"][0];
    EXPECT_EQ(w["cause"], "queueing");
    EXPECT_EQ(w["producer"], "q");
    EXPECT_EQ(w["parked_at_write"], 0);
    const auto seg = w["segments_ns"];
    // The segments make up the latency (less the read itself, a few microseconds).
    const std::int64_t parts = seg["producer"].get<std::int64_t>() +
                               seg["wake_up"].get<std::int64_t>() +
                               seg["batch"].get<std::int64_t>();
    EXPECT_LE(parts, w["latency_ns"].get<std::int64_t>());
    EXPECT_GE(parts + 1'000'000, w["latency_ns"].get<std::int64_t>());
    EXPECT_GE(seg["handler"].get<std::int64_t>(), 10'000'000);
    EXPECT_GE(e["worst"][0]["latency_ns"], e["worst"][31]["latency_ns"]);
    // One line a second at most, each with the cause and the segments.
    std::size_t logged = 0;
    std::size_t queueing = 0;
    for (const auto& line : evfly::test::lines(r.err)) {
        if (line.find("\"msg\":\"outlier\"") == std::string::npos) continue;
        ++logged;
        const json l = json::parse(line);
        // The first fires may be late while the threads come up (the producer's); the rest
        // waited for the one consumer.
        if (l["cause"] == "queueing") ++queueing;
        EXPECT_TRUE(l.contains("wake_up_us"));
    }
    EXPECT_GE(logged, 1u);
    EXPECT_GE(queueing + 1, logged);
    EXPECT_LE(logged, 4u);  // a second of arrivals and a drain of two: one a second
    // The paths' segments in the summary, the stats lines and the metrics.
    EXPECT_EQ(u64(s["segments_ns"]["eventfd"]["handler"]["count"]),
              u64(s["latency_ns"]["eventfd"]["count"]));
    std::uint64_t by_stats = 0;
    for (const auto& line : evfly::test::lines(r.err))
        if (line.find("\"msg\":\"stats\"") != std::string::npos)
            by_stats += u64(json::parse(line)["outliers_queueing"]);
    EXPECT_GT(by_stats, 0u);
    const std::string metrics = evfly::test::read_file(prom);
    EXPECT_NE(metrics.find("evfly_outliers_total{cause=\"queueing\"} " +
                           std::to_string(cause(s, "queueing")) + "\n"),
              std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("evfly_segment_seconds_count{kind=\"eventfd\",segment=\"wake_up\"}"),
              std::string::npos);
}

// Without [explain] over nothing is classified, kept or logged, and the summary has no explain
// block; the segments are there all the same.
TEST(Explain, OffByDefaultButTheSegmentsStay) {
    TempDir dir;
    const std::string config = dir.write("off.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "q"
kind = "eventfd"
rate = 200
work = "10ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    const auto r = run_evflyd({"-c", config, "--run-for", "500ms", "--summary", summary}, {}, 30s);
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    EXPECT_FALSE(s.contains("explain"));
    EXPECT_EQ(r.err.find("\"msg\":\"outlier\""), std::string::npos);
    EXPECT_GT(u64(s["segments_ns"]["eventfd"]["wake_up"]["count"]), 50u);
    EXPECT_GT(u64(s["segments_ns"]["eventfd"]["wake_up"]["p99"]), 5'000'000u);
}

// A stopped process: the first fire after the stop is late by the stop's length, and its cause
// is the producer (which could not fire), not the consumers.
TEST(Explain, AStoppedProcessIsTheProducers) {
    TempDir dir;
    const std::string config = dir.write("stop.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[explain]
over = "100ms"
[[producer]]
name = "steady"
kind = "eventfd"
fd_mode = "persistent"
rate = 500
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    std::this_thread::sleep_for(300ms);
    p.signal(SIGSTOP);
    std::this_thread::sleep_for(400ms);
    p.signal(SIGCONT);
    std::this_thread::sleep_for(300ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    ASSERT_GE(u64(s["explain"]["outliers"]), 1u) << s["explain"].dump();
    EXPECT_GE(cause(s, "producer"), 1u) << s["explain"]["causes"].dump();
    // The slowest producer outlier is the first fire after the stop. (An event written just
    // before the stop can be slower still: its consumer was stopped before it woke, a wake-up
    // outlier; which of the two comes first in worst is a race with the signal.)
    std::int64_t slowest_producer = 0;
    for (const json& w : s["explain"]["worst"]) {
        if (w["cause"] == "producer") {
            EXPECT_GE(w["latency_ns"].get<std::int64_t>(),
                      w["segments_ns"]["producer"].get<std::int64_t>());
            slowest_producer =
                std::max(slowest_producer, w["segments_ns"]["producer"].get<std::int64_t>());
        }
    }
    EXPECT_GE(slowest_producer, 350'000'000) << s["explain"]["worst"].dump();
}

// Eight timers due together, 2 ms of work each, four consumers: with a batch of 64 one consumer
// takes all eight and runs them one after the other while the others sleep (batch); with a batch
// of one they are shared and none is a batch outlier.
TEST(Explain, ABatchThatKeepsOthersIdleIsTheBatch) {
    TempDir dir;
    const auto run = [&](int max_events) {
        const std::string config = dir.write(
            "batch.toml", "[daemon]\nconsumers = 4\nmax_events = " + std::to_string(max_events) +
                              "\nstats_interval = \"0s\"\n[log]\nsink = \"stderr\"\n[explain]\n"
                              "over = \"3ms\"\n[[producer]]\nname = \"eight\"\nkind = "
                              "\"timerfd\"\ntimers = 8\ninitial = \"20ms\"\ninterval = "
                              "\"20ms\"\nwork = \"2ms\"\n");
        const std::string summary = dir.path() + "/summary.json";
        const auto r = run_evflyd({"-c", config, "--run-for", "1s", "--summary", summary}, {}, 30s);
        EXPECT_EQ(r.code, 0) << r.err;
        return summary_of(summary);
    };
    const json big = run(64);
    EXPECT_GE(cause(big, "batch"), 20u) << big["explain"]["causes"].dump();
    EXPECT_GE(u64(big["segments_ns"]["timerfd"]["batch"]["p99"]), 3'000'000u);
    const json one = run(1);
    EXPECT_EQ(cause(one, "batch"), 0u) << one["explain"]["causes"].dump();
    EXPECT_LT(u64(one["segments_ns"]["timerfd"]["batch"]["max"]), 1'000'000u);
}

// A consumer parked on CPU 0 while a real-time task holds that CPU in bursts: the events the
// producer (on CPU 1) writes meanwhile wait for the consumer to run. Each is a wake-up outlier
// (a consumer was parked, and ran late), and the kernel's account names the task that ran
// instead, with most of the wake-up.
TEST(Explain, AWakeUpHeldByAnotherTaskIsNamedByTheTrace) {
    if (!can_run_realtime()) GTEST_SKIP() << "needs root and SCHED_FIFO for the competing task";
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs two CPUs";
    if (!have_tracefs()) GTEST_SKIP() << "needs root and tracefs at /sys/kernel/tracing";
    TempDir dir;
    const std::string config = dir.write("wake.toml", R"(
[daemon]
consumers = 1
cpus = "0"
stats_interval = "0s"
[log]
sink = "stderr"
[explain]
over = "2ms"
trace = true
trace_every = "100ms"
[[producer]]
name = "w"
kind = "eventfd"
rate = 200
cpus = "1"
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--run-for", "3s", "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    const Hog hog(15, 200, 2);
    const int hog_pid = hog.pid();  // chrt and taskset exec: the hog keeps the pid
    ASSERT_EQ(p.wait(30s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    const json& e = s["explain"];
    EXPECT_GE(u64(e["outliers"]), 5u) << e.dump();
    // A fire the producer itself made late (its CPU held by this shared host) is the
    // producer's; of the rest, the wake-ups are the most.
    const std::uint64_t consumer_side = u64(e["outliers"]) - cause(s, "producer");
    EXPECT_GE(cause(s, "wake_up"), 5u) << e["causes"].dump();
    EXPECT_GE(cause(s, "wake_up") * 10, consumer_side * 8) << e["causes"].dump();
    EXPECT_EQ(e["trace"]["state"], "on");
    EXPECT_GE(u64(e["trace"]["analyses"]), 1u);
    // Most traced wake-up outliers name the competing task (another may have been held by
    // something else on this shared machine), with most of the wake-up segment.
    int traced = 0;
    int named = 0;
    std::string others;
    for (const json& w : e["worst"]) {
        if (!w.contains("trace") || w["cause"] != "wake_up") continue;
        const json& t = w["trace"];
        if (!t["found_wakeup"].get<bool>()) continue;
        ++traced;
        EXPECT_EQ(t["wakee_cpu"], 0);
        EXPECT_EQ(t["waker"]["comm"].get<std::string>().rfind("producer-w", 0), 0u) << t.dump();
        if (!t["ran_instead"].empty() && t["ran_instead"][0]["comm"] == "evfly_test_hog" &&
            t["ran_instead"][0]["pid"] == hog_pid &&
            t["ran_instead"][0]["ns"].get<std::int64_t>() * 2 >=
                w["segments_ns"]["wake_up"].get<std::int64_t>()) {
            ++named;
        } else {
            others += w.dump() + "\n";
        }
    }
    EXPECT_GE(named, 1) << e.dump();
    EXPECT_GE(named * 2, traced) << others;
    std::size_t explained = 0;
    for (const auto& line : log_lines(p))
        if (line["msg"] == "outlier explained" && line["ran_instead"] == "evfly_test_hog")
            ++explained;
    EXPECT_GE(explained, 1u) << p.err();
    // evfly-plot draws the slowest traced outlier's timeline, interval by interval, and what
    // held the consumer's CPU, the longest first.
    const json* slowest = nullptr;
    for (const json& w : e["worst"])
        if (w.contains("trace") && !w["trace"]["timeline"].empty() &&
            (slowest == nullptr || w["latency_ns"] > (*slowest)["latency_ns"]))
            slowest = &w;
    ASSERT_NE(slowest, nullptr) << e.dump();
    const std::string keep = dir.path() + "/plot";
    const std::string plot = std::string(EVFLY_SOURCE_DIR) + "/src/evfly-plot " + summary + " -o " +
                             dir.path() + "/summary.png --keep " + keep + " >/dev/null";
    ASSERT_EQ(std::system(plot.c_str()), 0) << plot;
    const std::string timeline = evfly::test::read_file(keep + "/timeline");
    EXPECT_EQ(static_cast<std::size_t>(std::count(timeline.begin(), timeline.end(), '\n')),
              (*slowest)["trace"]["timeline"].size())
        << timeline;
    if (!(*slowest)["trace"]["ran_instead"].empty()) {
        const json& first = (*slowest)["trace"]["ran_instead"][0];
        const std::string held = evfly::test::read_file(keep + "/held");
        EXPECT_EQ(held.rfind("0 \"task " + first["comm"].get<std::string>() + "/" +
                                 std::to_string(first["pid"].get<int>()) + "\"",
                             0),
                  0u)
            << held;
    }
    // Its instance is gone with it.
    for (const auto& entry : std::filesystem::directory_iterator("/sys/kernel/tracing/instances"))
        EXPECT_NE(entry.path().filename().string(), "evfly-" + std::to_string(p.pid()));
}

// Tracing hygiene: a SIGKILLed evflyd leaves its instance; the next one removes it. Unprivileged,
// tracing is off with one warning and the rest works; "required" refuses to start (71), naming
// the key.
TEST(Explain, TraceInstancesAreCleanedAndRefusalsAreClear) {
    if (!have_tracefs()) GTEST_SKIP() << "needs root and tracefs at /sys/kernel/tracing";
    TempDir dir;
    const std::string traced = dir.write("t.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
[log]
sink = "stderr"
[explain]
over = "1ms"
trace = true
[[producer]]
name = "p"
kind = "eventfd"
rate = 100
)");
    std::filesystem::permissions(traced, std::filesystem::perms(0644));
    const std::string instances = "/sys/kernel/tracing/instances/";
    {
        Process killed({"-c", traced});
        ASSERT_TRUE(evfly::test::wait_logged(killed, "started")) << killed.err();
        const std::string mine = instances + "evfly-" + std::to_string(killed.pid());
        EXPECT_TRUE(std::filesystem::exists(mine));
        killed.signal(SIGKILL);
        killed.wait(10s);
        EXPECT_TRUE(std::filesystem::exists(mine));
        const auto next = run_evflyd({"-c", traced, "--run-for", "200ms"});
        EXPECT_EQ(next.code, 0) << next.err;
        EXPECT_NE(next.err.find("removed trace instances left by stopped evflyd processes"),
                  std::string::npos)
            << next.err;
        EXPECT_FALSE(std::filesystem::exists(mine));
    }
    // Nothing left after a clean stop.
    for (const auto& entry : std::filesystem::directory_iterator(instances))
        EXPECT_NE(entry.path().filename().string().rfind("evfly-", 0), 0u)
            << entry.path().filename();
    SpawnOptions nobody = evfly::test::as_nobody(dir);
    const auto denied = run_evflyd({"-c", traced, "--run-for", "200ms"}, nobody);
    EXPECT_EQ(denied.code, 0) << denied.err;
    EXPECT_EQ(evfly::test::count_lines_with(
                  denied.err, "kernel tracing unavailable; outliers are explained without it"),
              1u)
        << denied.err;
    const std::string required = dir.write("r.toml", R"(
[explain]
over = "1ms"
trace = "required"
[[producer]]
name = "p"
kind = "eventfd"
)");
    std::filesystem::permissions(required, std::filesystem::perms(0644));
    const auto refused = run_evflyd({"-c", required, "--run-for", "200ms"}, nobody);
    EXPECT_EQ(refused.code, 71) << refused.err;
    EXPECT_NE(refused.err.find("explain.trace"), std::string::npos) << refused.err;
}
