// A pool-size sweep (--sweep consumers=1..8): one stage per value of the swept parameter, in one
// process through the live-reload machinery, each with its own warm-up and a duration or sample
// count, the arrivals and work unchanged. Each stage's latency with confidence intervals, the
// queueing model's prediction, CPU time, skipped and late; at the end the smallest value whose
// p99 upper confidence bound meets the target, and the knee where more stop helping.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/histogram.h"
#include "evfly/report.h"

namespace evfly {

// A latency bound a stage must meet: a statistic (p50, p90, p99, p999, max) of a kind's latency
// ("eventfd", "timerfd", "eventfd_delivery", or "" for every sample) at most `limit`.
struct SweepTarget {
    std::string kind;
    std::string stat;
    Nanos limit{0};
    [[nodiscard]] std::string to_string() const;  // "p99 <= 2ms"
};

struct SweepPlan {
    std::string parameter;  // "consumers" or "threads" (every producer's)
    std::vector<std::uint32_t> values;
    Nanos stage{std::chrono::seconds(10)};  // each stage's measured time ...
    std::uint64_t stage_samples = 0;        // ... or, when not 0, its sample count
    std::vector<SweepTarget> targets;       // --target, else [slo]'s latency limits
};

// "consumers=1..8", "consumers=2,4,8", "threads=1..4"; nullopt and `why` when malformed.
std::optional<SweepPlan> parse_sweep(const std::string& text, std::string* why);
// "10s" (a duration) or "20000" (samples) into `plan`; false and `why` when malformed.
bool parse_stage(const std::string& text, SweepPlan& plan, std::string* why);
// "p99=2ms", "eventfd_p999=5ms"; nullopt and `why` when malformed.
std::optional<SweepTarget> parse_target(const std::string& text, std::string* why);
// The [slo] latency limits as targets.
std::vector<SweepTarget> targets_of(const Config::Slo& slo);
// `config` with the swept parameter set to `value`.
void impose(const SweepPlan& plan, std::uint32_t value, Config& config);

struct SweepStage {
    std::uint32_t value = 0;
    double seconds = 0;
    double values_per_s = 0;
    HistogramSnapshot latency;                 // every sample, due -> read
    std::vector<HistogramSnapshot> by_target;  // the histogram each target reads
    double cpu_s = 0;                          // user + system, the whole process
    std::uint64_t skipped = 0;
    std::uint64_t late = 0;
    double utilisation = 0;
    bool saturated = false;
    std::optional<double> model_p99_ns;  // the queueing model's wait p99; none if none applies
    std::string model;                   // which, or empty
    std::string stopped_early;           // why the stage was cut short, or empty
    bool meets = false;                  // every target met by its upper confidence bound
    std::string misses;                  // what it missed, or empty
};

struct SweepResult {
    SweepPlan plan;
    std::vector<SweepStage> stages;
    std::optional<std::uint32_t> recommended;
    std::string reason;  // why that value, or why none
    std::optional<std::uint32_t> knee;
    std::string stopped;  // why the sweep ended before its last value, or empty
};

// Whether `stage` meets every target, by each statistic's upper confidence bound (a p99 from
// too few samples to bound cannot meet one); sets meets and misses.
void judge(SweepStage& stage, const std::vector<SweepTarget>& targets);
// The recommendation and the knee from the judged stages (in the order run).
void recommend(SweepResult& result);
// The result as a table for a terminal.
std::string sweep_table(const SweepResult& result);

}  // namespace evfly
