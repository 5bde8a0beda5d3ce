// Work: a handler's modelled cost per event, as [[producer]] work, work_dist and work_kind
// describe it: how long (a fixed time, or drawn from an exponential, lognormal or bimodal
// distribution of the given mean) and how (burning CPU, or blocking as an I/O-bound handler).
//
// Pure but for spend(): draw() takes the consumer's generator, so the distributions are
// unit-tested by their statistics without a thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <random>

#include "evfly/config.h"

namespace evfly::detail {

struct Work {
    WorkDist dist = WorkDist::fixed;  // fixed: ns, without a draw
    WorkKind kind = WorkKind::cpu;
    std::int64_t ns = 0;       // fixed: the time; exponential, lognormal: the mean; bimodal: common
    double sigma = 0;          // lognormal: of ln(work)
    std::int64_t slow_ns = 0;  // bimodal: the other time
    double slow_share = 0;     // bimodal: its share

    static Work of(const ProducerConfig& p) noexcept;
    // Nothing to spend: no work at all.
    [[nodiscard]] bool none() const noexcept {
        return ns == 0 && (dist != WorkDist::bimodal || slow_ns == 0);
    }
    // One event's work, in ns (at most 10 s).
    [[nodiscard]] std::int64_t draw(std::mt19937_64& rng) const noexcept;
};

// Spends `ns` as `kind` says: a busy loop (cpu), or a sleep. Returns early once `abandon` is set.
void spend(WorkKind kind, std::int64_t ns, const std::atomic<bool>& abandon) noexcept;

}  // namespace evfly::detail
