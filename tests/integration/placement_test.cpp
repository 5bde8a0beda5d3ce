// Placement and scheduling, verified from the kernel's own view: /proc/PID/task/TID/status
// (Cpus_allowed_list), sched_getscheduler/sched_getparam, getpriority, /proc/TID/timerslack_ns and
// /proc/PID/status (VmLck), at start and after a reload that changes them in place.
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::count_logged;
using evfly::test::expect_clean;
using evfly::test::Process;
using evfly::test::SpawnOptions;
using evfly::test::summary_of;
using evfly::test::TempDir;
using evfly::test::wait_logged;
using nlohmann::json;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

std::string status_field(const std::string& path, const std::string& key) {
    for (const auto& line : evfly::test::lines(evfly::test::read_file(path)))
        if (line.rfind(key + ":", 0) == 0)
            return line.substr(line.find_first_not_of(" \t", key.size() + 1));
    return {};
}

struct Seen {
    std::string cpus;
    int policy = -1;
    int nice = 0;
    std::string slack;
};

Seen seen(pid_t pid, const std::string& tid) {
    Seen s;
    s.cpus = status_field("/proc/" + std::to_string(pid) + "/task/" + tid + "/status",
                          "Cpus_allowed_list");
    s.policy = ::sched_getscheduler(std::stoi(tid));
    errno = 0;
    s.nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(std::stoi(tid)));
    s.slack = evfly::test::read_file("/proc/" + tid + "/timerslack_ns");
    while (!s.slack.empty() && s.slack.back() == '\n') s.slack.pop_back();
    return s;
}

std::string config_of(const std::string& consumers, const std::string& producer) {
    return "[daemon]\nconsumers = 2\nstats_interval = \"0s\"\n" + consumers +
           "\n[log]\nsink = \"stderr\"\n[[producer]]\nname = \"p\"\nkind = \"eventfd\"\nrate = "
           "200\n" +
           producer + "\n";
}

}  // namespace

TEST(Placement, AppliedAtStartAndChangedInPlaceByAReload) {
    const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    const std::string other = cpus > 1 ? "1" : "0";
    TempDir dir;
    const std::string config = dir.write(
        "evfly.toml",
        config_of("cpus = \"0\"\npolicy = \"batch\"\nnice = 5\ntimer_slack = \"50us\"\nmlockall = "
                  "true",
                  "cpus = \"" + other + "\"\npolicy = \"idle\""));
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    const auto consumers = evfly::test::thread_ids(p.pid(), "consumer-");
    const auto producers = evfly::test::thread_ids(p.pid(), "producer-p");
    ASSERT_EQ(consumers.size(), 2u);
    ASSERT_EQ(producers.size(), 1u);
    for (const auto& tid : consumers) {
        const Seen s = seen(p.pid(), tid);
        EXPECT_EQ(s.cpus, "0");
        EXPECT_EQ(s.policy, SCHED_BATCH);
        EXPECT_EQ(s.nice, 5);
        EXPECT_EQ(s.slack, "50000");
    }
    EXPECT_EQ(seen(p.pid(), producers[0]).cpus, other);
    EXPECT_EQ(seen(p.pid(), producers[0]).policy, SCHED_IDLE);
    // mlockall: the process's memory is locked (the sanitizers make mlockall a no-op).
    const std::string locked =
        status_field("/proc/" + std::to_string(p.pid()) + "/status", "VmLck");
    if (!kSanitized) {
        EXPECT_GT(std::stol(locked), 0) << locked;
        // Locked memory is resident: with small thread stacks (not RLIMIT_STACK's 8 MiB each,
        // all faulted in as each thread starts) the daemon stays small.
        const std::string rss =
            status_field("/proc/" + std::to_string(p.pid()) + "/status", "VmRSS");
        EXPECT_LT(std::stol(rss), 32 * 1024) << rss;
    }

    // A reload moves them: the same threads, placed anew.
    dir.write("next.toml",
              config_of("cpus = \"" + other + "\"\nnice = 3", "cpus = \"0\"\npolicy = \"batch\""));
    std::filesystem::rename(dir.path() + "/next.toml", config);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded")) << p.err();
    EXPECT_EQ(evfly::test::thread_ids(p.pid(), "consumer-"), consumers);
    EXPECT_EQ(evfly::test::thread_ids(p.pid(), "producer-p"), producers);
    for (const auto& tid : consumers) {
        const Seen s = seen(p.pid(), tid);
        EXPECT_EQ(s.cpus, other);
        EXPECT_EQ(s.policy, SCHED_OTHER);  // policy unset again: evflyd's own
        EXPECT_EQ(s.nice, 3);
    }
    EXPECT_EQ(seen(p.pid(), producers[0]).cpus, "0");
    EXPECT_EQ(seen(p.pid(), producers[0]).policy, SCHED_BATCH);
    EXPECT_EQ(std::stol(status_field("/proc/" + std::to_string(p.pid()) + "/status", "VmLck")), 0);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    // The summary echoes what was applied, and each thread as the kernel reported it.
    EXPECT_EQ(s["placement"]["consumers"]["cpus"], other);
    EXPECT_EQ(s["placement"]["consumers"]["nice"], 3);
    EXPECT_EQ(s["placement"]["producers"]["p"]["policy"], "batch");
    int consumer_threads = 0;
    for (const auto& t : s["placement"]["threads"]) {
        if (t["name"].get<std::string>().rfind("consumer-", 0) != 0) continue;
        ++consumer_threads;
        EXPECT_EQ(t["cpus_allowed"], other);
        EXPECT_EQ(t["nice"], 3);
        EXPECT_EQ(t["policy"], "other");
    }
    EXPECT_EQ(consumer_threads, 2);
}

// A policy the process may not use: exit 71 at start naming the key and the reason; at a reload,
// refused with every thread as it was. Run as nobody from a copy (root may use any policy).
TEST(Placement, APolicyTheProcessMayNotUseIsAClearError) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a copy as nobody";
    TempDir dir;
    const SpawnOptions spawn = evfly::test::as_nobody(dir);
    const std::string fifo = config_of("policy = \"fifo\"\npriority = 10", "");
    const std::string denied = dir.write("fifo.toml", fifo);
    std::filesystem::permissions(denied, std::filesystem::perms(0644));
    const auto r = evfly::test::run_evflyd({"-c", denied}, spawn, 10s);
    EXPECT_EQ(r.code, 71) << r.err;
    EXPECT_NE(r.err.find("daemon.priority"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("Operation not permitted"), std::string::npos) << r.err;

    const std::string config = dir.write("evfly.toml", config_of("nice = 2", ""));
    std::filesystem::permissions(config, std::filesystem::perms(0644));
    Process p({"-c", config}, spawn);
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    const auto consumers = evfly::test::thread_ids(p.pid(), "consumer-");
    dir.write("next.toml", fifo);
    std::filesystem::permissions(dir.path() + "/next.toml", std::filesystem::perms(0644));
    std::filesystem::rename(dir.path() + "/next.toml", config);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "reload failed")) << p.err();
    EXPECT_EQ(count_logged(p, "reload could not place its threads; nothing changed"), 1u);
    for (const auto& tid : consumers) {
        EXPECT_EQ(seen(p.pid(), tid).policy, SCHED_OTHER);
        EXPECT_EQ(seen(p.pid(), tid).nice, 2);
    }
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(20s), 0) << p.err();
}

// A reload's placement is all or nothing, run as nobody: one that moves the consumers to one
// CPU and makes them real-time fails at the policy after the CPUs are set, and every consumer
// keeps its CPUs; one that adds a real-time producer starts its thread, which cannot place
// itself, and is refused, with that thread gone.
TEST(Placement, AReloadThatCannotPlaceEveryThreadChangesNothing) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a copy as nobody";
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs two CPUs to see a change";
    TempDir dir;
    const SpawnOptions spawn = evfly::test::as_nobody(dir);
    const auto install = [&](const std::string& text) {
        const std::string next = dir.write("next.toml", text);
        std::filesystem::permissions(next, std::filesystem::perms(0644));
        std::filesystem::rename(next, dir.path() + "/evfly.toml");
    };
    install(config_of("", ""));
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", dir.path() + "/evfly.toml", "--summary", summary}, spawn);
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    const auto consumers = evfly::test::thread_ids(p.pid(), "consumer-");
    ASSERT_EQ(consumers.size(), 2u);
    std::vector<std::string> cpus_before;
    for (const auto& tid : consumers) cpus_before.push_back(seen(p.pid(), tid).cpus);

    install(config_of("cpus = \"1\"\npolicy = \"fifo\"\npriority = 10", ""));
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "reload failed", 1)) << p.err();
    for (std::size_t i = 0; i < consumers.size(); ++i) {
        EXPECT_EQ(seen(p.pid(), consumers[i]).cpus, cpus_before[i]) << consumers[i];
        EXPECT_EQ(seen(p.pid(), consumers[i]).policy, SCHED_OTHER);
    }

    install(config_of("", "") +
            "[[producer]]\nname = \"rt\"\nkind = \"eventfd\"\nrate = 100\npolicy = "
            "\"fifo\"\npriority = 10\n");
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "reload failed", 2)) << p.err();
    EXPECT_EQ(count_logged(p, "reload could not place its threads; nothing changed"), 2u)
        << p.err();
    EXPECT_EQ(count_logged(p, "config reloaded"), 0u) << p.err();
    // The producer's thread stopped with the failed reload.
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
        gone = evfly::test::thread_count(p.pid(), "producer-rt") == 0;
        if (!gone) std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(gone);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    EXPECT_EQ(s["reloads"]["failed"], 2);
    EXPECT_EQ(s["reloads"]["ok"], 0);
    expect_clean(s);
}

namespace {

// The CPU wake-up latency the kernel honours now: the smallest request in force (PM QoS).
std::int32_t cpu_dma_latency() {
    std::int32_t us = -1;
    if (FILE* f = std::fopen("/dev/cpu_dma_latency", "rb")) {
        if (std::fread(&us, sizeof us, 1, f) != 1) us = -1;
        std::fclose(f);
    }
    return us;
}

}  // namespace

// daemon.cpu_dma_latency: the kernel's own view (/dev/cpu_dma_latency) holds the request while
// evflyd runs, takes a reload's new value, and drops it when the key goes or evflyd stops; a
// process that may not ask exits 71 naming the key.
TEST(Placement, CpuWakeLatencyIsAskedWhileRunningAndChangedByAReload) {
    const std::int32_t before = cpu_dma_latency();
    if (before < 0 || ::geteuid() != 0) GTEST_SKIP() << "needs root and /dev/cpu_dma_latency";
    if (before <= 20) GTEST_SKIP() << "another process already asks for " << before << " us";
    TempDir dir;
    const std::string config = dir.write("evfly.toml", config_of("cpu_dma_latency = \"0us\"", ""));
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    EXPECT_EQ(cpu_dma_latency(), 0);

    dir.write("next.toml", config_of("cpu_dma_latency = \"20us\"", ""));
    std::filesystem::rename(dir.path() + "/next.toml", config);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded")) << p.err();
    EXPECT_EQ(cpu_dma_latency(), 20);

    dir.write("next.toml", config_of("", ""));
    std::filesystem::rename(dir.path() + "/next.toml", config);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded", 2)) << p.err();
    EXPECT_EQ(cpu_dma_latency(), before);

    dir.write("next.toml", config_of("cpu_dma_latency = \"5us\"", ""));
    std::filesystem::rename(dir.path() + "/next.toml", config);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded", 3)) << p.err();
    EXPECT_EQ(cpu_dma_latency(), 5);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    EXPECT_EQ(cpu_dma_latency(), before);
    EXPECT_EQ(summary_of(summary)["placement"]["cpu_dma_latency_us"], 5);

    // Not allowed to ask (nobody cannot open the device): a clear error at the start.
    const SpawnOptions spawn = evfly::test::as_nobody(dir);
    const std::string denied = dir.write("denied.toml", config_of("cpu_dma_latency = \"0us\"", ""));
    std::filesystem::permissions(denied, std::filesystem::perms(0644));
    const auto r = evfly::test::run_evflyd({"-c", denied}, spawn, 10s);
    EXPECT_EQ(r.code, 71) << r.err;
    EXPECT_NE(r.err.find("daemon.cpu_dma_latency"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("/dev/cpu_dma_latency"), std::string::npos) << r.err;
    EXPECT_EQ(cpu_dma_latency(), before);
}

// A reload whose log file cannot be opened fails after memory locking and the CPU wake-up
// latency request were applied: both are undone with it.
TEST(Placement, AReloadWhoseLogCannotBeOpenedUndoesTheProcessSettings) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for mlockall";
    const std::int32_t before = cpu_dma_latency();
    const bool pm_qos = before > 20;  // the device is there and nobody else asks for less
    TempDir dir;
    const std::string config = dir.write("evfly.toml", config_of("", ""));
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    const std::string plain = dir.write("plain", "a file, not a directory\n");
    dir.write("next.toml",
              "[daemon]\nconsumers = 2\nstats_interval = \"0s\"\nmlockall = true\n" +
                  std::string(pm_qos ? "cpu_dma_latency = \"10us\"\n" : "") +
                  "[log]\nsink = \"file\"\nfile = \"" + plain +
                  "/evfly.log\"\n[[producer]]\nname = \"p\"\nkind = \"eventfd\"\nrate = 200\n");
    std::filesystem::rename(dir.path() + "/next.toml", config);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "reload failed")) << p.err();
    EXPECT_EQ(count_logged(p, "config reloaded"), 0u) << p.err();
    EXPECT_EQ(std::stol(status_field("/proc/" + std::to_string(p.pid()) + "/status", "VmLck")), 0);
    if (pm_qos) {
        EXPECT_EQ(cpu_dma_latency(), before);
    }
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["reloads"]["failed"], 1);
    EXPECT_EQ(s["placement"]["mlockall"], false);
}

// A real-time consumer that spins past the event gap never blocks, and the kernel's real-time
// throttling then stops it for tens of ms each second: evflyd says so at the start and after a
// reload that brings the two together, and not otherwise.
TEST(Placement, SpinningRealTimeConsumersAreWarnedAbout) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for SCHED_FIFO";
    const std::string warning =
        "spinning real-time consumers may be throttled by the kernel; expect stalls of tens of "
        "ms once a second if events keep them from blocking";
    TempDir dir;
    const std::string config = dir.write("evfly.toml", config_of("spin = \"1ms\"", ""));
    Process p({"-c", config});
    ASSERT_TRUE(wait_logged(p, "started")) << p.err();
    dir.write("next.toml", config_of("spin = \"1ms\"\npolicy = \"fifo\"\npriority = 5", ""));
    std::filesystem::rename(dir.path() + "/next.toml", config);
    EXPECT_EQ(count_logged(p, warning), 0u);
    p.signal(SIGHUP);
    ASSERT_TRUE(wait_logged(p, "config reloaded")) << p.err();
    EXPECT_TRUE(wait_logged(p, warning)) << p.err();
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();

    const std::string fifo =
        dir.write("fifo.toml", config_of("spin = \"1ms\"\npolicy = \"fifo\"\npriority = 5", ""));
    Process q({"-c", fifo, "--run-for", "300ms"});
    ASSERT_EQ(q.wait(20s), 0) << q.err();
    EXPECT_EQ(count_logged(q, warning), 1u) << q.err();
}
