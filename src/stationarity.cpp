#include "evfly/stationarity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace evfly {
namespace {

constexpr double kTrendZ = 3.0;  // two-sided p of about 0.003
constexpr double kHalvesRatio = 1.5;

double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

Stationarity::Series judge(std::string name, const std::vector<double>& values) {
    Stationarity::Series s;
    s.name = std::move(name);
    const std::size_t half = values.size() / 2;
    s.first_half_ns = median({values.begin(), values.begin() + static_cast<std::ptrdiff_t>(half)});
    s.second_half_ns = median({values.end() - static_cast<std::ptrdiff_t>(half), values.end()});
    s.ratio = s.first_half_ns > 0 ? s.second_half_ns / s.first_half_ns : 0.0;
    s.trend_z = mann_kendall_z(values);
    s.halves_z =
        mann_whitney_z({values.begin(), values.begin() + static_cast<std::ptrdiff_t>(half)},
                       {values.end() - static_cast<std::ptrdiff_t>(half), values.end()});
    const bool apart = s.first_half_ns > 0 && s.second_half_ns > 0 &&
                       (s.ratio >= kHalvesRatio || s.ratio <= 1.0 / kHalvesRatio);
    s.drifted = (std::abs(s.trend_z) > kTrendZ || std::abs(s.halves_z) > kTrendZ) && apart;
    return s;
}

}  // namespace

double mann_kendall_z(const std::vector<double>& values) {
    const std::size_t n = values.size();
    if (n < 3) return 0.0;
    double s = 0;
    for (std::size_t i = 0; i + 1 < n; ++i)
        for (std::size_t j = i + 1; j < n; ++j)
            s += values[j] > values[i] ? 1.0 : values[j] < values[i] ? -1.0 : 0.0;
    const auto nn = static_cast<double>(n);
    const double variance = nn * (nn - 1) * (2 * nn + 5) / 18.0;
    if (s == 0) return 0.0;
    return (s - std::copysign(1.0, s)) / std::sqrt(variance);
}

double mann_whitney_z(const std::vector<double>& first, const std::vector<double>& second) {
    if (first.empty() || second.empty()) return 0.0;
    // U counts the pairs (a in first, b in second) with b > a, ties as a half.
    double u = 0;
    for (const double a : first)
        for (const double b : second) u += b > a ? 1.0 : b == a ? 0.5 : 0.0;
    const auto n1 = static_cast<double>(first.size());
    const auto n2 = static_cast<double>(second.size());
    const double sd = std::sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0);
    return (u - n1 * n2 / 2.0) / sd;
}

Stationarity check_stationarity(const std::vector<IntervalStats>& series) {
    Stationarity out;
    std::vector<double> eventfd;
    std::vector<double> timerfd;
    std::vector<double> service;
    for (const auto& s : series) {
        if (s.eventfd.count > 0) eventfd.push_back(static_cast<double>(s.eventfd.p99));
        if (s.timerfd.count > 0) timerfd.push_back(static_cast<double>(s.timerfd.p99));
        if (s.service_count > 0) service.push_back(s.service_mean_ns);
    }
    out.intervals = std::max({eventfd.size(), timerfd.size(), service.size()});
    if (out.intervals < kStationarityMinIntervals) {
        out.reason = "needs a stats interval and at least " +
                     std::to_string(kStationarityMinIntervals) + " intervals with samples (had " +
                     std::to_string(out.intervals) + ")";
        return out;
    }
    out.checked = true;
    if (eventfd.size() >= kStationarityMinIntervals)
        out.series.push_back(judge("eventfd_p99", eventfd));
    if (timerfd.size() >= kStationarityMinIntervals)
        out.series.push_back(judge("timerfd_p99", timerfd));
    if (service.size() >= kStationarityMinIntervals)
        out.series.push_back(judge("service_mean", service));
    for (const auto& s : out.series) {
        if (!s.drifted) continue;
        char line[200];
        std::snprintf(line, sizeof line,
                      "%s%s drifted from %.1f us to %.1f us (trend z = %.1f, halves z = %.1f)",
                      out.reason.empty() ? "" : "; ", s.name.c_str(), s.first_half_ns / 1e3,
                      s.second_half_ns / 1e3, s.trend_z, s.halves_z);
        out.reason += line;
    }
    return out;
}

}  // namespace evfly
