// The SLO gate: the [slo] limits checked against a run's final report, for CI and fleet checks.
// A latency limit is met when the statistic is at most the limit; a count limit when the count
// is at most the limit. evflyd logs each violation and exits with kExitSloViolated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/report.h"
#include "evfly/stationarity.h"

namespace evfly {

struct SloViolation {
    std::string key;  // as in [slo], e.g. "eventfd_p99", "max_lost"
    std::uint64_t limit = 0;
    std::uint64_t actual = 0;
    const char* unit = "";  // "ns" for latency limits, "" for counts
    std::string note;       // what it means, where numbers alone do not say (stationarity)
};

struct SloResult {
    bool checked = false;  // an [slo] table with at least one limit was given
    std::vector<SloViolation> violations;
    [[nodiscard]] bool passed() const noexcept { return violations.empty(); }
};

// The limits against the report; with limits set, a run flagged non-stationary violates
// "stationarity" too unless slo.allow_non_stationary.
SloResult evaluate_slo(const Config::Slo& slo, const Report& report,
                       const Stationarity& stationarity);

}  // namespace evfly
