#include "stats_reporter.h"

#include <cstdio>

#include "evfly/log.h"

namespace evfly {
namespace {

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

const ProducerReport* find(const Report& r, const ProducerReport& like) {
    for (const auto& p : r.producers)
        if (p.name == like.name && p.kind == like.kind) return &p;
    return nullptr;
}

// Producers behind their schedule: a backlog of more than one fire, or fires late or skipped in
// this interval. "name:backlog=N,late=N,skipped=N;..." (empty when none is).
std::string behind(const Report& now, const Report& before) {
    std::string out;
    for (const auto& p : now.producers) {
        const ProducerReport* then = find(before, p);
        const std::uint64_t late = p.late - (then ? then->late : 0);
        const std::uint64_t skipped = p.skipped - (then ? then->skipped : 0);
        if (p.backlog() <= 1 && late == 0 && skipped == 0) continue;
        char entry[160];
        std::snprintf(
            entry, sizeof entry, "%s%s:backlog=%llu,late=%llu,skipped=%llu", out.empty() ? "" : ";",
            p.name.c_str(), static_cast<unsigned long long>(p.backlog()),
            static_cast<unsigned long long>(late), static_cast<unsigned long long>(skipped));
        out += entry;
    }
    return out;
}

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
        return dt > 0 && now_count >= then_count ? static_cast<double>(now_count - then_count) / dt
                                                 : 0.0;
    };
    const auto delta = [](std::uint64_t now_count, std::uint64_t then_count) {
        return now_count >= then_count ? now_count - then_count : 0;
    };
    IntervalStats s;
    s.t_s = std::chrono::duration<double>(now - start_).count();
    s.interval_s = dt;
    s.eventfd = current->eventfd_latency.since(last_->eventfd_latency).percentiles();
    s.eventfd_delivery = current->eventfd_delivery.since(last_->eventfd_delivery).percentiles();
    s.timerfd = current->timerfd_latency.since(last_->timerfd_latency).percentiles();
    s.events_per_s = rate(current->events_dispatched, last_->events_dispatched);
    s.values_per_s = rate(eventfd_values, eventfd_values_before);
    s.expirations_per_s = rate(total.expirations, before.expirations);
    s.due_per_s = rate(total.due, before.due);
    s.late = delta(total.late, before.late);
    s.skipped = delta(total.skipped, before.skipped);
    s.in_flight = total.lost;
    s.oldest_in_flight_ns = current->oldest_in_flight.age_ns;
    s.consumers = current->consumers;
    {
        const CpuLatency now_all = total_of(current->by_cpu);
        const CpuLatency then_all = total_of(last_->by_cpu);
        const CoarseHistogramSnapshot service = now_all.segments.service();
        const CoarseHistogramSnapshot service_before = then_all.segments.service();
        const CoarseHistogramSnapshot interval = service.since(service_before);
        s.service_count = interval.count();
        s.service_mean_ns = s.service_count == 0
                                ? 0.0
                                : interval.approx_sum() / static_cast<double>(s.service_count);
    }
    s.outliers = delta(current->explain.outliers, last_->explain.outliers);
    for (std::size_t c = 0; c < kCauses; ++c)
        s.outliers_by_cause[c] = delta(current->explain.causes[c], last_->explain.causes[c]);
    const std::string behind_now = behind(*current, *last_);
    const Percentiles& efd = s.eventfd;
    const Percentiles& tfd = s.timerfd;
    log::emit(log::Level::info, "stats",
              {{"interval_s", dt},
               {"events_per_s", s.events_per_s},
               {"values_per_s", s.values_per_s},
               {"expirations_per_s", s.expirations_per_s},
               {"wakeups_per_s", rate(current->epoll_wakeups, last_->epoll_wakeups)},
               {"eventfd_count", efd.count},
               {"eventfd_p50_us", us(efd.p50)},
               {"eventfd_p90_us", us(efd.p90)},
               {"eventfd_p99_us", us(efd.p99)},
               {"eventfd_p999_us", us(efd.p999)},
               {"eventfd_max_us", us(efd.max)},
               {"delivery_p50_us", us(s.eventfd_delivery.p50)},
               {"delivery_p99_us", us(s.eventfd_delivery.p99)},
               {"timerfd_count", tfd.count},
               {"timerfd_p50_us", us(tfd.p50)},
               {"timerfd_p99_us", us(tfd.p99)},
               {"timerfd_max_us", us(tfd.max)},
               {"overruns", total.overruns - before.overruns},
               {"due_per_s", s.due_per_s},
               {"late", s.late},
               {"skipped", s.skipped},
               {"backlog", total.due - std::min(total.due, total.fired + total.skipped)},
               {"behind", behind_now},
               {"in_flight", s.in_flight},
               {"oldest_in_flight_ms", static_cast<double>(s.oldest_in_flight_ns) / 1e6},
               {"stalls", total.stalls},
               {"clock_jumps", total.clock_jumps},
               {"consumers", current->consumers},
               {"fd_exhaustion", total.fd_exhaustion - before.fd_exhaustion},
               {"handler_errors", current->handler_errors - last_->handler_errors},
               {"log_dropped", log::dropped()},
               {"log_sink_errors", log::sink_errors()},
               {"outliers", s.outliers},
               {"outliers_queueing", s.outliers_by_cause[0]},
               {"outliers_wake_up", s.outliers_by_cause[1]},
               {"outliers_batch", s.outliers_by_cause[2]},
               {"outliers_handler", s.outliers_by_cause[3]},
               {"outliers_producer", s.outliers_by_cause[4]}});
    last_ = std::move(current);
    last_time_ = now;
    if (series_.size() == kMaxIntervals) {
        series_.pop_front();
        ++series_dropped_;
    }
    series_.push_back(s);
    char status[320];
    std::snprintf(status, sizeof status,
                  "%.0f events/s, %.0f values/s, eventfd p99 %.1f us, timerfd p99 %.1f us, "
                  "%u consumers, %lld in flight, oldest %.1f ms, %llu skipped, %llu stalls%s%s",
                  s.events_per_s, s.values_per_s, us(efd.p99), us(tfd.p99), s.consumers,
                  static_cast<long long>(s.in_flight),
                  static_cast<double>(s.oldest_in_flight_ns) / 1e6,
                  static_cast<unsigned long long>(total.skipped),
                  static_cast<unsigned long long>(total.stalls),
                  behind_now.empty() ? "" : ", behind: ", behind_now.c_str());
    return status;
}

}  // namespace evfly
