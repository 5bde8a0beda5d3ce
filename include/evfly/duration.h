// Durations as evfly's config and command line write them: a non-negative number with a unit,
// "250ms", "3s", "1.5m". Units: ns, us, ms, s, m, h. Parsing is exact (no floating point) and
// rejects values that would not fit in 64-bit nanoseconds.
#pragma once

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace evfly {

using Nanos = std::chrono::nanoseconds;

// Parses `text`; on failure returns nullopt and, if `error` is given, a one-line reason.
std::optional<Nanos> parse_duration(std::string_view text, std::string* error = nullptr);

// The shortest exact spelling in the largest unit that divides the value: 1500ms -> "1500ms",
// 3000ms -> "3s", 0 -> "0s".
std::string format_duration(Nanos d);

// As the timerfd and clock calls take it. `d` must not be negative.
inline timespec to_timespec(Nanos d) noexcept {
    return timespec{static_cast<time_t>(d.count() / 1'000'000'000),
                    static_cast<long>(d.count() % 1'000'000'000)};
}

}  // namespace evfly
