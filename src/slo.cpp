#include "evfly/slo.h"

namespace evfly {
namespace {

std::uint64_t statistic(const HistogramSnapshot& h, const std::string& stat) {
    const Percentiles p = h.percentiles();
    if (stat == "p50") return p.p50;
    if (stat == "p90") return p.p90;
    if (stat == "p99") return p.p99;
    if (stat == "p999") return p.p999;
    return p.max;
}

std::uint64_t count_of(const std::string& key, const Report& report) {
    const Totals t = report.totals();
    if (key == "max_lost") return t.lost > 0 ? static_cast<std::uint64_t>(t.lost) : 0;
    if (key == "max_skipped") return t.skipped;
    if (key == "max_late") return t.late;
    if (key == "max_stalls") return t.stalls;
    if (key == "max_overruns") return t.overruns;
    if (key == "max_drained_at_stop") return t.drained_at_stop;
    return t.clock_jumps;  // max_clock_jumps
}

}  // namespace

SloResult evaluate_slo(const Config::Slo& slo, const Report& report,
                       const Stationarity& stationarity) {
    SloResult result;
    result.checked = !slo.empty();
    for (const auto& [key, limit] : slo.latency) {
        const auto split = key.rfind('_');
        const std::string kind = key.substr(0, split);
        const std::string stat = key.substr(split + 1);
        const HistogramSnapshot& h = kind == "eventfd"            ? report.eventfd_latency
                                     : kind == "eventfd_delivery" ? report.eventfd_delivery
                                                                  : report.timerfd_latency;
        const std::uint64_t actual = statistic(h, stat);
        const auto bound = static_cast<std::uint64_t>(limit.count());
        if (actual > bound) result.violations.push_back({key, bound, actual, "ns", {}});
    }
    for (const auto& [key, limit] : slo.counts) {
        const std::uint64_t actual = count_of(key, report);
        if (actual > limit) result.violations.push_back({key, limit, actual, "", {}});
    }
    if (result.checked && !slo.allow_non_stationary && stationarity.checked &&
        !stationarity.stationary())
        result.violations.push_back({"stationarity", 0, 1, "", stationarity.reason});
    return result;
}

}  // namespace evfly
