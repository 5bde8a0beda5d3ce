#include "schedule.h"

#include <algorithm>

namespace evfly::detail {

void Schedule::begin(std::int64_t first_due) noexcept {
    next_ = first_due;
    if (!flat_out()) first_.store(first_due, std::memory_order_relaxed);
}

Schedule::Take Schedule::take(std::int64_t now) noexcept {
    Take t;
    t.due = next_;
    if (flat_out()) return t;
    next_ += period_;
    if (now - t.due <= kMaxCatchUpNs) return t;
    // Behind by more than the catch-up limit (the host or the process was stopped, the pool
    // cannot keep up). The fire at hand keeps its own due time, so its latency shows the whole
    // gap, as cyclictest's first wake-up after a stall does; the periods after it that are
    // already past are given up on, and the schedule goes on from the present.
    const std::int64_t periods = (now - t.due) / period_;
    const auto count = static_cast<std::uint64_t>(periods);
    skipped_.add(count);
    skipped_in_episode_ += count;
    t.behind_began = !behind_;
    t.behind_ns = now - t.due;
    behind_ = true;
    t.skipped = count;
    next_ += periods * period_;
    return t;
}

Schedule::Made Schedule::fired(std::int64_t due, std::int64_t now) noexcept {
    Made m;
    if (flat_out()) return m;
    if (now - due > period_) {
        late_.add();
        m.late = true;
    } else if (behind_) {
        behind_ = false;
        m.caught_up = true;
        m.skipped_in_episode = skipped_in_episode_;
        skipped_in_episode_ = 0;
    }
    return m;
}

void Schedule::close(std::int64_t now, std::uint64_t fired) noexcept {
    if (flat_out()) return;
    const std::uint64_t done = fired + skipped_.get();
    const std::uint64_t due = std::max(due_by(now - period_, fired), done);
    final_due_.store(static_cast<std::int64_t>(due), std::memory_order_relaxed);
    if (due > done) skipped_.add(due - done);
}

std::uint64_t Schedule::due_by(std::int64_t now, std::uint64_t fired) const noexcept {
    if (flat_out()) return fired;
    if (const std::int64_t final_due = final_due_.load(std::memory_order_relaxed); final_due >= 0)
        return static_cast<std::uint64_t>(final_due);
    const std::int64_t first = first_.load(std::memory_order_relaxed);
    if (first == 0 || now < first) return 0;
    return static_cast<std::uint64_t>((now - first) / period_) + 1;
}

}  // namespace evfly::detail
