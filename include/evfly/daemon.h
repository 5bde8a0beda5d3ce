// The supervisor: runs an Engine under signal control and reports to systemd.
//
// run_daemon() runs on the main thread, after block_all_signals(). It waits in its own small
// epoll on a signalfd (SIGTERM/SIGINT/SIGQUIT stop, SIGHUP reloads the config, SIGUSR1 reopens
// the log file) and on timerfds for the stats line, --run-for and the systemd watchdog; with none
// of those due it does not wake at all.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/duration.h"
#include "evfly/host.h"
#include "evfly/report.h"
#include "evfly/slo.h"

namespace evfly {

struct RunOptions {
    std::optional<Nanos> run_for;  // stop as on SIGTERM after this long
    // Reads the config again for a reload (SIGHUP); throws ConfigError when it is invalid.
    std::function<Config()> reload;
};

// One thread as the kernel reports it (/proc/self/task, sched_getscheduler): where it runs and
// how it is scheduled.
struct ThreadState {
    std::string name;
    int tid = 0;
    int cpu = -1;              // the CPU it last ran on (/proc/.../stat field 39)
    std::string cpus_allowed;  // Cpus_allowed_list
    std::string policy;        // other, batch, idle, fifo, rr
    int priority = 0;
    int nice = 0;
    std::uint64_t timer_slack_ns = 0;
};

struct RunResult {
    Report report;
    double elapsed_s = 0;
    bool drained = false;  // every value written was read before shutdown_timeout
    std::uint64_t reloads_ok = 0;
    std::uint64_t reloads_failed = 0;
    HostInfo host;
    SloResult slo;
    Nanos warmup{0};       // daemon.warmup in force at the stop
    Nanos stall_after{0};  // daemon.stall_after in force at the stop
    // One entry per stats interval (the last StatsReporter::kMaxIntervals), and how many older
    // ones were let go.
    std::vector<IntervalStats> series;
    std::uint64_t series_dropped = 0;
    // The placement in force at the stop, and every thread as the kernel reported it just
    // before the stop.
    Config::Daemon daemon;
    std::vector<ProducerConfig> producers;
    std::vector<ThreadState> threads;
};

// Throws std::system_error when a resource it needs at start-up cannot be had.
RunResult run_daemon(const Config& config, const RunOptions& options);

// Blocks every signal in the calling thread; threads started later inherit the mask.
void block_all_signals();
// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the limit now in force.
std::uint64_t raise_fd_limit();
// Gives every thread created from now on a small stack (sanitized builds excepted); called
// before the first thread starts.
void set_thread_stack_size();

}  // namespace evfly
