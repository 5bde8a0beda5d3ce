#include "evfly/duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace evfly {
namespace {

struct Unit {
    std::string_view name;
    std::int64_t nanos;
};

// Longest names first so that "ms" is not read as "m" followed by garbage.
constexpr std::array<Unit, 6> kUnits{{{"ns", 1},
                                      {"us", 1'000},
                                      {"ms", 1'000'000},
                                      {"s", 1'000'000'000},
                                      {"m", 60'000'000'000},
                                      {"h", 3'600'000'000'000}}};

bool fail(std::string* error, std::string message) {
    if (error != nullptr) *error = std::move(message);
    return false;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<Nanos> parse_duration(std::string_view text, std::string* error) {
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    const std::string quoted = "\"" + std::string(text) + "\"";
    std::size_t pos = 0;
    std::int64_t whole = 0;
    if (pos == text.size() || !is_digit(text[pos])) {
        fail(error,
             "bad duration " + quoted +
                 ": expected a number followed by a unit (ns, us, ms, s, m, h), e.g. \"250ms\"");
        return std::nullopt;
    }
    for (; pos < text.size() && is_digit(text[pos]); ++pos) {
        const int digit = text[pos] - '0';
        if (whole > (kMax - digit) / 10) {
            fail(error, "bad duration " + quoted + ": too large");
            return std::nullopt;
        }
        whole = whole * 10 + digit;
    }
    // Up to nine fractional digits, kept as an exact numerator over 10^digits.
    std::int64_t frac = 0;
    std::int64_t frac_scale = 1;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        if (pos == text.size() || !is_digit(text[pos])) {
            fail(error, "bad duration " + quoted + ": expected digits after the decimal point");
            return std::nullopt;
        }
        for (; pos < text.size() && is_digit(text[pos]); ++pos) {
            if (frac_scale == 1'000'000'000) {
                fail(error, "bad duration " + quoted + ": more than nine decimal places");
                return std::nullopt;
            }
            frac = frac * 10 + (text[pos] - '0');
            frac_scale *= 10;
        }
    }
    const std::string_view unit_name = text.substr(pos);
    for (const Unit& unit : kUnits) {
        if (unit_name != unit.name) continue;
        if (whole > kMax / unit.nanos) {
            fail(error, "bad duration " + quoted + ": too large (the limit is about 292 years)");
            return std::nullopt;
        }
        const std::int64_t whole_ns = whole * unit.nanos;
        // frac < frac_scale <= 1e9 and unit.nanos <= 3.6e12: split to avoid overflow.
        const std::int64_t frac_ns =
            (frac * (unit.nanos / frac_scale)) + ((frac * (unit.nanos % frac_scale)) / frac_scale);
        if (whole_ns > kMax - frac_ns) {
            fail(error, "bad duration " + quoted + ": too large");
            return std::nullopt;
        }
        if (unit.nanos % frac_scale != 0 && (frac * (unit.nanos % frac_scale)) % frac_scale != 0) {
            fail(error, "bad duration " + quoted + ": finer than one nanosecond");
            return std::nullopt;
        }
        return Nanos(whole_ns + frac_ns);
    }
    if (unit_name.empty()) {
        fail(error, "bad duration " + quoted + ": missing unit (ns, us, ms, s, m, h)");
    } else {
        fail(error, "bad duration " + quoted + ": unknown unit \"" + std::string(unit_name) +
                        "\" (ns, us, ms, s, m, h)");
    }
    return std::nullopt;
}

std::string format_duration(Nanos d) {
    const std::int64_t ns = d.count();
    if (ns == 0) return "0s";
    for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
        if (ns % it->nanos == 0) return std::to_string(ns / it->nanos) + std::string(it->name);
    }
    return std::to_string(ns) + "ns";
}

}  // namespace evfly
