// Injected faults: what the kernel and operators throw at a running evflyd. Each test starts the
// real binary and checks that it loses nothing and ends as documented.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::expect_clean;
using evfly::test::Process;
using evfly::test::producer;
using evfly::test::SpawnOptions;
using evfly::test::summary_of;
using evfly::test::TempDir;
using nlohmann::json;

namespace {

std::size_t occurrences(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

// A per-event producer whose consumer needs ~1.5 s to drain what is in flight at a stop.
const char* kSlowDrain = R"(
[daemon]
consumers = 1
stats_interval = "0s"
shutdown_timeout = "20s"
[log]
sink = "stderr"
[[producer]]
name = "slow"
kind = "eventfd"
rate = 0
max_in_flight = 300
work = "5ms"
)";

// Waits until evflyd has logged "started" (slow under sanitizers), then lets the load build up.
void wait_until_running(const Process& p) {
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    std::this_thread::sleep_for(200ms);
}

}  // namespace

TEST(Fault, EventfdCounterSaturationIsRetriedNeverLost) {
    // Each write adds 2^62: the fourth unread one would pass the counter's maximum, so the
    // non-blocking write fails with EAGAIN and must be retried. (The value sums wrap at 2^64;
    // lost is their difference, exact modulo 2^64.)
    TempDir dir;
    const std::string config = dir.write("full.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "full"
kind = "eventfd"
threads = 2
rate = 0
fd_mode = "persistent"
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env.push_back("EVFLY_TEST_EVENTFD_VALUE=4611686018427387904");
    const auto r =
        evfly::test::run_evflyd({"-c", config, "--run-for", "1s", "--summary", summary}, spawn);
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_GT(producer(s, "full")["write_retries"].get<std::uint64_t>(), 0u);
    EXPECT_GT(producer(s, "full")["fired"].get<std::uint64_t>(), 100u);
}

TEST(Fault, SigstopUnderOneMillisecondTimersShowsAsOverrunsAndLateness) {
    TempDir dir;
    const std::string config = dir.write("timers.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "ms"
kind = "timerfd"
timers = 4
initial = "1ms"
interval = "1ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    wait_until_running(p);  // every timer armed before it is stopped
    p.signal(SIGSTOP);
    std::this_thread::sleep_for(300ms);
    p.signal(SIGCONT);
    std::this_thread::sleep_for(300ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    const json ms = producer(s, "ms");
    // 300 ms stopped: each timer's next read reports ~300 expirations at once.
    EXPECT_GE(ms["overruns"].get<std::uint64_t>(), 4u * 200);
    EXPECT_GE(s["latency_ns"]["timerfd"]["max"].get<std::uint64_t>(), 250'000'000u);
    // The ticks of the stopped 300 ms are all there, on top of those before and after (fewer
    // under sanitizers, which slow the start).
    EXPECT_GE(ms["expirations"].get<std::uint64_t>(), 4u * 400);
    EXPECT_EQ(s["totals"]["consumer_errors"], 0);
}

TEST(Fault, FdLimitsFromSixToTwoFiftySixFailCleanlyOrBackOffAndRecover) {
    TempDir dir;
    const std::string config = dir.write("burst.toml", R"(
[daemon]
consumers = 2
stats_interval = "100ms"
[log]
sink = "stderr"
[[producer]]
name = "burst"
kind = "eventfd"
threads = 2
rate = 0
max_in_flight = 1024
[[producer]]
name = "tick"
kind = "timerfd"
timers = 2
initial = "1ms"
interval = "5ms"
)");
    int refused = 0;
    int ran = 0;
    for (const unsigned long nofile : {6UL, 10UL, 16UL, 24UL, 32UL, 48UL, 64UL, 128UL, 256UL}) {
        SCOPED_TRACE("ulimit -n " + std::to_string(nofile));
        const std::string summary = dir.path() + "/summary-" + std::to_string(nofile) + ".json";
        SpawnOptions spawn;
        spawn.nofile = nofile;
        const auto begin = std::chrono::steady_clock::now();
        const auto r = evfly::test::run_evflyd(
            {"-c", config, "--run-for", "700ms", "--summary", summary}, spawn, 20s);
        if (r.code == 71) {
            // Not even the daemon's own fds: one clear line, nothing started, at once.
            ++refused;
            EXPECT_NE(r.err.find("evflyd: cannot start: "), std::string::npos) << r.err;
            EXPECT_NE(r.err.find("Too many open files"), std::string::npos) << r.err;
            EXPECT_FALSE(std::filesystem::exists(summary));
            EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
            // Refusing is for limits below what the daemon itself needs: none after one ran.
            EXPECT_EQ(ran, 0);
            continue;
        }
        ASSERT_EQ(r.code, 0) << r.err;
        ++ran;
        const json s = summary_of(summary);
        expect_clean(s);
        // 2 threads x 1024 in flight cannot fit: the producer backed off, and says so.
        EXPECT_GT(s["totals"]["fd_exhaustion"].get<std::uint64_t>(), 0u);
        EXPECT_NE(r.err.find("out of file descriptors, backing off"), std::string::npos);
        if (nofile >= 16) {  // below that, evflyd's own fds leave the producers next to none
            EXPECT_GT(producer(s, "burst")["value_read"].get<std::uint64_t>(), 0u);
            EXPECT_GT(producer(s, "tick")["expirations"].get<std::uint64_t>(), 0u);
            EXPECT_NE(r.err.find("\"fd_exhaustion\":"), std::string::npos);
        }
    }
    EXPECT_GE(refused, 1);  // 6 fds cannot hold evflyd's own
    EXPECT_GE(ran, 7);      // 16 and more can
}

// Out of fds, a producer waits for one of its fds to come back (or a bounded back-off): it uses
// next to no CPU while it waits, and the episode is logged once, not once per attempt.
TEST(Fault, OutOfFdsAProducerWaitsQuietlyInsteadOfSpinning) {
    TempDir dir;
    const std::string config = dir.write("tight.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "flood"
kind = "eventfd"
rate = 0
work = "2ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.nofile = 64;
    Process p({"-c", config, "--run-for", "3500ms", "--summary", summary}, spawn);
    ASSERT_TRUE(evfly::test::wait_logged(p, "out of file descriptors, backing off")) << p.err();
    std::this_thread::sleep_for(300ms);
    const double before = evfly::test::thread_cpu_seconds(p.pid(), "producer-flood");
    std::this_thread::sleep_for(2s);
    const double used = evfly::test::thread_cpu_seconds(p.pid(), "producer-flood") - before;
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    // ~500 fds a second come back (one per 2 ms of work); taking each costs microseconds. A
    // spinning producer burns the whole 2 s.
    EXPECT_LT(used, 0.3) << "the producer used " << used << " s of CPU in 2 s while out of fds";
    EXPECT_LE(evfly::test::count_logged(p, "out of file descriptors, backing off"), 2u) << p.err();
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_LE(s["totals"]["fd_exhaustion"].get<std::uint64_t>(), 2u);
    EXPECT_GT(producer(s, "flood")["fired"].get<std::uint64_t>(), 500u);
}

// fd creation failing with something other than EMFILE (EPERM from a seccomp filter, ENODEV):
// every producer still counts as started, so the daemon comes up and serves its signals; the
// error is logged once per episode, not once per attempt.
TEST(Fault, FdCreationDeniedStillStartsAndStops) {
    TempDir dir;
    const std::string config = dir.write("denied.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "steady"
kind = "eventfd"
fd_mode = "persistent"
rate = 100
[[producer]]
name = "single"
kind = "eventfd"
rate = 100
[[producer]]
name = "tick"
kind = "timerfd"
timers = 2
initial = "1ms"
interval = "1ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env = {"EVFLY_TEST_FD_ERRNO=1"};  // EPERM
    Process p({"-c", config, "--summary", summary}, spawn);
    ASSERT_TRUE(evfly::test::wait_logged(p, "started", 1, 5s)) << p.err();
    std::this_thread::sleep_for(1500ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(10s), 0) << p.err();
    // One line per producer thread and episode: 3 threads, one episode each (1.5 s of failures
    // less than a second apart).
    EXPECT_EQ(evfly::test::count_logged(p, "cannot create fd; retrying with back-off"), 3u)
        << p.err();
    const json s = summary_of(summary);
    EXPECT_EQ(s["totals"]["lost"], 0);
    EXPECT_EQ(s["totals"]["fired"], 0);
}

// Registering a per-event fd fails (ENOSPC, as when max_user_watches is reached): every
// failure is counted, the producer backs off and retries, and the episode is logged once, not
// once per attempt (200 a second); nothing is fired, nothing lost.
TEST(Fault, FailedRegistrationsAreLoggedOncePerEpisode) {
    TempDir dir;
    const std::string config = dir.write("add.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "single"
kind = "eventfd"
rate = 100
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env = {"EVFLY_TEST_EPOLL_ADD_ERRNO=28"};  // ENOSPC
    const auto r =
        evfly::test::run_evflyd({"-c", config, "--run-for", "1500ms", "--summary", summary}, spawn);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(evfly::test::count_lines_with(r.err, "epoll_ctl ADD failed"), 1u) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["totals"]["fired"], 0);
    EXPECT_GE(producer(s, "single")["errors"].get<int>(), 50);
}

// Arming a timer fails: the timer is closed and left out, said once for the thread; it is never
// counted as an event in flight, so the canary sees no stall, and no fd is left open.
TEST(Fault, ATimerThatCannotBeArmedIsLeftOutNotStalled) {
    TempDir dir;
    const std::string config = dir.write("settime.toml", R"(
[daemon]
consumers = 1
stats_interval = "0s"
stall_after = "100ms"
[log]
sink = "stderr"
[[producer]]
name = "tick"
kind = "timerfd"
timers = 3
initial = "1ms"
interval = "1ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env = {"EVFLY_TEST_SETTIME_ERRNO=22"};  // EINVAL
    const auto r =
        evfly::test::run_evflyd({"-c", config, "--run-for", "800ms", "--summary", summary}, spawn);
    ASSERT_EQ(r.code, 0) << r.err;
    std::size_t logged = 0;
    for (const auto& line : evfly::test::lines(r.err))
        if (line.find("timers could not be armed; they are left out") != std::string::npos) {
            ++logged;
            EXPECT_NE(line.find("\"timers\":3"), std::string::npos) << line;
            EXPECT_NE(line.find("timerfd_settime"), std::string::npos) << line;
        }
    EXPECT_EQ(logged, 1u) << r.err;
    EXPECT_EQ(r.err.find("event in flight too long"), std::string::npos) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["totals"]["stalls"], 0);
    EXPECT_EQ(s["totals"]["expirations"], 0);
    EXPECT_EQ(producer(s, "tick")["errors"], 3);
}

// Every consumer's epoll_wait fails: each consumer logs the episode once (not every 10 ms),
// backs off, and still stops when asked; the stop reads what no consumer could.
TEST(Fault, FailingEpollWaitIsLoggedOncePerConsumerAndStillStops) {
    TempDir dir;
    const std::string config = dir.write("wait.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
stall_after = "0s"
[log]
sink = "stderr"
[[producer]]
name = "steady"
kind = "eventfd"
fd_mode = "persistent"
rate = 100
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env = {"EVFLY_TEST_EPOLL_WAIT_ERRNO=9"};  // EBADF
    const auto r = evfly::test::run_evflyd(
        {"-c", config, "--run-for", "1500ms", "--summary", summary}, spawn, 20s);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(evfly::test::count_lines_with(r.err, "epoll_wait failed; retrying"), 2u) << r.err;
    const json s = summary_of(summary);
    EXPECT_EQ(s["totals"]["lost"], 0);
    EXPECT_EQ(s["drained"], true);
    EXPECT_LE(s["resources"]["fds_at_exit"].get<int>(), s["resources"]["fds_at_start"].get<int>());
    EXPECT_EQ(s["totals"]["value_read"], 0);
    EXPECT_GT(s["totals"]["drained_at_stop"].get<int>(), 100);
    EXPECT_GT(s["totals"]["consumer_errors"].get<int>(), 100);
}

// The kernel's limit on epoll watches per user (fs.epoll.max_user_watches), lowered for the
// test's user (nobody) so far that not even the supervisor's own timers fit: the daemon says so
// and exits 71 at once (it used to start deaf to its signals and could not be stopped).
TEST(Fault, TooFewEpollWatchesToStartIsAClearError) {
    const char* const kLimit = "/proc/sys/fs/epoll/max_user_watches";
    if (::geteuid() != 0 || ::access(kLimit, W_OK) != 0)
        GTEST_SKIP() << "needs root and a writable " << kLimit;
    const std::string before = evfly::test::read_file(kLimit);
    struct Restore {
        const char* path;
        std::string value;
        ~Restore() {
            if (FILE* f = std::fopen(path, "w")) {
                std::fputs(value.c_str(), f);
                std::fclose(f);
            }
        }
    } restore{kLimit, before};
    TempDir dir;
    const std::string config = dir.write("few.toml",
                                         "[[producer]]\nname = \"p\"\nkind = "
                                         "\"eventfd\"\nrate = 100\n");
    std::filesystem::permissions(config, std::filesystem::perms(0644));
    const SpawnOptions spawn = evfly::test::as_nobody(dir);
    {
        FILE* f = std::fopen(kLimit, "w");
        ASSERT_NE(f, nullptr);
        std::fputs("3\n", f);
        std::fclose(f);
    }
    const auto r = evfly::test::run_evflyd({"-c", config, "--run-for", "1s"}, spawn, 10s);
    EXPECT_EQ(r.code, 71) << r.err;
    EXPECT_NE(r.err.find("epoll_ctl ADD"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
}

TEST(Fault, SecondSigtermDuringTheDrainStaysGraceful) {
    TempDir dir;
    const std::string config = dir.write("slow.toml", kSlowDrain);
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    wait_until_running(p);
    const auto begin = std::chrono::steady_clock::now();
    p.signal(SIGTERM);
    std::this_thread::sleep_for(100ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(30s), 0) << p.err();
    EXPECT_GT(std::chrono::steady_clock::now() - begin, 300ms);  // it did drain
    const json s = summary_of(summary);
    expect_clean(s);
    EXPECT_EQ(s["drained"], true);
}

TEST(Fault, SecondSigintDuringTheDrainEndsAtOnce) {
    TempDir dir;
    const std::string config = dir.write("slow.toml", kSlowDrain);
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    wait_until_running(p);
    p.signal(SIGINT);
    std::this_thread::sleep_for(100ms);
    const auto second = std::chrono::steady_clock::now();
    p.signal(SIGINT);
    EXPECT_EQ(p.wait(10s), 128 + SIGINT) << p.err();
    EXPECT_LT(std::chrono::steady_clock::now() - second, 200ms);
    EXPECT_FALSE(std::filesystem::exists(summary));
}

TEST(Fault, FullLogFilesystemIsCountedReportedOnceAndBlocksNothing) {
    if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
    TempDir dir;
    const std::string mnt = dir.path() + "/tiny";
    std::filesystem::create_directory(mnt);
    ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k"), 0) << std::strerror(errno);
    struct Unmount {
        std::string path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{mnt};
    const std::string config = dir.write("full-disk.toml", R"(
[daemon]
consumers = 2
stats_interval = "50ms"
[log]
sink = "file"
file = ")" + mnt + R"(/evfly.log"
level = "debug"
[[producer]]
name = "chatty"
kind = "eventfd"
rate = 2000
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    std::this_thread::sleep_for(1500ms);  // 64 KiB of debug lines fill in well under a second
    const auto stop = std::chrono::steady_clock::now();
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    EXPECT_LT(std::chrono::steady_clock::now() - stop, 2s);
    const json s = summary_of(summary);
    EXPECT_EQ(s["totals"]["lost"], 0);
    EXPECT_GT(producer(s, "chatty")["value_read"].get<std::uint64_t>(), 2000u);  // kept flowing
    EXPECT_GT(s["totals"]["log_sink_errors"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(occurrences(p.err(), "log sink failed"), 1u) << p.err();
}

TEST(Fault, LogFileDeletedUnderTheDaemonThenReopened) {
    TempDir dir;
    const std::string log_file = dir.path() + "/evfly.log";
    const std::string config = dir.write("deleted.toml", R"(
[daemon]
stats_interval = "20ms"
[log]
sink = "file"
file = ")" + log_file + R"("
[[producer]]
name = "paced"
kind = "eventfd"
rate = 500
)");
    const std::string summary = dir.path() + "/summary.json";
    Process p({"-c", config, "--summary", summary});
    std::this_thread::sleep_for(300ms);
    std::filesystem::remove(log_file);
    std::this_thread::sleep_for(300ms);
    EXPECT_FALSE(std::filesystem::exists(log_file));  // lines go to the unlinked file meanwhile
    p.signal(SIGUSR1);
    std::this_thread::sleep_for(300ms);
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    const std::string text = evfly::test::read_file(log_file);
    EXPECT_NE(text.find("\"log file reopened\""), std::string::npos) << text;
    EXPECT_GE(occurrences(text, "\"msg\":\"stats\""), 5u);
    const json s = summary_of(summary);
    EXPECT_EQ(s["totals"]["lost"], 0);
    EXPECT_EQ(s["totals"]["log_sink_errors"], 0);
    EXPECT_GT(producer(s, "paced")["value_read"].get<std::uint64_t>(), 150u);  // kept flowing
}

TEST(Fault, ThrowingHandlerIsCaughtCountedAndTheConsumerServesOn) {
    TempDir dir;
    const std::string config = dir.write("throwing.toml", R"(
[daemon]
consumers = 2
stats_interval = "0s"
[log]
sink = "stderr"
[[producer]]
name = "burst"
kind = "eventfd"
rate = 0
max_in_flight = 64
[[producer]]
name = "flood"
kind = "eventfd"
rate = 0
fd_mode = "persistent"
[[producer]]
name = "tick"
kind = "timerfd"
timers = 2
initial = "1ms"
interval = "1ms"
)");
    const std::string summary = dir.path() + "/summary.json";
    SpawnOptions spawn;
    spawn.env.push_back("EVFLY_TEST_THROW_EVERY=7");
    const auto r =
        evfly::test::run_evflyd({"-c", config, "--run-for", "1s", "--summary", summary}, spawn);
    ASSERT_EQ(r.code, 0) << r.err;
    const json s = summary_of(summary);
    expect_clean(s);  // every fd closed or re-armed despite the throws: nothing lost or leaked
    const auto handled = s["totals"]["events_dispatched"].get<std::uint64_t>();
    const auto thrown = s["totals"]["handler_errors"].get<std::uint64_t>();
    EXPECT_GT(thrown, 100u);
    EXPECT_GE(thrown, handled / 7 - 2);  // one in seven, per consumer
    EXPECT_GT(producer(s, "tick")["expirations"].get<std::uint64_t>(), 500u);
    EXPECT_NE(r.err.find("event handler failed; the consumer carries on"), std::string::npos);
    // Rate-limited: at most about one line a second per consumer.
    EXPECT_LE(occurrences(r.err, "event handler failed"), 6u);
}
