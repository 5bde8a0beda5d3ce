#include "evfly/report.h"

#include <algorithm>
#include <cstddef>

namespace evfly {

const char* to_string(Cause cause) noexcept {
    switch (cause) {
        case Cause::queueing:
            return "queueing";
        case Cause::wake_up:
            return "wake_up";
        case Cause::batch:
            return "batch";
        case Cause::handler:
            return "handler";
        default:
            return "producer";
    }
}

void CpuLatency::merge(const CpuLatency& other) noexcept {
    eventfd_same_cpu.merge(other.eventfd_same_cpu);
    eventfd_cross_cpu.merge(other.eventfd_cross_cpu);
    delivery_same_cpu.merge(other.delivery_same_cpu);
    delivery_cross_cpu.merge(other.delivery_cross_cpu);
    timerfd.merge(other.timerfd);
    PathSegments::each(
        segments, other.segments,
        [](const char*, const char*, auto& into, const auto& more) { into.merge(more); });
}

CpuLatency CpuLatency::since(const CpuLatency& earlier) const noexcept {
    CpuLatency diff;
    diff.cpu = cpu;
    diff.eventfd_same_cpu = eventfd_same_cpu.since(earlier.eventfd_same_cpu);
    diff.eventfd_cross_cpu = eventfd_cross_cpu.since(earlier.eventfd_cross_cpu);
    diff.delivery_same_cpu = delivery_same_cpu.since(earlier.delivery_same_cpu);
    diff.delivery_cross_cpu = delivery_cross_cpu.since(earlier.delivery_cross_cpu);
    diff.timerfd = timerfd.since(earlier.timerfd);
    diff.segments = segments;
    PathSegments::each(diff.segments, earlier.segments,
                       [](const char*, const char*, auto& into, const auto& before) {
                           into = into.since(before);
                       });
    return diff;
}

CpuLatency total_of(const std::vector<CpuLatency>& cpus) noexcept {
    CpuLatency all;
    for (const CpuLatency& c : cpus) all.merge(c);
    return all;
}

void merge_by_cpu(std::vector<CpuLatency>& into, const std::vector<CpuLatency>& more) {
    for (const CpuLatency& m : more) {
        const auto at = std::lower_bound(into.begin(), into.end(), m.cpu,
                                         [](const CpuLatency& c, int cpu) { return c.cpu < cpu; });
        if (at != into.end() && at->cpu == m.cpu) {
            at->merge(m);
        } else {
            into.insert(at, m);
        }
    }
}

std::vector<CpuLatency> since_by_cpu(const std::vector<CpuLatency>& now,
                                     const std::vector<CpuLatency>& earlier) {
    std::vector<CpuLatency> out;
    std::size_t j = 0;
    for (const CpuLatency& c : now) {
        while (j < earlier.size() && earlier[j].cpu < c.cpu) ++j;
        out.push_back(j < earlier.size() && earlier[j].cpu == c.cpu ? c.since(earlier[j]) : c);
        if (out.back().count() == 0) out.pop_back();
    }
    return out;
}

Totals Report::totals() const noexcept {
    Totals t;
    for (const auto& p : producers) t.add(p);
    t.lost = static_cast<std::int64_t>(t.value_written - t.value_read - t.drained_at_stop);
    return t;
}

}  // namespace evfly
