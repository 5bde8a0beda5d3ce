// StatsReporter: the periodic stats line, the one-line STATUS= text and the time series kept for
// the summary, each entry covering the time since the previous report. Supervisor thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "evfly/engine.h"
#include "evfly/report.h"

namespace evfly {

class StatsReporter {
  public:
    using Clock = std::chrono::steady_clock;
    // The time series keeps the last this many intervals.
    static constexpr std::size_t kMaxIntervals = 10'000;

    StatsReporter(const Engine& engine, Clock::time_point start)
        : engine_(engine), start_(start), last_time_(start) {}

    // Logs one stats line covering the time since the previous one, appends it to the time
    // series, and returns a one-line status for STATUS=.
    std::string report();

    // The report taken by the last report().
    [[nodiscard]] const Report& last() const noexcept { return *last_; }
    [[nodiscard]] const std::deque<IntervalStats>& series() const noexcept { return series_; }
    // Intervals that fell off the front of the series.
    [[nodiscard]] std::uint64_t series_dropped() const noexcept { return series_dropped_; }

  private:
    const Engine& engine_;
    Clock::time_point start_;
    std::unique_ptr<Report> last_ = std::make_unique<Report>();
    Clock::time_point last_time_;
    std::deque<IntervalStats> series_;
    std::uint64_t series_dropped_ = 0;
};

}  // namespace evfly
