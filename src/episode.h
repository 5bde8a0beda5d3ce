// Episode: failures of one kind, told once per episode instead of once per failure.
//
// An episode begins with a failure and lasts while failures keep coming less than `gap` apart;
// the first success after a quiet `gap` ends it. A thread that retries a failing call (out of
// fds, an epoll_ctl or epoll_wait that fails) logs the first failure of an episode and the end
// of it, with the number of failures in between, and so cannot flood the log queue.
//
// Threading: one thread at a time (it is a plain value).
#pragma once

#include <cstdint>

namespace evfly::detail {

class Episode {
  public:
    explicit Episode(std::int64_t gap_ns) noexcept : gap_(gap_ns) {}

    // A failure at `now` (steady ns). True when it begins an episode: tell it.
    bool fail(std::int64_t now) noexcept {
        const bool begins = !active_ || now - last_failure_ > gap_;
        active_ = true;
        last_failure_ = now;
        ++failures_;
        return begins;
    }
    // A success at `now`. When it ends an episode, returns the failures the episode counted
    // (at least 1): tell it. Otherwise 0.
    std::uint64_t succeed(std::int64_t now) noexcept {
        if (!active_ || now - last_failure_ <= gap_) return 0;
        active_ = false;
        const std::uint64_t failures = failures_;
        failures_ = 0;
        return failures;
    }
    // Cheap: whether succeed() could end anything (no clock read needed otherwise).
    [[nodiscard]] bool active() const noexcept { return active_; }

  private:
    std::int64_t gap_;
    std::int64_t last_failure_ = 0;
    std::uint64_t failures_ = 0;
    bool active_ = false;
};

}  // namespace evfly::detail
