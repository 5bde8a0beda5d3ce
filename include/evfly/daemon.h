// The supervisor: runs an Engine under signal control and reports to systemd.
//
// run_daemon() runs on the main thread, after block_all_signals(). It waits in its own small
// epoll on a signalfd (SIGTERM/SIGINT/SIGQUIT stop, SIGHUP reloads the config, SIGUSR1 reopens
// the log file) and on timerfds for the stats line, --run-for and the systemd watchdog; with none
// of those due it does not wake at all.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/duration.h"
#include "evfly/host.h"
#include "evfly/notify.h"
#include "evfly/report.h"
#include "evfly/slo.h"
#include "evfly/stationarity.h"
#include "evfly/sweep.h"
#include "evfly/thread_state.h"

namespace evfly {

struct RunOptions {
    std::optional<Nanos> run_for;  // stop as on SIGTERM after this long
    // Reads the config again for a reload (SIGHUP); throws ConfigError when it is invalid.
    std::function<Config()> reload;
    // Where ready, reloading, stopping, status and the watchdog go; systemd's when null.
    std::shared_ptr<Notifier> notifier;
    // --sweep: stages of the swept parameter, then stop (the config holds the first value).
    std::optional<SweepPlan> sweep;
};

struct RunResult {
    Report report;
    double elapsed_s = 0;
    // From the engine's start (the producers' schedules' epoch) to the stop's beginning: the
    // time the schedules ran, before any drain.
    double active_s = 0;
    std::int64_t start_ns = 0;  // CLOCK_MONOTONIC ns at the start, for times in the summary
    bool drained = false;       // every value written was read before shutdown_timeout
    std::uint64_t reloads_ok = 0;
    std::uint64_t reloads_failed = 0;
    HostInfo host;
    SloResult slo;
    Stationarity stationarity;  // of the time series
    Nanos warmup{0};            // daemon.warmup in force at the stop
    Nanos stall_after{0};       // daemon.stall_after in force at the stop
    // One entry per stats interval (the last StatsReporter::kMaxIntervals), and how many older
    // ones were let go.
    std::vector<IntervalStats> series;
    std::uint64_t series_dropped = 0;
    // The placement in force at the stop, and every thread as the kernel reported it just
    // before the stop.
    Config::Daemon daemon;
    std::vector<ProducerConfig> producers;
    std::vector<ThreadState> threads;
    std::optional<SweepResult> sweep;
};

// Throws std::system_error when a resource it needs at start-up cannot be had.
RunResult run_daemon(const Config& config, const RunOptions& options);

}  // namespace evfly
