#include "evfly/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace evfly {

template <int SubBits>
std::size_t BasicHistogramSnapshot<SubBits>::bucket_of(std::uint64_t value) noexcept {
    if (value < kSubBuckets) return static_cast<std::size_t>(value);
    const auto exponent = static_cast<int>(std::bit_width(value)) - 1;  // >= kSubBits
    if (exponent > kMaxExponent) return kBuckets - 1;
    const auto sub = static_cast<std::size_t>(value >> (exponent - kSubBits)) & (kSubBuckets - 1);
    return static_cast<std::size_t>(exponent - kSubBits + 1) * kSubBuckets + sub;
}

template <int SubBits>
std::uint64_t BasicHistogramSnapshot<SubBits>::bucket_value(std::size_t bucket) noexcept {
    if (bucket < kSubBuckets) return bucket;
    const auto exponent = static_cast<int>(bucket / kSubBuckets) + kSubBits - 1;
    const std::uint64_t sub = bucket % kSubBuckets;
    const int shift = exponent - kSubBits;
    const std::uint64_t low = (kSubBuckets + sub) << shift;
    const std::uint64_t width = std::uint64_t{1} << shift;
    return low + (width - 1) / 2;
}

template <int SubBits>
std::uint64_t BasicHistogramSnapshot<SubBits>::bucket_lower(std::size_t bucket) noexcept {
    if (bucket < kSubBuckets) return bucket;
    const auto exponent = static_cast<int>(bucket / kSubBuckets) + kSubBits - 1;
    return (kSubBuckets + bucket % kSubBuckets) << (exponent - kSubBits);
}

template <int SubBits>
std::uint64_t BasicHistogramSnapshot<SubBits>::bucket_upper(std::size_t bucket) noexcept {
    if (bucket < kSubBuckets) return bucket;
    const auto exponent = static_cast<int>(bucket / kSubBuckets) + kSubBits - 1;
    return bucket_lower(bucket) + (std::uint64_t{1} << (exponent - kSubBits)) - 1;
}

template <int SubBits>
void BasicHistogramSnapshot<SubBits>::add(std::uint64_t value) noexcept {
    ++counts_[bucket_of(value)];
    ++count_;
    max_ = std::max(max_, value);
}

template <int SubBits>
void BasicHistogramSnapshot<SubBits>::merge(const BasicHistogramSnapshot& other) noexcept {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
}

template <int SubBits>
BasicHistogramSnapshot<SubBits> BasicHistogramSnapshot<SubBits>::since(
    const BasicHistogramSnapshot& earlier) const noexcept {
    BasicHistogramSnapshot diff;
    for (std::size_t i = 0; i < kBuckets; ++i) {
        // A writer may have bumped a bucket after the total was read: never go below zero.
        const std::uint64_t d =
            counts_[i] >= earlier.counts_[i] ? counts_[i] - earlier.counts_[i] : 0;
        diff.counts_[i] = d;
        diff.count_ += d;
        if (d != 0) diff.max_ = std::min(bucket_value(i), max_);
    }
    return diff;
}

template <int SubBits>
std::uint64_t BasicHistogramSnapshot<SubBits>::value_at_rank(std::uint64_t rank) const noexcept {
    std::uint64_t total = 0;
    for (const std::uint64_t c : counts_) total += c;
    if (total == 0) return 0;
    rank = std::clamp<std::uint64_t>(rank, 1, total);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
        seen += counts_[i];
        if (seen >= rank) return std::min(bucket_value(i), max_ == 0 ? bucket_value(i) : max_);
    }
    return max_;
}

template <int SubBits>
std::uint64_t BasicHistogramSnapshot<SubBits>::quantile(double q) const noexcept {
    std::uint64_t total = 0;
    for (const std::uint64_t c : counts_) total += c;
    return value_at_rank(static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total))));
}

template <int SubBits>
typename BasicHistogramSnapshot<SubBits>::Interval
BasicHistogramSnapshot<SubBits>::quantile_interval(double q) const noexcept {
    std::uint64_t total = 0;
    for (const std::uint64_t c : counts_) total += c;
    Interval out;
    if (total == 0) return out;
    const auto n = static_cast<double>(total);
    const double half = 1.96 * std::sqrt(n * q * (1.0 - q));
    const double lower = std::floor(n * q - half);
    const double upper = std::ceil(n * q + half) + 1.0;
    if (lower >= 1.0) out.lower = value_at_rank(static_cast<std::uint64_t>(lower));
    if (upper <= n) out.upper = value_at_rank(static_cast<std::uint64_t>(upper));
    return out;
}

template <int SubBits>
std::uint64_t BasicHistogramSnapshot<SubBits>::count_up_to(std::uint64_t value) const noexcept {
    const std::size_t last = bucket_of(value);
    std::uint64_t n = 0;
    for (std::size_t i = 0; i <= last; ++i) n += counts_[i];
    return n;
}

template <int SubBits>
double BasicHistogramSnapshot<SubBits>::approx_sum() const noexcept {
    double sum = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
        if (counts_[i] != 0)
            sum += static_cast<double>(counts_[i]) * static_cast<double>(bucket_value(i));
    }
    return sum;
}

template <int SubBits>
Percentiles BasicHistogramSnapshot<SubBits>::percentiles() const noexcept {
    return Percentiles{count_,         quantile(0.50),  quantile(0.90),
                       quantile(0.99), quantile(0.999), max_};
}

template <int SubBits>
void BasicHistogram<SubBits>::snapshot_into(Snapshot& out) const noexcept {
    out.count_ = 0;
    for (std::size_t i = 0; i < Snapshot::kBuckets; ++i) {
        out.counts_[i] = counts_[i].load(std::memory_order_relaxed);
        out.count_ += out.counts_[i];
    }
    out.max_ = max_.load(std::memory_order_relaxed);
}

template class BasicHistogramSnapshot<7>;
template class BasicHistogramSnapshot<4>;
template class BasicHistogram<7>;
template class BasicHistogram<4>;

}  // namespace evfly
