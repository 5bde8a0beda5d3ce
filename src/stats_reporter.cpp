#include "stats_reporter.h"

#include <cstdio>

#include "evfly/log.h"

namespace evfly {
namespace {

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

}  // namespace

std::string StatsReporter::report() {
    const auto now = Clock::now();
    auto current = std::make_unique<Report>();
    engine_.report_into(*current);
    const double dt = std::chrono::duration<double>(now - last_time_).count();
    const Totals total = current->totals();
    const Totals before = last_->totals();
    // Totals, not per producer: a reload may add or remove producers between two lines.
    const auto eventfd_values_of = [](const Report& r) {
        std::uint64_t sum = 0;
        for (const auto& p : r.producers)
            if (p.kind == ProducerKind::eventfd) sum += p.value_read;
        return sum;
    };
    const std::uint64_t eventfd_values = eventfd_values_of(*current);
    const std::uint64_t eventfd_values_before = eventfd_values_of(*last_);
    const auto rate = [dt](std::uint64_t now_count, std::uint64_t then_count) {
        return dt > 0 ? static_cast<double>(now_count - then_count) / dt : 0.0;
    };
    const Percentiles efd = current->eventfd_latency.since(last_->eventfd_latency).percentiles();
    const Percentiles tfd = current->timerfd_latency.since(last_->timerfd_latency).percentiles();
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
               {"fd_exhaustion", total.fd_exhaustion - before.fd_exhaustion},
               {"handler_errors", current->handler_errors - last_->handler_errors},
               {"log_dropped", log::dropped()},
               {"log_sink_errors", log::sink_errors()}});
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

}  // namespace evfly
