// In-process tests of the engine's accounting: exact counts, nothing left open.
#include "evfly/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "evfly/fd.h"

using namespace std::chrono_literals;
using evfly::Config;
using evfly::Engine;
using evfly::Report;

namespace {

Config config_of(const std::string& toml) { return evfly::parse_config(toml, "engine_test.toml"); }

// Runs an engine for `duration`; `window_ms`, if given, gets the time from before start() to the
// stop() call, the span in which paced producers fire.
Report run_for(const Config& config, std::chrono::milliseconds duration, bool* drained = nullptr,
               double* window_ms = nullptr) {
    const auto begin = std::chrono::steady_clock::now();
    Engine engine(config);
    engine.start();
    std::this_thread::sleep_for(duration);
    if (window_ms != nullptr)
        *window_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin)
                .count();
    const bool ok = engine.stop(std::chrono::steady_clock::now() + 10s);
    if (drained != nullptr) *drained = ok;
    Report report;
    engine.report_into(report);
    return report;
}

}  // namespace

TEST(Engine, PersistentFlatOutLosesNothing) {
    const int fds = evfly::count_open_fds();
    bool drained = false;
    const Report r = run_for(config_of(R"(
[daemon]
consumers = 2
[[producer]]
name = "p"
kind = "eventfd"
threads = 2
rate = 0
fd_mode = "persistent"
)"),
                             300ms, &drained);
    EXPECT_TRUE(drained);
    const auto t = r.totals();
    EXPECT_GT(t.value_written, 1000u);
    EXPECT_EQ(t.value_written, t.value_read);
    EXPECT_EQ(t.lost, 0);
    EXPECT_EQ(t.fired, t.value_written);
    // Counts coalesce: fewer reads than values, and latency is sampled per read.
    EXPECT_LE(r.events_dispatched, t.value_read + r.stale_events);
    EXPECT_GT(r.eventfd_latency.count(), 0u);
    EXPECT_EQ(r.consumer_errors, 0u);
    EXPECT_EQ(evfly::count_open_fds(), fds);
}

TEST(Engine, PerEventFlatOutConsumesEveryFdExactlyOnce) {
    const int fds = evfly::count_open_fds();
    const Report r = run_for(config_of(R"(
[daemon]
consumers = 3
max_events = 8
[[producer]]
name = "e"
kind = "eventfd"
threads = 2
rate = 0
max_in_flight = 16
)"),
                             300ms);
    const auto t = r.totals();
    EXPECT_GT(t.fired, 100u);
    EXPECT_EQ(t.lost, 0);
    // One event per fd, one value per event, never a second consumer for the same fd.
    EXPECT_EQ(r.events_dispatched, t.fired);
    EXPECT_EQ(t.value_read, t.fired);
    EXPECT_EQ(r.eventfd_latency.count(), t.fired);
    EXPECT_EQ(r.stale_events, 0u);
    EXPECT_EQ(r.consumer_errors, 0u);
    EXPECT_EQ(evfly::count_open_fds(), fds);
}

TEST(Engine, PacedProducerKeepsItsRate) {
    const Config config = config_of(R"(
[daemon]
consumers = 1
[[producer]]
name = "paced"
kind = "eventfd"
threads = 1
rate = 200
)");
    // Absolute deadlines from the engine's start: fires at 0, 5, 10, ... ms after it, whenever
    // the thread got going (a late start catches up), until stop() is called.
    double window_ms = 0;
    const Report r = run_for(config, 500ms, nullptr, &window_ms);
    const double due = window_ms / 5.0 + 1;
    // Allow for a loaded machine, but not for drift in one direction.
    EXPECT_GE(static_cast<double>(r.totals().fired), 0.9 * due - 1) << window_ms << " ms";
    EXPECT_LE(static_cast<double>(r.totals().fired), due + 2) << window_ms << " ms";
    EXPECT_EQ(r.totals().lost, 0);
}

TEST(Engine, TimersCountExpirationsAndOverruns) {
    const int fds = evfly::count_open_fds();
    const Report r = run_for(config_of(R"(
[daemon]
consumers = 2
[[producer]]
name = "t"
kind = "timerfd"
threads = 2
timers = 3
initial = "50ms"
interval = "100ms"
[[producer]]
name = "once"
kind = "timerfd"
initial = "10ms"
interval = "0s"
)"),
                             375ms);
    ASSERT_EQ(r.producers.size(), 2u);
    // Ticks at 50, 150, 250, 350 ms: 4 per timer, 6 timers.
    EXPECT_EQ(r.producers[0].expirations, 24u);
    EXPECT_EQ(r.producers[0].value_read, 24u);
    EXPECT_EQ(r.producers[1].expirations, 1u);
    EXPECT_EQ(r.totals().lost, 0);
    EXPECT_EQ(r.timerfd_latency.count(), 25u - r.producers[0].overruns);
    EXPECT_EQ(evfly::count_open_fds(), fds);
}

TEST(Engine, TimerOverrunsShowAsLateness) {
    // One consumer busy for 30 ms per tick of a 5 ms timer: reads must report several
    // expirations at once, and the lateness must reflect the oldest one.
    const Report r = run_for(config_of(R"(
[daemon]
consumers = 1
[[producer]]
name = "t"
kind = "timerfd"
initial = "5ms"
interval = "5ms"
work = "30ms"
)"),
                             300ms);
    EXPECT_GT(r.producers[0].overruns, 10u);
    EXPECT_GE(r.timerfd_latency.percentiles().p50, 20'000'000u);  // ~25 ms behind
}

TEST(Engine, MoreConsumersThanCoresWithMixedSources) {
    const int fds = evfly::count_open_fds();
    const Report r = run_for(config_of(R"(
[daemon]
consumers = 8
max_events = 4
[[producer]]
name = "burst"
kind = "eventfd"
threads = 2
rate = 0
max_in_flight = 64
[[producer]]
name = "steady"
kind = "eventfd"
fd_mode = "persistent"
rate = 0
[[producer]]
name = "tick"
kind = "timerfd"
timers = 4
initial = "1ms"
interval = "1ms"
)"),
                             400ms);
    const auto t = r.totals();
    EXPECT_EQ(t.lost, 0);
    EXPECT_GT(r.producers[0].fired, 0u);
    EXPECT_GT(r.producers[1].fired, 0u);
    EXPECT_GT(r.producers[2].expirations, 100u);
    EXPECT_EQ(r.consumer_errors, 0u);
    EXPECT_EQ(evfly::count_open_fds(), fds);
}

TEST(Engine, IdleEngineNeverWakesAConsumer) {
    Engine engine(config_of(R"(
[daemon]
consumers = 4
[[producer]]
name = "later"
kind = "timerfd"
initial = "1h"
)"));
    engine.start();
    std::this_thread::sleep_for(300ms);
    Report r;
    engine.report_into(r);
    EXPECT_EQ(r.epoll_wakeups, 0u);
    EXPECT_TRUE(engine.stop(std::chrono::steady_clock::now() + 5s));
    engine.report_into(r);
    EXPECT_EQ(r.epoll_wakeups, 0u);  // the stop itself is not counted as work
}

TEST(Engine, DestructorStopsARunningEngine) {
    const int fds = evfly::count_open_fds();
    {
        Engine engine(config_of("[[producer]]\nname = \"e\"\nkind = \"eventfd\"\nrate = 0\n"));
        engine.start();
        std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(evfly::count_open_fds(), fds);
}
