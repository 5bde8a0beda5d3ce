#include "explain.h"

#include <algorithm>

#include "clock.h"
#include "evfly/log.h"

namespace evfly::detail {
namespace {

// Outlier lines: at most one this often; the others are counted into the next.
constexpr std::int64_t kLogEveryNs = 1'000'000'000;

double us(std::int64_t ns) { return static_cast<double>(ns) / 1e3; }

bool slower(const Outlier& a, const Outlier& b) { return a.latency_ns > b.latency_ns; }

}  // namespace

bool ParkLog::parked_during(std::int64_t from, std::int64_t to) const noexcept {
    if (const std::int64_t since = since_.load(std::memory_order_relaxed);
        since != 0 && since <= to)
        return true;
    for (std::size_t i = 0; i < kIntervals; ++i) {
        const std::int64_t start = from_[i].load(std::memory_order_relaxed);
        const std::int64_t end = to_[i].load(std::memory_order_relaxed);
        if (start != 0 && start <= to && end >= from) return true;
    }
    return false;
}

Cause classify(const Outlier& o) noexcept {
    if (o.producer_ns >= o.wake_up_ns && o.producer_ns >= o.batch_ns) return Cause::producer;
    if (o.wake_up_ns >= o.batch_ns) return o.parked_at_write > 0 ? Cause::wake_up : Cause::queueing;
    if (2 * o.overrun_ahead_ns > o.batch_ns) return Cause::handler;
    return o.parked_in_batch > 0 ? Cause::batch : Cause::queueing;
}

void OutlierStore::configure(std::uint32_t worst, std::int64_t log_over_ns) {
    MutexLock lock(mutex_);
    worst_size_ = worst;
    log_over_ns_ = log_over_ns;
    std::sort(worst_.begin(), worst_.end(), slower);
    if (worst_.size() > worst_size_) worst_.resize(worst_size_);
    std::make_heap(worst_.begin(), worst_.end(), slower);
}

void OutlierStore::set_listener(std::function<void(const Outlier&)> listener) {
    MutexLock lock(mutex_);
    listener_ = std::move(listener);
}

void OutlierStore::add(Outlier o) {
    MutexLock lock(mutex_);
    o.id = next_id_++;
    ++total_;
    ++causes_[static_cast<std::size_t>(o.cause)];
    if (o.latency_ns > log_over_ns_) {
        const std::int64_t now = steady_ns();
        if (now - last_logged_ns_ >= kLogEveryNs) {
            last_logged_ns_ = now;
            log::emit(log::Level::warn, "outlier",
                      {{"producer", o.producer},
                       {"kind", to_string(o.kind)},
                       {"cause", to_string(o.cause)},
                       {"latency_us", us(o.latency_ns)},
                       {"producer_us", us(o.producer_ns)},
                       {"wake_up_us", us(o.wake_up_ns)},
                       {"batch_us", us(o.batch_ns)},
                       {"handler_us", us(o.handler_ns)},
                       {"consumer", o.consumer},
                       {"cpu", o.cpu},
                       {"fire_cpu", o.fire_cpu},
                       {"parked_at_write", o.parked_at_write},
                       {"id", o.id},
                       {"not_logged_since_last", not_logged_}});
            not_logged_ = 0;
        } else {
            ++not_logged_;
        }
    }
    // Keep the slowest: a min-heap whose front is the fastest kept. The listener (the tracer)
    // hears only of those kept, whose account the summary can show.
    const bool kept = worst_.size() < worst_size_ ||
                      (!worst_.empty() && o.latency_ns > worst_.front().latency_ns);
    if (kept && listener_) listener_(o);
    if (worst_.size() < worst_size_) {
        worst_.push_back(std::move(o));
        std::push_heap(worst_.begin(), worst_.end(), slower);
    } else if (!worst_.empty() && o.latency_ns > worst_.front().latency_ns) {
        std::pop_heap(worst_.begin(), worst_.end(), slower);
        worst_.back() = std::move(o);
        std::push_heap(worst_.begin(), worst_.end(), slower);
    }
}

void OutlierStore::attach_trace(std::uint64_t id, std::string trace) {
    MutexLock lock(mutex_);
    for (Outlier& o : worst_) {
        if (o.id == id) {
            o.trace = std::move(trace);
            return;
        }
    }
}

void OutlierStore::report_into(ExplainReport& out) const {
    MutexLock lock(mutex_);
    out.outliers = total_;
    out.causes = causes_;
    out.worst = worst_;
    std::sort(out.worst.begin(), out.worst.end(), slower);
}

}  // namespace evfly::detail
