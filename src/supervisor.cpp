// The supervisor: the main thread's loop over signals and timers, the watchdog policy, and the
// final result. A reload's transaction is in reload.cpp; what it tells systemd goes through a
// Notifier (notify.h).
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>

#include "evfly/daemon.h"
#include "evfly/engine.h"
#include "evfly/epoll.h"
#include "evfly/log.h"
#include "evfly/metrics.h"
#include "evfly/notify.h"
#include "metrics_http.h"
#include "placement.h"
#include "reload.h"
#include "stats_reporter.h"
#include "sweep_runner.h"

namespace evfly {
namespace {

enum Source : std::uint64_t {
    kSignals,
    kStats,
    kRunFor,
    kWatchdog,
    kStall,
    kWarmup,
    kCollect,
    kThresholds,
    kSweep,
    kScrape
};

using Clock = std::chrono::steady_clock;

constexpr Nanos kFirstStats = std::chrono::seconds(1);
// While a reload's leftovers drain (a removed producer, consumers leaving), they are collected
// this often, whatever the stats interval; then the supervisor sleeps again.
constexpr Nanos kCollectEvery = std::chrono::milliseconds(100);
// With [explain] over a percentile, the thresholds follow the latency measured this often.
constexpr Nanos kThresholdsEvery = std::chrono::seconds(1);
// What a stop takes beyond the drain, told to systemd with STOPPING=1.
constexpr Nanos kStopMargin = std::chrono::seconds(10);
// A sweep stage's warm-up when daemon.warmup is not set.
constexpr Nanos kSweepWarmup = std::chrono::seconds(1);

Fd make_signalfd() {
    sigset_t set;
    ::sigemptyset(&set);
    for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1}) ::sigaddset(&set, sig);
    Fd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) throw_errno("signalfd");
    return fd;
}

// Arms a monotonic timerfd to fire after `first`, then every `period` (0: once); a zero
// `first` disarms it.
void set_timer(const Fd& fd, Nanos first, Nanos period) {
    itimerspec spec{};
    spec.it_value = to_timespec(first);
    spec.it_interval = to_timespec(period);
    if (::timerfd_settime(fd.get(), 0, &spec, nullptr) != 0) throw_errno("timerfd_settime");
}

Fd make_timer() {
    Fd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!fd) throw_errno("timerfd_create");
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

std::uint32_t producer_threads(const Config& config) {
    std::uint32_t n = 0;
    for (const auto& p : config.producers) n += p.threads;
    return n;
}

// The supervisor thread's state: its own epoll over the signalfd and its timers, the engine,
// and the config in force.
class Supervisor {
  public:
    Supervisor(const Config& config, const RunOptions& options)
        : options_(options),
          notifier_(options.notifier ? options.notifier : systemd_notifier()),
          config_(config),
          start_(Clock::now()),
          signals_(make_signalfd()),
          stats_timer_(make_timer()),
          stall_timer_(make_timer()),
          warmup_timer_(make_timer()),
          collect_timer_(make_timer()),
          thresholds_timer_(make_timer()),
          engine_(config, TestHooks::from_environment()),
          stats_(engine_, start_),
          metrics_(config.metrics.textfile) {
        watch(signals_, kSignals);
        watch(stats_timer_, kStats);
        // The first stats line comes after at most a second, so whoever starts evflyd sees it
        // working at once; then one every stats_interval.
        set_timer(stats_timer_, std::min(config.daemon.stats_interval, kFirstStats),
                  config.daemon.stats_interval);
        watch(stall_timer_, kStall);
        watch(warmup_timer_, kWarmup);
        watch(collect_timer_, kCollect);
        watch(thresholds_timer_, kThresholds);
        watch_fd(broker_.fd(), kScrape);
        arm_thresholds();
        if (options.run_for) {
            run_timer_ = make_timer();
            watch(run_timer_, kRunFor);
        }
        if (options.sweep) {
            sweep_.emplace(*options.sweep,
                           config.daemon.warmup.count() != 0 ? config.daemon.warmup : kSweepWarmup);
            sweep_timer_ = make_timer();
            watch(sweep_timer_, kSweep);
        }
        if (const auto interval = notifier_->watchdog_interval(); interval.count() > 0) {
            // Ping at half the interval, as sd_watchdog_enabled(3) recommends.
            const Nanos half = std::chrono::duration_cast<Nanos>(interval) / 2;
            watchdog_limit_ = 2 * half;
            watchdog_timer_ = make_timer();
            set_timer(watchdog_timer_, half, half);
            watch(watchdog_timer_, kWatchdog);
        }
    }

    RunResult run() {
        host_ = host_info(config_);
        if (config_.daemon.mlockall) {
            if (const std::string why = detail::apply_mlockall(true); !why.empty())
                throw std::system_error(EPERM, std::generic_category(), why);
        }
        if (const std::string why = wake_latency_.set(config_.daemon.cpu_dma_latency); !why.empty())
            throw std::system_error(EPERM, std::generic_category(), why);
        endpoint_ = endpoint_at(config_.metrics.listen);
        engine_.start();
        engine_started_ = Clock::now();
        // --run-for counts from the engine's epoch, the instant the producers' schedules start
        // from, so a run's due fires do not depend on how long starting took.
        if (options_.run_for)
            set_timer(run_timer_, std::max(*options_.run_for, Nanos(1)), Nanos(0));
        if (sweep_) {
            sweep_->begin_stage(Clock::now());
            set_timer(sweep_timer_, SweepRunner::kTick, SweepRunner::kTick);
        }
        begin_warmup();
        check_stalls();
        write_metrics_now();  // before "started": what reads the log finds the file there
        log::emit(log::Level::info, "started",
                  {{"version", EVFLY_VERSION},
                   {"config", config_.source},
                   {"config_hash", host_.config_hash},
                   {"consumers", config_.daemon.consumers},
                   {"producer_threads", producer_threads(config_)},
                   {"pid", static_cast<std::int64_t>(::getpid())},
                   {"kernel", host_.kernel},
                   {"cpu_model", host_.cpu_model},
                   {"online_cpus", host_.online_cpus},
                   {"clocksource", host_.clocksource},
                   {"virtualized", host_.virtualized},
                   {"hypervisor", host_.hypervisor},
                   {"consumers_placement", detail::describe(config_.daemon.placement)},
                   {"mlockall", config_.daemon.mlockall},
                   {"cpu_dma_latency_us", config_.daemon.cpu_dma_latency
                                              ? config_.daemon.cpu_dma_latency->count() / 1000
                                              : -1}});
        warn_if_spinning_realtime();
        notifier_->ready(running_status(false));
        std::string reason;
        while (reason.empty()) reason = wait_once();
        return finish(reason);
    }

  private:
    // Adds one of the supervisor's fds to its loop. A loop that cannot watch its signalfd or a
    // timer could never be stopped or report: that is an error at start (exit 71).
    void watch(const Fd& fd, Source source) { watch_fd(fd.get(), source); }
    void watch_fd(int fd, Source source) {
        if (const int err = loop_.add(fd, EPOLLIN, source); err != 0)
            throw std::system_error(err, std::generic_category(), "epoll_ctl ADD (supervisor)");
    }

    // metrics.listen: the endpoint at `listen`, or none; throws std::system_error naming the key
    // and the address when it cannot listen there.
    std::unique_ptr<MetricsServer> endpoint_at(const std::string& listen) {
        if (listen.empty()) return nullptr;
        std::string why;
        const auto address = parse_listen(listen, &why);
        if (!address) throw std::runtime_error("metrics.listen " + why);
        return std::make_unique<MetricsServer>(*address, broker_);
    }

    // A scrape: the metrics as they are now.
    void on_scrape() {
        broker_.serve([this] {
            Report report;
            engine_.report_into(report);
            return prometheus_text(report, extras());
        });
    }

    // The textfile as things are now: at the start, so that it is there once evflyd is ready
    // (not one stats_interval later: node_exporter would find a dangling link under the
    // textfile drop-in), and when a reload moves it.
    void write_metrics_now() {
        Report report;
        engine_.report_into(report);
        metrics_.write(report, extras());
    }

    // Handles what one epoll_wait returns; a non-empty result is the reason to stop.
    std::string wait_once() {
        std::array<epoll_event, 4> events{};
        const int n = loop_.wait(events, -1);
        if (n < 0) {
            if (n == -EINTR) return {};
            throw std::system_error(-n, std::generic_category(), "epoll_wait (supervisor)");
        }
        for (int i = 0; i < n; ++i) {
            switch (events[static_cast<std::size_t>(i)].data.u64) {
                case kSignals:
                    if (std::string reason = on_signals(); !reason.empty()) return reason;
                    break;
                case kStats:
                    drain_timer(stats_timer_);
                    on_stats();
                    break;
                case kRunFor:
                    return "run-for elapsed";
                case kWatchdog:
                    drain_timer(watchdog_timer_);
                    on_watchdog();
                    break;
                case kStall:
                    drain_timer(stall_timer_);
                    check_stalls();
                    break;
                case kWarmup:
                    drain_timer(warmup_timer_);
                    end_warmup();
                    break;
                case kCollect:
                    drain_timer(collect_timer_);
                    collect();
                    break;
                case kThresholds:
                    drain_timer(thresholds_timer_);
                    engine_.update_outlier_thresholds();
                    break;
                case kScrape:
                    on_scrape();
                    break;
                case kSweep:
                    drain_timer(sweep_timer_);
                    if (std::string reason = on_sweep(); !reason.empty()) return reason;
                    break;
                default:
                    break;
            }
        }
        return {};
    }

    std::string on_signals() {
        signalfd_siginfo info{};
        while (::read(signals_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            const auto sig = static_cast<int>(info.ssi_signo);
            if (sig == SIGUSR1) {
                reopen_log();
            } else if (sig == SIGHUP) {
                reload();
            } else {
                return ::sigabbrev_np(sig) ? std::string("SIG") + ::sigabbrev_np(sig) : "signal";
            }
        }
        return {};
    }

    // With [explain] over a percentile, its thresholds follow the latency once a second.
    void arm_thresholds() {
        const Nanos every = config_.explain.over_quantile ? kThresholdsEvery : Nanos(0);
        set_timer(thresholds_timer_, every, every);
    }

    // Collects what reloads left draining, and comes back for the rest.
    void collect() {
        if (engine_.collect()) set_timer(collect_timer_, kCollectEvery, Nanos(0));
    }

    void on_stats() {
        collect();
        notifier_->status(stats_.report());
        metrics_.write(stats_.last(), extras());
    }

    // The stall canary looks every stall_after while anything fires (a stall is seen within
    // 2 x stall_after), and not at all while the engine is idle.
    void check_stalls() {
        if (config_.daemon.stall_after.count() == 0) {
            set_timer(stall_timer_, Nanos(0), Nanos(0));
            return;
        }
        set_timer(stall_timer_, engine_.check_stalls(config_.daemon.stall_after), Nanos(0));
    }

    // Latency recorded for daemon.warmup from now on is left out of the histograms.
    void begin_warmup() {
        if (config_.daemon.warmup.count() == 0) return;
        engine_.begin_warmup();
        warming_ = true;
        set_timer(warmup_timer_, config_.daemon.warmup, Nanos(0));
    }

    void end_warmup() {
        if (!warming_) return;
        warming_ = false;
        engine_.end_warmup();
        Report report;
        engine_.report_into(report);
        log::emit(log::Level::info, "warm-up over; latency counts from now",
                  {{"warmup_s", std::chrono::duration<double>(config_.daemon.warmup).count()},
                   {"eventfd_excluded", report.warmup_excluded_eventfd},
                   {"timerfd_excluded", report.warmup_excluded_timerfd}});
    }

    void on_watchdog() {
        // Ping only while the pool makes progress: a consumer stuck on one event for a whole
        // watchdog interval withholds it, and systemd restarts the service.
        const auto stuck = engine_.stuck_consumers(watchdog_limit_);
        if (stuck.empty()) {
            if (withholding_) {
                withholding_ = false;
                log::emit(log::Level::warn,
                          "consumers make progress again; watchdog pings resumed");
            }
            notifier_->watchdog();
        } else if (!withholding_) {
            withholding_ = true;
            log::emit(log::Level::err, "consumer stuck on one event; withholding the watchdog ping",
                      {{"consumer", stuck.front()},
                       {"stuck_consumers", stuck.size()},
                       {"limit_s", std::chrono::duration<double>(watchdog_limit_).count()}});
        }
    }

    // A sweep's tick: on to the next stage through a reload, or the sweep is over.
    std::string on_sweep() {
        Report report;
        engine_.report_into(report);
        const SweepRunner::Action action = sweep_->tick(Clock::now(), report, config_.producers);
        if (action == SweepRunner::Action::wait) return {};
        const SweepStage& stage = sweep_->last();
        log::emit(log::Level::info, "sweep stage done",
                  {{sweep_->plan().parameter, stage.value},
                   {"seconds", stage.seconds},
                   {"values_per_s", stage.values_per_s},
                   {"samples", stage.latency.count()},
                   {"p50_ns", stage.latency.quantile(0.5)},
                   {"p99_ns", stage.latency.quantile(0.99)},
                   {"utilisation", stage.utilisation},
                   {"skipped", stage.skipped},
                   {"stopped_early", stage.stopped_early},
                   {"meets", stage.meets},
                   {"misses", stage.misses}});
        if (action == SweepRunner::Action::done) return "sweep done";
        Config next = config_;
        impose(sweep_->plan(), sweep_->value(), next);
        try {
            apply(next);
            ++reloads_ok_;
        } catch (const std::exception& e) {
            ++reloads_failed_;
            const std::string why = "the reload to " + sweep_->plan().parameter + " = " +
                                    std::to_string(sweep_->value()) + " failed: " + e.what();
            log::emit(log::Level::err, "sweep stopped", {{"error", why}});
            sweep_->failed(why);
            return "sweep stopped";
        }
        sweep_->begin_stage(Clock::now());
        return {};
    }

    // SIGHUP: read the config again and apply what changed, or keep the running one untouched.
    void reload() {
        notifier_->reloading();
        log::emit(log::Level::info, "reloading the config");
        bool ok = false;
        try {
            if (!options_.reload) throw std::runtime_error("no config source to read again");
            Config next = options_.reload();
            // A sweep's stage keeps its value whatever the file says.
            if (sweep_) impose(sweep_->plan(), sweep_->value(), next);
            apply(next);
            ok = true;
        } catch (const ConfigError& e) {
            for (const auto& issue : e.issues()) {
                log::emit(log::Level::err, "config error",
                          {{"file", issue.file},
                           {"line", issue.line},
                           {"key", issue.key},
                           {"error", issue.message}});
            }
            log::emit(log::Level::err, "reload failed; the running config is kept",
                      {{"errors", e.issues().size()}});
        } catch (const std::exception& e) {
            log::emit(log::Level::err, "reload failed", {{"error", e.what()}});
        }
        ++(ok ? reloads_ok_ : reloads_failed_);
        notifier_->ready(running_status(!ok));
    }

    std::string running_status(bool last_reload_failed) const {
        return "running: " + std::to_string(config_.daemon.consumers) + " consumers, " +
               std::to_string(producer_threads(config_)) + " producer threads" +
               (last_reload_failed ? " (last reload failed)" : "");
    }

    // A real-time consumer that spins never blocks while events keep coming, and the kernel's
    // real-time throttling (sched_rt_runtime_us) then stops it for the rest of each period:
    // measured here, 49 ms of timer lateness every second.
    void warn_if_spinning_realtime() const {
        const auto& policy = config_.daemon.placement.policy;
        if (config_.daemon.spin.count() == 0 || !policy ||
            (*policy != SchedPolicy::fifo && *policy != SchedPolicy::rr))
            return;
        log::emit(log::Level::warn,
                  "spinning real-time consumers may be throttled by the kernel; expect stalls of "
                  "tens of ms once a second if events keep them from blocking",
                  {{"spin_us", static_cast<double>(config_.daemon.spin.count()) / 1e3},
                   {"policy", to_string(*policy)}});
    }

    // Applies a valid config: the process-wide settings, the log and the engine all or nothing
    // (reload.cpp), then what is the supervisor's own, which cannot fail.
    void apply(const Config& next) {
        ReloadChanges changes;
        // A new endpoint listens before anything else changes: an address it cannot have refuses
        // the reload with nothing changed, and one that the rest refuses is let go again.
        std::unique_ptr<MetricsServer> endpoint;
        const bool endpoint_moves = next.metrics.listen != config_.metrics.listen;
        if (endpoint_moves) endpoint = endpoint_at(next.metrics.listen);
        apply_reload(next, ReloadTargets{config_, engine_, wake_latency_}, changes);
        if (endpoint_moves) {
            on_scrape();  // answer what waits on the old one before it stops
            endpoint_ = std::move(endpoint);
            config_.metrics.listen = next.metrics.listen;
            changes.note("metrics.listen");
        }
        if (next.daemon.stall_after != config_.daemon.stall_after) {
            config_.daemon.stall_after = next.daemon.stall_after;
            changes.note("daemon.stall_after");
        }
        if (next.daemon.warmup != config_.daemon.warmup) {
            config_.daemon.warmup = next.daemon.warmup;
            changes.note("daemon.warmup");
        }
        // New producers warm up as the first ones did.
        if (changes.has("producers")) begin_warmup();
        if (next.slo != config_.slo) {
            config_.slo = next.slo;
            changes.note("slo");
        }
        check_stalls();
        if (next.daemon.stats_interval != config_.daemon.stats_interval) {
            set_timer(stats_timer_, next.daemon.stats_interval, next.daemon.stats_interval);
            config_.daemon.stats_interval = next.daemon.stats_interval;
            changes.note("daemon.stats_interval");
        }
        if (changes.has("explain")) arm_thresholds();
        if (next.metrics.textfile != config_.metrics.textfile) {
            metrics_.set_path(next.metrics.textfile);
            config_.metrics.textfile = next.metrics.textfile;
            changes.note("metrics.textfile");
            write_metrics_now();
        }
        config_.source = next.source;
        host_.config_hash = config_hash(config_);
        collect();
        if (changes.keys.empty()) {
            log::emit(log::Level::info, "config unchanged; nothing to do");
        } else {
            log::emit(log::Level::info, "config reloaded",
                      {{"config", config_.source},
                       {"config_hash", host_.config_hash},
                       {"changed", changes.joined()},
                       {"consumers", config_.daemon.consumers},
                       {"producer_threads", producer_threads(config_)}});
            if (changes.has("daemon.spin") || changes.has("daemon.placement"))
                warn_if_spinning_realtime();
        }
    }

    MetricsExtras extras() const {
        MetricsExtras e;
        e.reloads_ok = reloads_ok_;
        e.reloads_failed = reloads_failed_;
        e.start_time_s = start_time_s_;
        return e;
    }

    RunResult finish(const std::string& reason) {
        // The drain takes up to shutdown_timeout; joining the threads, the summary and the last
        // metrics get kStopMargin more.
        notifier_->stopping(std::chrono::duration_cast<std::chrono::microseconds>(
            config_.daemon.shutdown_timeout + kStopMargin));
        log::emit(log::Level::info, "stopping", {{"reason", reason}});
        // Scrapes from now on get 503 at once; the endpoint stops before the drain.
        broker_.close();
        endpoint_.reset();
        // During the drain a second SIGTERM changes nothing (it stays blocked, unread), but a
        // second SIGINT, an operator's second Ctrl-C, ends the process at once: SIGINT is
        // unblocked here with its default action.
        if (reason == "SIGINT") {
            sigset_t interrupt;
            ::sigemptyset(&interrupt);
            ::sigaddset(&interrupt, SIGINT);
            ::pthread_sigmask(SIG_UNBLOCK, &interrupt, nullptr);
        }
        RunResult result;
        result.threads = detail::observe_threads();  // while every thread still runs
        result.daemon = config_.daemon;
        result.producers = config_.producers;
        const Clock::time_point stopping = Clock::now();
        result.active_s = std::chrono::duration<double>(stopping - engine_started_).count();
        result.drained = engine_.stop(stopping + config_.daemon.shutdown_timeout);
        end_warmup();
        engine_.report_into(result.report);
        metrics_.write(result.report, extras());
        result.elapsed_s = std::chrono::duration<double>(Clock::now() - start_).count();
        result.start_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(start_.time_since_epoch()).count();
        result.reloads_ok = reloads_ok_;
        result.reloads_failed = reloads_failed_;
        result.host = host_;
        result.warmup = config_.daemon.warmup;
        result.stall_after = config_.daemon.stall_after;
        result.series.assign(stats_.series().begin(), stats_.series().end());
        result.series_dropped = stats_.series_dropped();
        result.stationarity = check_stationarity(result.series);
        // A sweep's verdict is its recommendation, not the whole run's mix of stages.
        if (sweep_) {
            result.sweep = sweep_->finish();
            log::emit(
                log::Level::info, "sweep done",
                {{"parameter", result.sweep->plan.parameter},
                 {"stages", result.sweep->stages.size()},
                 {"recommended", result.sweep->recommended
                                     ? static_cast<std::int64_t>(*result.sweep->recommended)
                                     : -1},
                 {"knee", result.sweep->knee ? static_cast<std::int64_t>(*result.sweep->knee) : -1},
                 {"reason", result.sweep->reason}});
        } else {
            result.slo = evaluate_slo(config_.slo, result.report, result.stationarity);
        }
        for (const auto& v : result.slo.violations) {
            log::emit(log::Level::err, "SLO violated",
                      {{"key", v.key},
                       {"limit", v.limit},
                       {"actual", v.actual},
                       {"unit", v.unit},
                       {"note", v.note}});
        }
        const Totals totals = result.report.totals();
        log::emit(log::Level::info, "stopped",
                  {{"reason", reason},
                   {"elapsed_s", result.elapsed_s},
                   {"due", totals.due},
                   {"fired", totals.fired},
                   {"skipped", totals.skipped},
                   {"late", totals.late},
                   {"value_written", totals.value_written},
                   {"value_read", totals.value_read},
                   {"drained_at_stop", totals.drained_at_stop},
                   {"lost", totals.lost},
                   {"stalls", totals.stalls},
                   {"events_dispatched", result.report.events_dispatched},
                   {"epoll_wakeups", result.report.epoll_wakeups},
                   {"reloads_ok", reloads_ok_},
                   {"reloads_failed", reloads_failed_},
                   {"slo", !result.slo.checked   ? "none"
                           : result.slo.passed() ? "met"
                                                 : "violated"}});
        return result;
    }

    const RunOptions& options_;
    std::shared_ptr<Notifier> notifier_;
    Config config_;
    Clock::time_point start_;
    Clock::time_point engine_started_;
    // Wall clock at the start, for evfly_start_time_seconds.
    double start_time_s_ =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    Epoll loop_;
    Fd signals_;
    Fd stats_timer_;
    Fd run_timer_;
    Fd watchdog_timer_;
    Fd stall_timer_;
    Fd warmup_timer_;
    Fd collect_timer_;
    Fd thresholds_timer_;
    Fd sweep_timer_;
    ScrapeBroker broker_;
    std::unique_ptr<MetricsServer> endpoint_;  // metrics.listen
    std::optional<SweepRunner> sweep_;
    bool warming_ = false;
    HostInfo host_;
    Nanos watchdog_limit_{0};
    bool withholding_ = false;
    Engine engine_;
    StatsReporter stats_;
    MetricsFile metrics_;
    detail::CpuWakeLatency wake_latency_;  // daemon.cpu_dma_latency, held while running
    std::uint64_t reloads_ok_ = 0;
    std::uint64_t reloads_failed_ = 0;
};

}  // namespace

RunResult run_daemon(const Config& config, const RunOptions& options) {
    Supervisor supervisor(config, options);
    return supervisor.run();
}

}  // namespace evfly
