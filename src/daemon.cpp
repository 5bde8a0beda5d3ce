#include "evfly/daemon.h"

#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>

#include "evfly/engine.h"
#include "evfly/epoll.h"
#include "evfly/log.h"
#include "evfly/metrics.h"

namespace evfly {
namespace {

enum Source : std::uint64_t { kSignals, kStats, kRunFor, kWatchdog };

using Clock = std::chrono::steady_clock;

Fd make_signalfd() {
    sigset_t set;
    ::sigemptyset(&set);
    for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1}) ::sigaddset(&set, sig);
    Fd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) throw_errno("signalfd");
    return fd;
}

// A monotonic timerfd firing after `first`, then every `period` (0: once).
Fd make_timer(Nanos first, Nanos period) {
    Fd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!fd) throw_errno("timerfd_create");
    const auto to_ts = [](Nanos d) {
        return timespec{static_cast<time_t>(d.count() / 1'000'000'000),
                        static_cast<long>(d.count() % 1'000'000'000)};
    };
    itimerspec spec{};
    spec.it_value = to_ts(first.count() > 0 ? first : Nanos(1));
    spec.it_interval = to_ts(period);
    if (::timerfd_settime(fd.get(), 0, &spec, nullptr) != 0) throw_errno("timerfd_settime");
    return fd;
}

void drain_timer(const Fd& fd) {
    std::uint64_t expirations = 0;
    (void)!::read(fd.get(), &expirations, sizeof expirations);
}

// SIGUSR1: logrotate has moved the log file; write to a fresh one at the configured path.
void reopen_log() {
    try {
        if (log::reopen()) log::emit(log::Level::info, "log file reopened");
    } catch (const std::exception& e) {
        // The daemon goes on; lines are counted as sink errors until a later SIGUSR1 succeeds.
        std::fprintf(stderr, "evflyd: cannot reopen the log file: %s\n", e.what());
    }
}

// The Prometheus textfile, if configured. A failure (full disk, missing directory) is logged
// once until a write succeeds again; the daemon carries on.
class MetricsFile {
  public:
    explicit MetricsFile(std::string path) : path_(std::move(path)) {}
    void write(const Report& report) {
        if (path_.empty()) return;
        MetricsExtras extras;
        extras.log_dropped = log::dropped();
        try {
            write_textfile(path_, prometheus_text(report, extras));
            if (failing_)
                log::emit(log::Level::info, "metrics file written again", {{"path", path_}});
            failing_ = false;
        } catch (const std::exception& e) {
            if (!failing_)
                log::emit(log::Level::warn, "cannot write the metrics file",
                          {{"path", path_}, {"error", e.what()}});
            failing_ = true;
        }
    }

  private:
    std::string path_;
    bool failing_ = false;
};

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

class StatsReporter {
  public:
    StatsReporter(const Engine& engine, Clock::time_point start)
        : engine_(engine), last_time_(start) {}

    // Logs one stats line covering the time since the previous one; returns a one-line status.
    std::string report() {
        const auto now = Clock::now();
        auto current = std::make_unique<Report>();
        engine_.report_into(*current);
        const double dt = std::chrono::duration<double>(now - last_time_).count();
        const Totals total = current->totals();
        const Totals before = last_->totals();
        std::uint64_t eventfd_values = 0;
        std::uint64_t eventfd_values_before = 0;
        for (std::size_t i = 0; i < current->producers.size(); ++i) {
            if (current->producers[i].kind != ProducerKind::eventfd) continue;
            eventfd_values += current->producers[i].value_read;
            if (i < last_->producers.size())
                eventfd_values_before += last_->producers[i].value_read;
        }
        const auto rate = [dt](std::uint64_t now_count, std::uint64_t then_count) {
            return dt > 0 ? static_cast<double>(now_count - then_count) / dt : 0.0;
        };
        const Percentiles efd =
            current->eventfd_latency.since(last_->eventfd_latency).percentiles();
        const Percentiles tfd =
            current->timerfd_latency.since(last_->timerfd_latency).percentiles();
        const double events_per_s = rate(current->events_dispatched, last_->events_dispatched);
        const double values_per_s = rate(eventfd_values, eventfd_values_before);
        const std::int64_t in_flight = total.lost;
        const std::uint32_t consumers = current->consumers;
        log::emit(log::Level::info, "stats",
                  {{"interval_s", dt},
                   {"events_per_s", events_per_s},
                   {"values_per_s", values_per_s},
                   {"expirations_per_s", rate(total.expirations, before.expirations)},
                   {"wakeups_per_s", rate(current->epoll_wakeups, last_->epoll_wakeups)},
                   {"eventfd_count", efd.count},
                   {"eventfd_p50_us", us(efd.p50)},
                   {"eventfd_p90_us", us(efd.p90)},
                   {"eventfd_p99_us", us(efd.p99)},
                   {"eventfd_p999_us", us(efd.p999)},
                   {"eventfd_max_us", us(efd.max)},
                   {"timerfd_count", tfd.count},
                   {"timerfd_p50_us", us(tfd.p50)},
                   {"timerfd_p99_us", us(tfd.p99)},
                   {"timerfd_max_us", us(tfd.max)},
                   {"overruns", total.overruns - before.overruns},
                   {"in_flight", in_flight},
                   {"consumers", current->consumers},
                   {"log_dropped", log::dropped()}});
        last_ = std::move(current);
        last_time_ = now;
        char status[200];
        std::snprintf(status, sizeof status,
                      "%.0f events/s, %.0f values/s, eventfd p99 %.1f us, timerfd p99 %.1f us, "
                      "%u consumers, %lld in flight",
                      events_per_s, values_per_s, us(efd.p99), us(tfd.p99), consumers,
                      static_cast<long long>(in_flight));
        return status;
    }

    // The report taken by the last report().
    [[nodiscard]] const Report& last() const noexcept { return *last_; }

  private:
    const Engine& engine_;
    std::unique_ptr<Report> last_ = std::make_unique<Report>();
    Clock::time_point last_time_;
};

}  // namespace

RunResult run_daemon(const Config& config, const RunOptions& options) {
    const auto start = Clock::now();
    Epoll loop;
    Fd signals = make_signalfd();
    (void)loop.add(signals.get(), EPOLLIN, kSignals);
    Fd stats_timer;
    if (config.daemon.stats_interval.count() > 0) {
        stats_timer = make_timer(config.daemon.stats_interval, config.daemon.stats_interval);
        (void)loop.add(stats_timer.get(), EPOLLIN, kStats);
    }
    Fd run_timer;
    if (options.run_for) {
        run_timer = make_timer(*options.run_for, Nanos(0));
        (void)loop.add(run_timer.get(), EPOLLIN, kRunFor);
    }
    Fd watchdog_timer;
    std::uint64_t watchdog_usec = 0;
    Nanos watchdog_limit(0);
    bool withholding = false;
    if (::sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0) {
        // Ping at half the interval, as sd_watchdog_enabled(3) recommends.
        const Nanos half(static_cast<std::int64_t>(watchdog_usec) * 500);
        watchdog_limit = 2 * half;
        watchdog_timer = make_timer(half, half);
        (void)loop.add(watchdog_timer.get(), EPOLLIN, kWatchdog);
    }

    Engine engine(config);
    engine.start();
    std::uint32_t producer_threads = 0;
    for (const auto& p : config.producers) producer_threads += p.threads;
    log::emit(log::Level::info, "started",
              {{"version", EVFLY_VERSION},
               {"config", config.source},
               {"consumers", config.daemon.consumers},
               {"producer_threads", producer_threads},
               {"pid", static_cast<std::int64_t>(::getpid())}});
    ::sd_notifyf(0, "READY=1\nSTATUS=running: %u consumers, %u producer threads",
                 config.daemon.consumers, producer_threads);

    StatsReporter stats(engine, start);
    MetricsFile metrics(config.metrics.textfile);
    std::string reason;
    std::array<epoll_event, 4> events{};
    while (reason.empty()) {
        const int n = loop.wait(events, -1);
        if (n < 0) {
            if (n == -EINTR) continue;
            throw std::system_error(-n, std::generic_category(), "epoll_wait (supervisor)");
        }
        for (int i = 0; i < n && reason.empty(); ++i) {
            switch (events[static_cast<std::size_t>(i)].data.u64) {
                case kSignals: {
                    signalfd_siginfo info{};
                    while (::read(signals.get(), &info, sizeof info) ==
                           static_cast<ssize_t>(sizeof info)) {
                        const auto sig = static_cast<int>(info.ssi_signo);
                        if (sig == SIGUSR1) {
                            reopen_log();
                        } else if (sig == SIGHUP) {
                            log::emit(log::Level::warn,
                                      "SIGHUP received; this version does not reload its config, "
                                      "restart to apply changes");
                        } else {
                            reason = ::sigabbrev_np(sig) ? std::string("SIG") + ::sigabbrev_np(sig)
                                                         : "signal";
                            break;
                        }
                    }
                    break;
                }
                case kStats: {
                    drain_timer(stats_timer);
                    const std::string status = stats.report();
                    ::sd_notifyf(0, "STATUS=%s", status.c_str());
                    metrics.write(stats.last());
                    break;
                }
                case kRunFor:
                    reason = "run-for elapsed";
                    break;
                case kWatchdog: {
                    drain_timer(watchdog_timer);
                    // Ping only while the pool makes progress: a consumer stuck on one event for
                    // a whole watchdog interval withholds it, and systemd restarts the service.
                    const auto stuck = engine.stuck_consumers(watchdog_limit);
                    if (stuck.empty()) {
                        if (withholding) {
                            withholding = false;
                            log::emit(log::Level::warn,
                                      "consumers make progress again; watchdog pings resumed");
                        }
                        ::sd_notify(0, "WATCHDOG=1");
                    } else if (!withholding) {
                        withholding = true;
                        log::emit(
                            log::Level::err,
                            "consumer stuck on one event; withholding the watchdog ping",
                            {{"consumer", stuck.front()},
                             {"stuck_consumers", stuck.size()},
                             {"limit_s", std::chrono::duration<double>(watchdog_limit).count()}});
                    }
                    break;
                }
                default:
                    break;
            }
        }
    }

    ::sd_notify(0, "STOPPING=1");
    log::emit(log::Level::info, "stopping", {{"reason", reason}});
    RunResult result;
    result.drained = engine.stop(Clock::now() + config.daemon.shutdown_timeout);
    engine.report_into(result.report);
    metrics.write(result.report);
    result.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
    const Totals totals = result.report.totals();
    log::emit(log::Level::info, "stopped",
              {{"reason", reason},
               {"elapsed_s", result.elapsed_s},
               {"fired", totals.fired},
               {"value_written", totals.value_written},
               {"value_read", totals.value_read},
               {"lost", totals.lost},
               {"events_dispatched", result.report.events_dispatched},
               {"epoll_wakeups", result.report.epoll_wakeups}});
    return result;
}

}  // namespace evfly
