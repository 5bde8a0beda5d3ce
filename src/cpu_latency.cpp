#include "cpu_latency.h"

#include <cstddef>
#include <new>

namespace evfly::detail {

struct CpuLatencyRecorder::PerCpu {
    Histogram eventfd_same_cpu;
    Histogram eventfd_cross_cpu;
    Histogram delivery_same_cpu;
    Histogram delivery_cross_cpu;
    Histogram timerfd;
    CoarseHistogram eventfd_producer;
    CoarseHistogram eventfd_wake_up;
    CoarseHistogram eventfd_batch;
    CoarseHistogram eventfd_handler;
    CoarseHistogram timerfd_wake_up;
    CoarseHistogram timerfd_batch;
    CoarseHistogram timerfd_handler;
};

CpuLatencyRecorder::CpuLatencyRecorder()
    : cpus_(std::make_unique<std::atomic<PerCpu*>[]>(kMaxCpus + 1)) {}

CpuLatencyRecorder::~CpuLatencyRecorder() {
    for (std::size_t i = 0; i <= kMaxCpus; ++i) delete cpus_[i].load(std::memory_order_acquire);
}

CpuLatencyRecorder::PerCpu* CpuLatencyRecorder::at(int cpu) noexcept {
    const bool known = cpu >= 0 && static_cast<std::size_t>(cpu) < kMaxCpus;
    std::atomic<PerCpu*>& entry = cpus_[known ? static_cast<std::size_t>(cpu) : kMaxCpus];
    PerCpu* have = entry.load(std::memory_order_acquire);
    if (have != nullptr) return have;
    // First sample on this CPU: two threads may race here; the loser frees its copy.
    auto* fresh = new (std::nothrow) PerCpu();
    if (fresh == nullptr) return nullptr;
    if (entry.compare_exchange_strong(have, fresh, std::memory_order_acq_rel)) return fresh;
    delete fresh;
    return have;
}

void CpuLatencyRecorder::record_eventfd(int cpu, int fire_cpu, std::uint64_t latency,
                                        std::uint64_t delivery, const Path& path) noexcept {
    PerCpu* c = at(cpu);
    if (c == nullptr) return;
    if (fire_cpu == cpu && cpu >= 0) {
        c->eventfd_same_cpu.record(latency);
        c->delivery_same_cpu.record(delivery);
    } else {
        c->eventfd_cross_cpu.record(latency);
        c->delivery_cross_cpu.record(delivery);
    }
    c->eventfd_producer.record(path.producer);
    c->eventfd_wake_up.record(path.wake_up);
    c->eventfd_batch.record(path.batch);
}

void CpuLatencyRecorder::record_timer(int cpu, std::uint64_t lateness, const Path& path) noexcept {
    PerCpu* c = at(cpu);
    if (c == nullptr) return;
    c->timerfd.record(lateness);
    c->timerfd_wake_up.record(path.wake_up);
    c->timerfd_batch.record(path.batch);
}

void CpuLatencyRecorder::record_handler(int cpu, bool timer, std::uint64_t handler) noexcept {
    PerCpu* c = at(cpu);
    if (c == nullptr) return;
    (timer ? c->timerfd_handler : c->eventfd_handler).record(handler);
}

std::vector<CpuLatency> CpuLatencyRecorder::snapshot() const {
    std::vector<CpuLatency> out;
    // CPU -1 first, so that the list is in CPU order.
    for (std::size_t n = 0; n <= kMaxCpus; ++n) {
        const std::size_t i = n == 0 ? kMaxCpus : n - 1;
        const PerCpu* c = cpus_[i].load(std::memory_order_acquire);
        if (c == nullptr) continue;
        CpuLatency& view = out.emplace_back();
        view.cpu = i == kMaxCpus ? -1 : static_cast<int>(i);
        c->eventfd_same_cpu.snapshot_into(view.eventfd_same_cpu);
        c->eventfd_cross_cpu.snapshot_into(view.eventfd_cross_cpu);
        c->delivery_same_cpu.snapshot_into(view.delivery_same_cpu);
        c->delivery_cross_cpu.snapshot_into(view.delivery_cross_cpu);
        c->timerfd.snapshot_into(view.timerfd);
        c->eventfd_producer.snapshot_into(view.segments.eventfd_producer);
        c->eventfd_wake_up.snapshot_into(view.segments.eventfd_wake_up);
        c->eventfd_batch.snapshot_into(view.segments.eventfd_batch);
        c->eventfd_handler.snapshot_into(view.segments.eventfd_handler);
        c->timerfd_wake_up.snapshot_into(view.segments.timerfd_wake_up);
        c->timerfd_batch.snapshot_into(view.segments.timerfd_batch);
        c->timerfd_handler.snapshot_into(view.segments.timerfd_handler);
    }
    return out;
}

}  // namespace evfly::detail
