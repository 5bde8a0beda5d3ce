// Pieces of the summary JSON that more than one part of it uses (the run's and a sweep's).
#pragma once

#include <nlohmann/json.hpp>

#include "capacity.h"
#include "evfly/histogram.h"

namespace evfly {

// The capacity block: the load, the model that applies, and the measured wait beside it.
nlohmann::ordered_json capacity_json(const Capacity& capacity);
// count, p50, p90, p99, p999, max and each percentile's 95 % confidence interval (ci95).
nlohmann::ordered_json latency_with_intervals(const HistogramSnapshot& h);

}  // namespace evfly
