#include "capacity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace evfly {
namespace {

// The squared coefficient of variation of one producer's gaps: evenly spaced 0, Poisson 1; a
// burst of N every N/rate has N - 1 gaps of 0 and one of N/rate: c² = N - 1.
double scv_of(const CapacityInput::Producer& p) {
    if (p.kind == ProducerKind::timerfd) return 0.0;
    switch (p.arrival) {
        case Arrival::paced:
            return 0.0;
        case Arrival::poisson:
            return 1.0;
        case Arrival::burst:
            return static_cast<double>(p.burst) - 1.0;
    }
    return 0.0;
}

// Mean and squared coefficient of variation of the values in `h`, each taken as its bucket's.
template <typename Snapshot>
std::pair<double, double> moments(const Snapshot& h) {
    const auto n = static_cast<double>(h.count());
    if (n == 0) return {0.0, 0.0};
    double sum = 0;
    double squares = 0;
    for (std::size_t i = 0; i < Snapshot::kBuckets; ++i) {
        if (const std::uint64_t k = h.bucket_count(i); k != 0) {
            const auto v = static_cast<double>(Snapshot::bucket_value(i));
            sum += static_cast<double>(k) * v;
            squares += static_cast<double>(k) * v * v;
        }
    }
    const double mean = sum / n;
    const double variance = std::max(0.0, squares / n - mean * mean);
    return {mean, mean > 0 ? variance / (mean * mean) : 0.0};
}

std::string us(double ns) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
    return buf;
}

}  // namespace

CapacityInput capacity_input(const Report& now, const Report* earlier,
                             const std::vector<ProducerConfig>& configs, double seconds) {
    CapacityInput in;
    in.seconds = seconds;
    in.consumers = now.consumers;
    std::map<std::string, std::uint64_t> due_before;
    if (earlier != nullptr)
        for (const auto& p : earlier->producers) due_before[p.name] = p.due;
    for (const auto& p : now.producers) {
        CapacityInput::Producer out;
        out.name = p.name;
        out.kind = p.kind;
        out.fd_mode = p.fd_mode;
        out.rate = p.rate;
        out.arrival = p.arrival;
        out.work_dist = p.work_dist;
        const auto config = std::find_if(configs.begin(), configs.end(),
                                         [&](const ProducerConfig& c) { return c.name == p.name; });
        if (config != configs.end()) out.burst = config->burst;
        const auto before = due_before.find(p.name);
        const std::uint64_t base = before == due_before.end() ? 0 : before->second;
        out.due = p.due > base ? p.due - base : 0;
        in.producers.push_back(std::move(out));
    }
    const CpuLatency all = total_of(now.by_cpu);
    in.service = all.segments.service();
    in.wait = now.latency();
    in.probes = now.arrival_probes;
    in.found_all_busy = now.arrivals_found_all_busy;
    if (earlier != nullptr) {
        const CpuLatency before = total_of(earlier->by_cpu);
        in.service = in.service.since(before.segments.service());
        in.wait = in.wait.since(earlier->latency());
        in.probes -= std::min(in.probes, earlier->arrival_probes);
        in.found_all_busy -= std::min(in.found_all_busy, earlier->arrivals_found_all_busy);
    }
    return in;
}

Capacity assess(const CapacityInput& in) {
    Capacity out;
    out.consumers = in.consumers;
    bool flat_out = false;
    bool coalescing = false;
    bool all_paced_fixed = true;
    bool all_poisson_exponential = true;
    double weighted_scv = 0;
    for (const auto& p : in.producers) {
        const double rate = in.seconds > 0 ? static_cast<double>(p.due) / in.seconds : 0.0;
        const double scv = scv_of(p);
        out.producers.push_back({p.name, rate, scv});
        out.arrivals_per_s += rate;
        weighted_scv += rate * scv;
        if (p.kind == ProducerKind::eventfd && p.rate == 0) flat_out = true;
        if (p.kind == ProducerKind::eventfd && p.fd_mode == FdMode::persistent) coalescing = true;
        const bool paced = p.kind == ProducerKind::timerfd || p.arrival == Arrival::paced;
        all_paced_fixed = all_paced_fixed && paced && p.work_dist == WorkDist::fixed;
        all_poisson_exponential = all_poisson_exponential && p.kind == ProducerKind::eventfd &&
                                  p.arrival == Arrival::poisson &&
                                  p.work_dist == WorkDist::exponential;
    }
    // Superposed streams: c_a² as the rate-weighted mean of the producers' (Whitt's asymptotic
    // method).
    out.scv_arrivals = out.arrivals_per_s > 0 ? weighted_scv / out.arrivals_per_s : 0.0;
    const auto [mean, scv] = moments(in.service);
    out.service = {in.service.count(), mean, scv, in.service.quantile(0.99)};
    if (in.probes > 0)
        out.measured_all_busy =
            static_cast<double>(in.found_all_busy) / static_cast<double>(in.probes);
    out.wait_count = in.wait.count();
    out.measured_wait_p50_ns = in.wait.quantile(0.50);
    out.measured_wait_p99_ns = in.wait.quantile(0.99);

    if (flat_out) {
        out.why =
            "a flat-out producer fires as fast as the pool takes its events (a closed loop): "
            "no open-loop queueing model applies; give every producer a rate";
        return out;
    }
    if (coalescing) {
        out.why =
            "a persistent fd coalesces the writes that find it unread, and one consumer at a time "
            "serves it, so the pool is not one queue of events: size it with per-event or "
            "semaphore producers";
        return out;
    }
    if (out.arrivals_per_s <= 0 || out.service.count == 0) {
        out.why = "no events were served, so there is no load to model";
        return out;
    }
    out.applies = true;
    queue::Model model = queue::Model::allen_cunneen;
    if (all_paced_fixed) {
        model = queue::Model::deterministic;
        out.why = "evenly spaced arrivals and fixed work: D/D/c, no wait below full load";
    } else if (all_poisson_exponential) {
        model = queue::Model::erlang_c;
        out.why = "Poisson arrivals and exponential work: M/M/c, Erlang C";
    } else {
        out.why =
            "arrivals or work neither both evenly spaced and fixed nor both Poisson and "
            "exponential: G/G/c, Erlang C scaled by Allen-Cunneen's (c_a^2 + c_s^2) / 2 with the "
            "arrivals' c_a^2 and the measured service's c_s^2";
    }
    out.model = queue::predict(model, queue::Load{out.arrivals_per_s, out.service.mean_ns,
                                                  out.scv_arrivals, out.service.scv, in.consumers});
    if (out.model.saturated) {
        out.verdict = "utilisation >= 1: " + std::to_string(in.consumers) +
                      (in.consumers == 1 ? " consumer" : " consumers") +
                      " cannot keep up with this load (each event costs " +
                      us(out.service.mean_ns) + " of a consumer); at least " +
                      std::to_string(out.model.consumers_needed) + " are needed";
    } else if (*out.model.wait_p99_ns <= 0) {
        out.verdict =
            "the load implies no queueing: the measured wait is what the host and "
            "evflyd add";
    } else {
        out.verdict = "the load implies a p99 wait of " + us(*out.model.wait_p99_ns) +
                      "; the measured p99 is " + us(static_cast<double>(out.measured_wait_p99_ns));
    }
    return out;
}

}  // namespace evfly
