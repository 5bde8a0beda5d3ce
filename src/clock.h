// The two clocks of the engine, as nanosecond integers: steady_ns() (CLOCK_MONOTONIC, which
// std::chrono::steady_clock is on Linux) for stamps and deadlines, and clock_ns() for a timer's
// own clock (realtime, monotonic or boottime). Both are vDSO calls: no syscall.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>

namespace evfly::detail {

inline std::int64_t steady_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

inline std::int64_t clock_ns(clockid_t clock) noexcept {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace evfly::detail
