// Capacity: a run's (or a sweep stage's) load set beside the queueing it implies by itself.
// What was offered (λ, measured from the schedule's due fires), what one event cost a consumer
// (the handler segment: the read, the record and the work), the pool's size, and the queueing
// model that fits the producers' arrival and work settings (queue_model.h), with the measured
// wait over the model's: the excess is what the host and evflyd add.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/histogram.h"
#include "evfly/report.h"
#include "queue_model.h"

namespace evfly {

struct CapacityInput {
    double seconds = 0;  // over which the counts below were taken
    std::uint32_t consumers = 0;
    struct Producer {
        std::string name;
        ProducerKind kind = ProducerKind::eventfd;
        FdMode fd_mode = FdMode::per_event;
        std::uint64_t rate = 0;  // per thread; 0: flat out
        Arrival arrival = Arrival::paced;
        std::uint32_t burst = 1;
        WorkDist work_dist = WorkDist::fixed;
        std::uint64_t due = 0;  // fires the schedule called for (timers: expirations)
    };
    std::vector<Producer> producers;
    CoarseHistogramSnapshot service;  // handler segments, both kinds
    HistogramSnapshot wait;           // due -> read, both kinds
    std::uint64_t probes = 0;
    std::uint64_t found_all_busy = 0;
};

// `now`'s counts (less `earlier`'s, when given: a sweep stage) over `seconds`, the producers'
// settings from `configs` (by name; a producer not there counts as paced, fixed work).
CapacityInput capacity_input(const Report& now, const Report* earlier,
                             const std::vector<ProducerConfig>& configs, double seconds);

struct Capacity {
    bool applies = false;
    std::string why;  // which model and why, or why none applies
    std::uint32_t consumers = 0;
    double arrivals_per_s = 0;
    struct Producer {
        std::string name;
        double arrivals_per_s = 0;
        double scv_arrivals = 0;
    };
    std::vector<Producer> producers;
    double scv_arrivals = 0;  // of the pool's arrivals, the producers' weighted by their rates
    struct Service {
        std::uint64_t count = 0;
        double mean_ns = 0;
        double scv = 0;
        std::uint64_t p99_ns = 0;
    } service;
    std::optional<double> measured_all_busy;  // none without probes
    std::uint64_t measured_wait_p50_ns = 0;
    std::uint64_t measured_wait_p99_ns = 0;
    std::uint64_t wait_count = 0;
    queue::Prediction model;
    // What a reader should take from it, in one sentence ("ρ >= 1: ...").
    std::string verdict;
};

Capacity assess(const CapacityInput& input);

}  // namespace evfly
