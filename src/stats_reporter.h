// StatsReporter: the periodic stats line and the one-line STATUS= text, each covering the time
// since the previous report. Supervisor thread only.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "evfly/engine.h"
#include "evfly/report.h"

namespace evfly {

class StatsReporter {
  public:
    using Clock = std::chrono::steady_clock;
    StatsReporter(const Engine& engine, Clock::time_point start)
        : engine_(engine), last_time_(start) {}

    // Logs one stats line covering the time since the previous one; returns a one-line status.
    std::string report();

    // The report taken by the last report().
    [[nodiscard]] const Report& last() const noexcept { return *last_; }

  private:
    const Engine& engine_;
    std::unique_ptr<Report> last_ = std::make_unique<Report>();
    Clock::time_point last_time_;
};

}  // namespace evfly
