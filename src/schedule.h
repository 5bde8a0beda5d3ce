// Schedule: when a paced producer's fires are due, and the account of what became of each.
//
// Arrivals come evenly spaced ("paced", the n-th due at first + n * period), as a Poisson process
// (exponential gaps of mean period, from a seeded generator), or in bursts (`burst` events due
// together every burst * period). Due times are absolute, so a late wake-up never turns into
// drift. A producer that falls more than kMaxCatchUpNs behind (the host or the daemon was stopped,
// the pool cannot keep up) makes the fire at hand with its own due time, so that its latency
// carries the whole gap, and gives up on what else is already past instead of firing that backlog
// at once; it is counted as skipped. A fire made more than one gap (a period; a burst's period)
// after its due time is counted as late. Once the producer stops, whatever the schedule still owed
// is skipped, so that due == fired + skipped.
//
// Pure: no clock, no thread, no syscall. Time comes in as arguments (steady ns), so every rule is
// unit-tested without sleeping. A period of 0 is a flat-out producer: no schedule, due = fired.
//
// Threading: the producer thread calls begin(), take(), fired() and close(); any thread may call
// due_by(), late() and skipped() at the same time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>

#include "counter.h"

namespace evfly::detail {

// How a producer's events arrive.
struct Arrivals {
    enum class Kind : std::uint8_t { paced, poisson, burst };
    Kind kind = Kind::paced;
    std::int64_t period_ns = 0;  // the mean gap between events; 0: flat out
    std::uint32_t burst = 1;     // burst: events due together, every burst * period_ns
    std::uint64_t seed = 0;      // poisson: the gaps' generator
};

class Schedule {
  public:
    static constexpr std::int64_t kSecondNs = 1'000'000'000;
    // Behind by more than this, the producer skips to the present.
    static constexpr std::int64_t kMaxCatchUpNs = kSecondNs;

    // Evenly spaced; `period_ns` 0: flat out.
    explicit Schedule(std::int64_t period_ns) noexcept
        : Schedule(Arrivals{.period_ns = period_ns}) {}
    explicit Schedule(const Arrivals& arrivals) noexcept;
    Schedule(const Schedule&) = delete;
    Schedule& operator=(const Schedule&) = delete;

    [[nodiscard]] bool flat_out() const noexcept { return period_ == 0; }
    [[nodiscard]] std::int64_t period() const noexcept { return period_; }
    // The time one round of arrivals takes: the period, or a burst's.
    [[nodiscard]] std::int64_t cycle() const noexcept { return cycle_; }
    [[nodiscard]] Arrivals::Kind kind() const noexcept { return kind_; }

    // The schedule starts: its first fire is due at `first_due`.
    void begin(std::int64_t first_due) noexcept;
    // When the next fire is due.
    [[nodiscard]] std::int64_t next_due() const noexcept { return next_; }

    // What take() decided for the fire at hand.
    struct Take {
        std::int64_t due = 0;        // the due time to stamp the fire with (never moved)
        std::uint64_t skipped = 0;   // periods given up on just now
        bool behind_began = false;   // the first skip of an episode (log it)
        std::int64_t behind_ns = 0;  // how far behind the schedule was, when it skipped
    };
    // The producer, awake at `now`, makes the next fire: its due time, after the catch-up rule.
    // The schedule moves on past it.
    Take take(std::int64_t now) noexcept;

    // What fired() made of a fire.
    struct Made {
        bool late = false;
        bool caught_up = false;  // the first fire on time after skipping (log it)
        std::uint64_t skipped_in_episode = 0;
    };
    // The fire due at `due` was made at `now`.
    Made fired(std::int64_t due, std::int64_t now) noexcept;

    // The producer stopped firing at `now` with `fired` fires made: whatever the schedule owed
    // is skipped. A fire due within the last period before the stop was not late yet, and is not
    // owed.
    void close(std::int64_t now, std::uint64_t fired) noexcept;

    // Fires the schedule called for up to `now`, or in all once closed; flat out, what was fired.
    // Exact for paced and burst arrivals; for Poisson arrivals, those the producer has not drawn
    // yet (it is behind) are counted at the mean rate.
    [[nodiscard]] std::uint64_t due_by(std::int64_t now, std::uint64_t fired) const noexcept;
    [[nodiscard]] std::uint64_t late() const noexcept { return late_.get(); }
    [[nodiscard]] std::uint64_t skipped() const noexcept { return skipped_.get(); }

  private:
    // Moves next_ to the arrival after it.
    void advance() noexcept;
    // Gives up on every arrival due by `now` from next_ on; returns how many.
    std::uint64_t skip_through(std::int64_t now) noexcept;
    // Arrivals from next_ on that are due by `until`, without moving next_ (Poisson: drawn).
    std::uint64_t count_through(std::int64_t until) noexcept;
    void publish() noexcept;

    const Arrivals::Kind kind_;
    const std::int64_t period_;
    const std::uint32_t burst_;
    const std::int64_t cycle_;
    std::unique_ptr<std::mt19937_64> rng_;  // producer thread only; Poisson only (2.5 KiB)
    std::exponential_distribution<double> gap_;
    std::uint32_t in_burst_ = 0;            // producer thread only: next_'s place in its burst
    std::uint64_t drawn_local_ = 0;         // producer thread only: arrivals before next_
    std::int64_t next_ = 0;                 // producer thread only
    bool behind_ = false;                   // producer thread only: in a skipping episode
    std::uint64_t skipped_in_episode_ = 0;  // producer thread only
    // The first due time (0 until begin()), and the fires due in all once closed (-1 before).
    std::atomic<std::int64_t> first_{0};
    std::atomic<std::int64_t> final_due_{-1};
    // Poisson: arrivals before next_, and next_, for due_by() on other threads.
    std::atomic<std::uint64_t> drawn_{0};
    std::atomic<std::int64_t> next_published_{0};
    Counter late_;
    Counter skipped_;
};

}  // namespace evfly::detail
