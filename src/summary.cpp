#include "evfly/summary.h"

#include <sys/resource.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "evfly/log.h"
#include "summary_parts.h"

namespace evfly {
namespace {

double seconds(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

template <typename Snapshot>
nlohmann::ordered_json latency(const Snapshot& h) {
    const Percentiles p = h.percentiles();
    return {{"count", p.count}, {"p50", p.p50},   {"p90", p.p90},
            {"p99", p.p99},     {"p999", p.p999}, {"max", p.max}};
}

// Each percentile's 95 % confidence interval, [lower, upper]; null for an end the sample
// cannot bound (a p99 needs 563 samples for an upper bound, a p99.9 5 662).
nlohmann::ordered_json intervals(const HistogramSnapshot& h) {
    const auto pair = [&h](double q) {
        const HistogramSnapshot::Interval i = h.quantile_interval(q);
        return nlohmann::ordered_json::array(
            {i.lower ? nlohmann::ordered_json(*i.lower) : nlohmann::ordered_json(nullptr),
             i.upper ? nlohmann::ordered_json(*i.upper) : nlohmann::ordered_json(nullptr)});
    };
    return {{"p50", pair(0.50)}, {"p90", pair(0.90)}, {"p99", pair(0.99)}, {"p999", pair(0.999)}};
}

// The non-empty buckets as [lower, upper, count] (bounds in ns, inclusive): enough to re-derive
// any percentile (nearest rank; a bucket reports lower + (upper - lower) / 2, capped by the
// maximum) and to merge runs.
nlohmann::ordered_json buckets(const HistogramSnapshot& h) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (std::size_t i = 0; i < HistogramSnapshot::kBuckets; ++i) {
        if (const std::uint64_t n = h.bucket_count(i); n != 0)
            out.push_back(
                {HistogramSnapshot::bucket_lower(i), HistogramSnapshot::bucket_upper(i), n});
    }
    return out;
}

nlohmann::ordered_json split(const HistogramSnapshot& same, const HistogramSnapshot& cross) {
    return {{"same_cpu", latency(same)}, {"cross_cpu", latency(cross)}};
}

// Latency by where the hand-off ran: in all, and per consumer CPU.
nlohmann::ordered_json by_cpu(const std::vector<CpuLatency>& cpus) {
    const CpuLatency all = total_of(cpus);
    nlohmann::ordered_json per = nlohmann::ordered_json::array();
    for (const CpuLatency& c : cpus) {
        per.push_back({{"cpu", c.cpu},
                       {"eventfd", split(c.eventfd_same_cpu, c.eventfd_cross_cpu)},
                       {"eventfd_delivery", split(c.delivery_same_cpu, c.delivery_cross_cpu)},
                       {"timerfd", latency(c.timerfd)}});
    }
    const std::uint64_t same = all.eventfd_same_cpu.count();
    const std::uint64_t split_total = same + all.eventfd_cross_cpu.count();
    return {{"eventfd", split(all.eventfd_same_cpu, all.eventfd_cross_cpu)},
            {"eventfd_delivery", split(all.delivery_same_cpu, all.delivery_cross_cpu)},
            {"same_cpu_share",
             split_total == 0 ? 0.0 : static_cast<double>(same) / static_cast<double>(split_total)},
            {"consumer_cpus", per}};
}

// The split over all CPUs as full histograms, for plots (evfly-plot) and merging runs.
nlohmann::ordered_json by_cpu_buckets(const std::vector<CpuLatency>& cpus) {
    const CpuLatency all = total_of(cpus);
    return {{"eventfd_same_cpu", buckets(all.eventfd_same_cpu)},
            {"eventfd_cross_cpu", buckets(all.eventfd_cross_cpu)},
            {"eventfd_delivery_same_cpu", buckets(all.delivery_same_cpu)},
            {"eventfd_delivery_cross_cpu", buckets(all.delivery_cross_cpu)}};
}

nlohmann::ordered_json brief(const Percentiles& p) {
    return {{"count", p.count}, {"p50", p.p50}, {"p99", p.p99}, {"max", p.max}};
}

nlohmann::ordered_json series(const RunResult& result) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const IntervalStats& s : result.series) {
        out.push_back({{"t_s", s.t_s},
                       {"interval_s", s.interval_s},
                       {"events_per_s", s.events_per_s},
                       {"values_per_s", s.values_per_s},
                       {"expirations_per_s", s.expirations_per_s},
                       {"due_per_s", s.due_per_s},
                       {"late", s.late},
                       {"skipped", s.skipped},
                       {"eventfd_ns", brief(s.eventfd)},
                       {"eventfd_delivery_ns", brief(s.eventfd_delivery)},
                       {"timerfd_ns", brief(s.timerfd)},
                       {"in_flight", s.in_flight},
                       {"oldest_in_flight_ns", s.oldest_in_flight_ns},
                       {"consumers", s.consumers}});
        if (result.report.explain.enabled) {
            nlohmann::ordered_json& entry = out.back();
            entry["outliers"] = s.outliers;
            for (std::size_t c = 0; c < kCauses; ++c)
                entry[std::string("outliers_") + to_string(static_cast<Cause>(c))] =
                    s.outliers_by_cause[c];
        }
    }
    return out;
}

nlohmann::ordered_json slo_json(const SloResult& slo) {
    nlohmann::ordered_json violations = nlohmann::ordered_json::array();
    for (const auto& v : slo.violations) {
        violations.push_back({{"key", v.key},
                              {"limit", v.limit},
                              {"actual", v.actual},
                              {"unit", v.unit},
                              {"note", v.note}});
    }
    return {{"checked", slo.checked}, {"passed", slo.passed()}, {"violations", violations}};
}

nlohmann::ordered_json stationarity_json(const Stationarity& st) {
    nlohmann::ordered_json series = nlohmann::ordered_json::array();
    for (const auto& s : st.series)
        series.push_back({{"name", s.name},
                          {"first_half_ns", s.first_half_ns},
                          {"second_half_ns", s.second_half_ns},
                          {"ratio", s.ratio},
                          {"trend_z", s.trend_z},
                          {"halves_z", s.halves_z},
                          {"drifted", s.drifted}});
    return {{"checked", st.checked},
            {"stationary", st.checked ? nlohmann::ordered_json(st.stationary())
                                      : nlohmann::ordered_json(nullptr)},
            {"intervals", st.intervals},
            {"reason", st.reason},
            {"series", series}};
}

nlohmann::ordered_json placement_json(const Placement& p) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    if (!p.cpus.empty()) out["cpus"] = format_cpu_list(p.cpus);
    if (p.policy) out["policy"] = to_string(*p.policy);
    if (p.policy == SchedPolicy::fifo || p.policy == SchedPolicy::rr) out["priority"] = p.priority;
    if (p.nice) out["nice"] = *p.nice;
    if (p.timer_slack) out["timer_slack_ns"] = p.timer_slack->count();
    return out;
}

nlohmann::ordered_json placement(const RunResult& result) {
    nlohmann::ordered_json producers = nlohmann::ordered_json::object();
    for (const auto& p : result.producers) producers[p.name] = placement_json(p.placement);
    nlohmann::ordered_json threads = nlohmann::ordered_json::array();
    for (const auto& t : result.threads) {
        threads.push_back({{"name", t.name},
                           {"tid", t.tid},
                           {"cpu", t.cpu},
                           {"cpus_allowed", t.cpus_allowed},
                           {"policy", t.policy},
                           {"priority", t.priority},
                           {"nice", t.nice},
                           {"timer_slack_ns", t.timer_slack_ns}});
    }
    return {{"mlockall", result.daemon.mlockall},
            {"cpu_dma_latency_us",
             result.daemon.cpu_dma_latency
                 ? nlohmann::ordered_json(result.daemon.cpu_dma_latency->count() / 1000)
                 : nlohmann::ordered_json(nullptr)},
            {"consumers", placement_json(result.daemon.placement)},
            {"producers", producers},
            {"threads", threads}};
}

double to_s(Nanos d) { return std::chrono::duration<double>(d).count(); }

// The samples' paths in segments, by kind.
nlohmann::ordered_json segments(const std::vector<CpuLatency>& cpus) {
    const CpuLatency all = total_of(cpus);
    nlohmann::ordered_json out = {{"eventfd", nlohmann::ordered_json::object()},
                                  {"timerfd", nlohmann::ordered_json::object()}};
    PathSegments::each(all.segments, all.segments,
                       [&out](const char* kind, const char* segment, const auto& h, const auto&) {
                           out[kind][segment] = latency(h);
                       });
    return out;
}

nlohmann::ordered_json outlier_json(const Outlier& o, std::int64_t start_ns) {
    nlohmann::ordered_json out = {{"id", o.id},
                                  {"producer", o.producer},
                                  {"kind", to_string(o.kind)},
                                  {"cause", to_string(o.cause)},
                                  {"latency_ns", o.latency_ns},
                                  {"segments_ns",
                                   {{"producer", o.producer_ns},
                                    {"wake_up", o.wake_up_ns},
                                    {"batch", o.batch_ns},
                                    {"handler", o.handler_ns}}},
                                  {"due_s", static_cast<double>(o.due_ns - start_ns) / 1e9},
                                  {"due_ns", o.due_ns},
                                  {"written_ns", o.written_ns},
                                  {"returned_ns", o.returned_ns},
                                  {"turn_ns", o.turn_ns},
                                  {"read_ns", o.read_ns},
                                  {"handler_end_ns", o.handler_end_ns},
                                  {"consumer", o.consumer},
                                  {"consumer_tid", o.consumer_tid},
                                  {"cpu", o.cpu},
                                  {"park_cpu", o.park_cpu},
                                  {"fire_cpu", o.fire_cpu},
                                  {"overrun_ahead_ns", o.overrun_ahead_ns},
                                  {"parked_at_write", o.parked_at_write},
                                  {"parked_in_batch", o.parked_in_batch}};
    if (!o.trace.empty()) out["trace"] = nlohmann::ordered_json::parse(o.trace, nullptr, false);
    return out;
}

nlohmann::ordered_json explain_json(const ExplainReport& e, std::int64_t start_ns) {
    nlohmann::ordered_json causes = nlohmann::ordered_json::object();
    for (std::size_t c = 0; c < kCauses; ++c)
        causes[to_string(static_cast<Cause>(c))] = e.causes[c];
    nlohmann::ordered_json worst = nlohmann::ordered_json::array();
    for (const Outlier& o : e.worst) worst.push_back(outlier_json(o, start_ns));
    return {{"over", e.over},
            {"over_ns", e.over_eventfd_ns},
            {"over_timerfd_ns", e.over_timerfd_ns},
            {"outliers", e.outliers},
            {"causes", causes},
            {"worst", worst},
            {"trace",
             {{"state", e.trace.state},
              {"reason", e.trace.reason},
              {"analyses", e.trace.analyses},
              {"skipped", e.trace.skipped},
              {"missed_events", e.trace.missed_events}}}};
}

nlohmann::ordered_json optional_number(const std::optional<double>& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

// measured / model, or null when the model says no wait (or none).
nlohmann::ordered_json ratio(std::uint64_t measured, const std::optional<double>& model) {
    if (!model || *model < 1.0) return nullptr;
    return static_cast<double>(measured) / *model;
}

}  // namespace

nlohmann::ordered_json latency_with_intervals(const HistogramSnapshot& h) {
    nlohmann::ordered_json out = latency(h);
    out["ci95"] = intervals(h);
    return out;
}

nlohmann::ordered_json capacity_json(const Capacity& c) {
    nlohmann::ordered_json producers = nlohmann::ordered_json::array();
    for (const auto& p : c.producers)
        producers.push_back({{"name", p.name},
                             {"arrivals_per_s", p.arrivals_per_s},
                             {"scv_arrivals", p.scv_arrivals}});
    nlohmann::ordered_json out = {
        {"model", c.applies ? nlohmann::ordered_json(queue::to_string(c.model.model))
                            : nlohmann::ordered_json(nullptr)},
        {"why", c.why},
        {"consumers", c.consumers},
        {"arrivals_per_s", c.arrivals_per_s},
        {"scv_arrivals", c.scv_arrivals},
        {"producers", producers},
        {"service_ns",
         {{"count", c.service.count},
          {"mean", c.service.mean_ns},
          {"scv", c.service.scv},
          {"p99", c.service.p99_ns}}}};
    if (c.applies) {
        out["offered_erlangs"] = c.model.offered;
        out["utilisation"] = c.model.utilisation;
        out["saturated"] = c.model.saturated;
        out["consumers_needed"] = c.model.consumers_needed;
    }
    out["all_busy"] = {{"measured", optional_number(c.measured_all_busy)},
                       {"model", c.applies ? nlohmann::ordered_json(c.model.all_busy) : nullptr}};
    out["wait_ns"] = {{"measured",
                       {{"count", c.wait_count},
                        {"p50", c.measured_wait_p50_ns},
                        {"p99", c.measured_wait_p99_ns}}},
                      {"model",
                       {{"p50", optional_number(c.model.wait_p50_ns)},
                        {"p99", optional_number(c.model.wait_p99_ns)}}},
                      {"measured_over_model",
                       {{"p50", ratio(c.measured_wait_p50_ns, c.model.wait_p50_ns)},
                        {"p99", ratio(c.measured_wait_p99_ns, c.model.wait_p99_ns)}}}};
    if (c.applies) out["verdict"] = c.verdict;
    return out;
}

namespace {

nlohmann::ordered_json optional_value(const std::optional<std::uint32_t>& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

// The run's capacity block; a sweep's stages each have their own, and the run as a whole mixes
// them, so it has none.
nlohmann::ordered_json capacity_of(const RunResult& result) {
    Capacity c = assess(capacity_input(result.report, nullptr, result.producers, result.active_s));
    if (result.sweep) {
        c.applies = false;
        c.why =
            "a sweep: each stage has its own model (sweep.stages[].model); the run as a whole "
            "mixes them";
    }
    return capacity_json(c);
}

nlohmann::ordered_json sweep_json(const SweepResult& r) {
    nlohmann::ordered_json targets = nlohmann::ordered_json::array();
    for (const auto& t : r.plan.targets) targets.push_back(t.to_string());
    nlohmann::ordered_json stages = nlohmann::ordered_json::array();
    for (const auto& s : r.stages) {
        stages.push_back(
            {{"value", s.value},
             {"seconds", s.seconds},
             {"values_per_s", s.values_per_s},
             {"latency_ns", latency_with_intervals(s.latency)},
             {"model",
              {{"name", s.model.empty() ? nlohmann::ordered_json(nullptr)
                                        : nlohmann::ordered_json(s.model)},
               {"utilisation", s.utilisation},
               {"saturated", s.saturated},
               {"wait_p99_ns", optional_number(s.model_p99_ns)}}},
             {"cpu_s", s.cpu_s},
             {"skipped", s.skipped},
             {"late", s.late},
             {"stopped_early", s.stopped_early.empty() ? nlohmann::ordered_json(nullptr)
                                                       : nlohmann::ordered_json(s.stopped_early)},
             {"meets", s.meets},
             {"misses", s.misses}});
    }
    return {{"parameter", r.plan.parameter},
            {"values", r.plan.values},
            {"stage_s", r.plan.stage_samples != 0 ? nlohmann::ordered_json(nullptr)
                                                  : nlohmann::ordered_json(to_s(r.plan.stage))},
            {"stage_samples", r.plan.stage_samples},
            {"targets", targets},
            {"stages", stages},
            {"recommended", optional_value(r.recommended)},
            {"reason", r.reason},
            {"knee", optional_value(r.knee)},
            {"stopped", r.stopped.empty() ? nlohmann::ordered_json(nullptr)
                                          : nlohmann::ordered_json(r.stopped)}};
}

// Every producer count added up, what was lost, and the pool's and the log's counts.
nlohmann::ordered_json totals_json(const Report& report, const Totals& totals,
                                   std::uint64_t log_dropped) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    ProducerCounts::each(
        totals, totals, [&out](const char* name, std::uint64_t count, auto) { out[name] = count; });
    out["lost"] = totals.lost;
    PoolCounts::each(report, report,
                     [&out](const char* name, std::uint64_t count, auto) { out[name] = count; });
    out["log_dropped"] = log_dropped;
    out["log_sink_errors"] = log::sink_errors();
    return out;
}

}  // namespace

std::uint64_t peak_rss_kib() {
    // VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so a daemon
    // started by a large parent (a shell script, a test harness) would report the parent's peak.
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
    }
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::uint64_t>(usage.ru_maxrss);
}

Resources sample_resources() {
    Resources r;
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    r.cpu_user_s = seconds(usage.ru_utime);
    r.cpu_sys_s = seconds(usage.ru_stime);
    r.max_rss_kib = peak_rss_kib();
    r.voluntary_ctx_switches = static_cast<std::uint64_t>(usage.ru_nvcsw);
    r.involuntary_ctx_switches = static_cast<std::uint64_t>(usage.ru_nivcsw);
    return r;
}

std::string summary_json(const RunResult& result, const Resources& resources,
                         std::uint64_t log_dropped) {
    const Report& report = result.report;
    const Totals totals = report.totals();
    nlohmann::ordered_json producers = nlohmann::ordered_json::array();
    for (const auto& p : report.producers) {
        nlohmann::ordered_json entry = {
            {"name", p.name}, {"kind", to_string(p.kind)}, {"threads", p.threads}};
        ProducerCounts::each(
            p, p, [&entry](const char* name, std::uint64_t count, auto) { entry[name] = count; });
        entry["backlog"] = p.backlog();
        if (p.kind == ProducerKind::eventfd) {
            entry["fd_mode"] = to_string(p.fd_mode);
            if (p.rate != 0) {
                entry["arrival"] = to_string(p.arrival);
                entry["seed"] = p.seed;
            }
        }
        entry["work_dist"] = to_string(p.work_dist);
        entry["work_kind"] = to_string(p.work_kind);
        producers.push_back(std::move(entry));
    }
    const nlohmann::ordered_json doc = {
        {"evfly_version", EVFLY_VERSION},
        {"elapsed_s", result.elapsed_s},
        {"consumers", report.consumers},
        {"drained", result.drained},
        {"producers", producers},
        {"totals", totals_json(report, totals, log_dropped)},
        {"reloads", {{"ok", result.reloads_ok}, {"failed", result.reloads_failed}}},
        {"latency_ns",
         {{"eventfd", latency_with_intervals(report.eventfd_latency)},
          {"timerfd", latency_with_intervals(report.timerfd_latency)}}},
        {"delivery_ns", {{"eventfd", latency_with_intervals(report.eventfd_delivery)}}},
        {"histograms_ns",
         {{"eventfd", buckets(report.eventfd_latency)},
          {"eventfd_delivery", buckets(report.eventfd_delivery)},
          {"timerfd", buckets(report.timerfd_latency)}}},
        {"segments_ns", segments(report.by_cpu)},
        {"capacity", capacity_of(result)},
        {"by_cpu", by_cpu(report.by_cpu)},
        {"by_cpu_histograms_ns", by_cpu_buckets(report.by_cpu)},
        {"warmup",
         {{"duration_s", to_s(result.warmup)},
          {"excluded",
           {{"eventfd", report.warmup_excluded_eventfd},
            {"timerfd", report.warmup_excluded_timerfd}}}}},
        {"stall_canary",
         {{"stall_after_s", to_s(result.stall_after)},
          {"stalls", totals.stalls},
          {"oldest_in_flight_ns", report.oldest_in_flight.age_ns}}},
        {"stationarity", stationarity_json(result.stationarity)},
        {"slo", slo_json(result.slo)},
        {"host",
         {{"kernel", result.host.kernel},
          {"cpu_model", result.host.cpu_model},
          {"online_cpus", result.host.online_cpus},
          {"clocksource", result.host.clocksource},
          {"virtualized", result.host.virtualized},
          {"hypervisor", result.host.hypervisor},
          {"evfly_version", result.host.evfly_version},
          {"config_hash", result.host.config_hash}}},
        {"placement", placement(result)},
        {"timeseries", series(result)},
        {"timeseries_dropped", result.series_dropped},
        {"resources",
         {{"cpu_user_s", resources.cpu_user_s},
          {"cpu_sys_s", resources.cpu_sys_s},
          {"max_rss_kib", resources.max_rss_kib},
          {"fds_at_start", resources.fds_at_start},
          {"fds_at_exit", resources.fds_at_exit},
          {"voluntary_ctx_switches", resources.voluntary_ctx_switches},
          {"involuntary_ctx_switches", resources.involuntary_ctx_switches}}}};
    nlohmann::ordered_json out = doc;
    if (report.explain.enabled) out["explain"] = explain_json(report.explain, result.start_ns);
    if (result.sweep) out["sweep"] = sweep_json(*result.sweep);
    return out.dump(2) + "\n";
}

}  // namespace evfly
