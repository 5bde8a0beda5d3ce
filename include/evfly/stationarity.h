// Stationarity: whether a run's numbers drifted over its time series, so a gate never passes on
// a run whose first half and second half measured different things. Two series are checked, the
// latency's p99 per stats interval and what an event cost a consumer (the handler segment's
// mean): each by the Mann-Kendall trend test (a drift), the Mann-Whitney test between its halves
// (a step) and the medians of its halves. A series drifted when either test is significant
// (|z| > 3) and the halves' medians differ by 1.5x or more. Pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "evfly/report.h"

namespace evfly {

struct Stationarity {
    bool checked = false;
    std::string reason;  // why it was not checked, or what drifted
    std::size_t intervals = 0;
    struct Series {
        std::string name;  // "eventfd_p99", "timerfd_p99", "service_mean"
        double first_half_ns = 0;
        double second_half_ns = 0;
        double ratio = 0;     // second / first
        double trend_z = 0;   // Mann-Kendall
        double halves_z = 0;  // Mann-Whitney, second half against first
        bool drifted = false;
    };
    std::vector<Series> series;
    [[nodiscard]] bool stationary() const noexcept {
        for (const auto& s : series)
            if (s.drifted) return false;
        return true;
    }
};

// At least this many intervals with samples are needed.
inline constexpr std::size_t kStationarityMinIntervals = 8;

Stationarity check_stationarity(const std::vector<IntervalStats>& series);

// Mann-Kendall's z for a trend in `values` (0 for fewer than three).
double mann_kendall_z(const std::vector<double>& values);
// Mann-Whitney's z (normal approximation) for `second` being larger than `first`.
double mann_whitney_z(const std::vector<double>& first, const std::vector<double>& second);

}  // namespace evfly
