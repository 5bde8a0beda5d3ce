// Counter: a count with one writing thread at a time and any number of readers.
//
// No read-modify-write instruction: a store of the loaded value plus n. Successive writers must
// be ordered by a happens-before edge (a mutex, a join, or a slot's generation). Stores are
// releases and get() an acquire (plain moves on x86): a report that reads what consumers read
// (value_read) before what producers wrote (value_written) never shows more read than written,
// as a value is counted written before its write() syscall.
#pragma once

#include <atomic>
#include <cstdint>

namespace evfly::detail {

class Counter {
  public:
    void add(std::uint64_t n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_release);
    }
    void sub(std::uint64_t n) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_release);
    }
    void reset() noexcept { value_.store(0, std::memory_order_release); }
    [[nodiscard]] std::uint64_t get() const noexcept {
        return value_.load(std::memory_order_acquire);
    }

  private:
    std::atomic<std::uint64_t> value_{0};
};

}  // namespace evfly::detail
