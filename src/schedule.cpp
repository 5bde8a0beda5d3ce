#include "schedule.h"

#include <algorithm>

namespace evfly::detail {

Schedule::Schedule(const Arrivals& arrivals) noexcept
    : kind_(arrivals.period_ns == 0 ? Arrivals::Kind::paced : arrivals.kind),
      period_(arrivals.period_ns),
      burst_(kind_ == Arrivals::Kind::burst ? std::max<std::uint32_t>(arrivals.burst, 1) : 1),
      cycle_(period_ * burst_),
      rng_(kind_ == Arrivals::Kind::poisson ? std::make_unique<std::mt19937_64>(arrivals.seed)
                                            : nullptr),
      gap_(period_ > 0 ? 1.0 / static_cast<double>(period_) : 1.0) {}

void Schedule::begin(std::int64_t first_due) noexcept {
    next_ = first_due;
    in_burst_ = 0;
    if (flat_out()) return;
    first_.store(first_due, std::memory_order_relaxed);
    publish();
}

void Schedule::publish() noexcept {
    if (kind_ != Arrivals::Kind::poisson) return;
    drawn_.store(drawn_local_, std::memory_order_relaxed);
    next_published_.store(next_, std::memory_order_relaxed);
}

void Schedule::advance() noexcept {
    switch (kind_) {
        case Arrivals::Kind::paced:
            next_ += period_;
            break;
        case Arrivals::Kind::burst:
            if (++in_burst_ == burst_) {
                in_burst_ = 0;
                next_ += cycle_;
            }
            break;
        case Arrivals::Kind::poisson:
            next_ += static_cast<std::int64_t>(gap_(*rng_));
            break;
    }
}

std::uint64_t Schedule::skip_through(std::int64_t now) noexcept {
    std::uint64_t n = 0;
    switch (kind_) {
        case Arrivals::Kind::paced:
            if (next_ <= now) {
                const std::int64_t periods = (now - next_) / period_ + 1;
                n = static_cast<std::uint64_t>(periods);
                next_ += periods * period_;
            }
            break;
        case Arrivals::Kind::burst:
            if (in_burst_ != 0 && next_ <= now) {
                n += burst_ - in_burst_;
                in_burst_ = 0;
                next_ += cycle_;
            }
            if (next_ <= now) {
                const std::int64_t cycles = (now - next_) / cycle_ + 1;
                n += static_cast<std::uint64_t>(cycles) * burst_;
                next_ += cycles * cycle_;
            }
            break;
        case Arrivals::Kind::poisson:
            if (next_ <= now) {
                // Memoryless: how many more fell in (next_, now] is Poisson, and the next one
                // after now is an exponential gap away from now.
                n = count_through(now);
                next_ = now + static_cast<std::int64_t>(gap_(*rng_));
            }
            break;
    }
    return n;
}

std::uint64_t Schedule::count_through(std::int64_t until) noexcept {
    if (next_ > until) return 0;
    switch (kind_) {
        case Arrivals::Kind::paced:
            return static_cast<std::uint64_t>((until - next_) / period_ + 1);
        case Arrivals::Kind::burst: {
            std::uint64_t n = 0;
            std::int64_t at = next_;
            if (in_burst_ != 0) {
                n += burst_ - in_burst_;
                at += cycle_;
            }
            if (at <= until) n += static_cast<std::uint64_t>((until - at) / cycle_ + 1) * burst_;
            return n;
        }
        case Arrivals::Kind::poisson: {
            const double mean = static_cast<double>(until - next_) / static_cast<double>(period_);
            if (mean <= 0) return 1;
            std::poisson_distribution<std::uint64_t> more(mean);
            return 1 + more(*rng_);
        }
    }
    return 0;
}

Schedule::Take Schedule::take(std::int64_t now) noexcept {
    Take t;
    t.due = next_;
    if (flat_out()) return t;
    advance();
    ++drawn_local_;
    if (now - t.due <= kMaxCatchUpNs) {
        publish();
        return t;
    }
    // Behind by more than the catch-up limit (the host or the process was stopped, the pool
    // cannot keep up). The fire at hand keeps its own due time, so its latency shows the whole
    // gap, as cyclictest's first wake-up after a stall does; what else is already past is given
    // up on, and the schedule goes on from the present.
    const std::uint64_t count = skip_through(now);
    drawn_local_ += count;
    publish();
    if (count == 0) return t;
    skipped_.add(count);
    skipped_in_episode_ += count;
    t.behind_began = !behind_;
    t.behind_ns = now - t.due;
    behind_ = true;
    t.skipped = count;
    return t;
}

Schedule::Made Schedule::fired(std::int64_t due, std::int64_t now) noexcept {
    Made m;
    if (flat_out()) return m;
    if (now - due > cycle_) {
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
    // A fire due within the last cycle before the stop was not late yet, and is not owed.
    const std::uint64_t owed = kind_ == Arrivals::Kind::paced
                                   ? due_by(now - period_, fired)
                                   : drawn_local_ + count_through(now - cycle_);
    const std::uint64_t due = std::max(owed, done);
    final_due_.store(static_cast<std::int64_t>(due), std::memory_order_relaxed);
    if (due > done) skipped_.add(due - done);
}

std::uint64_t Schedule::due_by(std::int64_t now, std::uint64_t fired) const noexcept {
    if (flat_out()) return fired;
    if (const std::int64_t final_due = final_due_.load(std::memory_order_relaxed); final_due >= 0)
        return static_cast<std::uint64_t>(final_due);
    const std::int64_t first = first_.load(std::memory_order_relaxed);
    if (first == 0 || now < first) return 0;
    switch (kind_) {
        case Arrivals::Kind::paced:
            return static_cast<std::uint64_t>((now - first) / period_) + 1;
        case Arrivals::Kind::burst:
            return (static_cast<std::uint64_t>((now - first) / cycle_) + 1) * burst_;
        case Arrivals::Kind::poisson: {
            const std::uint64_t drawn = drawn_.load(std::memory_order_relaxed);
            const std::int64_t next = next_published_.load(std::memory_order_relaxed);
            return drawn +
                   (now >= next ? static_cast<std::uint64_t>((now - next) / period_) + 1 : 0);
        }
    }
    return fired;
}

}  // namespace evfly::detail
