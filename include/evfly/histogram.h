// Histogram: a log-linear latency histogram with a bounded relative error.
//
// Values are nanoseconds. Below 2^SubBits ns every value has its own bucket; above, each power of
// two is split into 2^SubBits equal buckets. Histogram (SubBits 7) has 128 per power of two: a
// bucket is at most 1/128 of its lower bound wide and the midpoint reported for it is within
// 0.4 % of any value in it (32 KiB of counters). CoarseHistogram (SubBits 4) has 16: within 3.1 %
// (4 KiB), for the segments of a path, where that is plenty. Values above 2^37 ns (about 137 s)
// land in the last bucket; the exact maximum is kept separately.
//
// Threading: any number of threads record at once (one relaxed read-modify-write on the bucket,
// and on the maximum only when a sample exceeds it), and any thread may take a snapshot at the
// same time, seeing each bucket at some recent value. The count is the sum of the buckets,
// computed by the snapshot, so nothing else is written per sample.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace evfly {

struct Percentiles {
    std::uint64_t count = 0;
    std::uint64_t p50 = 0;
    std::uint64_t p90 = 0;
    std::uint64_t p99 = 0;
    std::uint64_t p999 = 0;
    std::uint64_t max = 0;
};

template <int SubBits>
class BasicHistogram;

// A plain (single-threaded) copy of a histogram's counts, for merging and percentiles.
template <int SubBits>
class BasicHistogramSnapshot {
  public:
    static constexpr int kSubBits = SubBits;
    static constexpr std::size_t kSubBuckets = std::size_t{1} << kSubBits;
    static constexpr int kMaxExponent = 37;  // 2^37 ns
    static constexpr std::size_t kBuckets = kSubBuckets * (kMaxExponent - kSubBits + 2);

    static std::size_t bucket_of(std::uint64_t value) noexcept;
    // The value reported for a bucket: the midpoint of the values that map to it.
    static std::uint64_t bucket_value(std::size_t bucket) noexcept;
    // The smallest and the largest value that map to a bucket (both inclusive); the last bucket
    // also holds every value above its upper bound.
    static std::uint64_t bucket_lower(std::size_t bucket) noexcept;
    static std::uint64_t bucket_upper(std::size_t bucket) noexcept;
    [[nodiscard]] std::uint64_t bucket_count(std::size_t bucket) const noexcept {
        return counts_[bucket];
    }

    void add(std::uint64_t value) noexcept;
    void merge(const BasicHistogramSnapshot& other) noexcept;
    // Counts recorded since `earlier` (a snapshot of the same histogram taken before). The max is
    // the representative value of the highest non-empty bucket of the difference.
    [[nodiscard]] BasicHistogramSnapshot since(
        const BasicHistogramSnapshot& earlier) const noexcept;

    // The smallest bucket value v such that at least q of all values are <= v (nearest rank).
    [[nodiscard]] std::uint64_t quantile(double q) const noexcept;
    // The value of the sample of this rank (1 = the smallest; clamped to 1..count), as
    // quantile() reports it. 0 when empty.
    [[nodiscard]] std::uint64_t value_at_rank(std::uint64_t rank) const noexcept;
    // A 95 % confidence interval for the q-quantile from the order statistics: the samples of
    // ranks floor(nq - 1.96 s) and ceil(nq + 1.96 s) + 1, s = sqrt(n q (1 - q)) (Le Boudec,
    // Performance Evaluation, th. 2.1; Lancet). No assumption about the distribution. An end whose
    // rank falls outside the sample is unknown: that many samples cannot bound it on that side.
    struct Interval {
        std::optional<std::uint64_t> lower;
        std::optional<std::uint64_t> upper;
    };
    [[nodiscard]] Interval quantile_interval(double q) const noexcept;
    [[nodiscard]] Percentiles percentiles() const noexcept;
    // Values in buckets up to and including the one holding `value`: the values <= `value`,
    // give or take the 0.8 % width of that bucket. For cumulative (Prometheus) buckets.
    [[nodiscard]] std::uint64_t count_up_to(std::uint64_t value) const noexcept;
    // The sum of all values, each taken as its bucket's value (within 0.4 %).
    [[nodiscard]] double approx_sum() const noexcept;
    [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
    [[nodiscard]] std::uint64_t max() const noexcept { return max_; }

  private:
    friend class BasicHistogram<SubBits>;
    std::array<std::uint64_t, kBuckets> counts_{};
    std::uint64_t count_ = 0;
    std::uint64_t max_ = 0;
};

template <int SubBits>
class BasicHistogram {
  public:
    using Snapshot = BasicHistogramSnapshot<SubBits>;
    // Safe from any number of threads at once.
    void record(std::uint64_t value) noexcept {
        counts_[Snapshot::bucket_of(value)].fetch_add(1, std::memory_order_relaxed);
        std::uint64_t seen = max_.load(std::memory_order_relaxed);
        while (value > seen &&
               !max_.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
        }
    }
    // Safe from any thread.
    void snapshot_into(Snapshot& out) const noexcept;

  private:
    std::array<std::atomic<std::uint64_t>, Snapshot::kBuckets> counts_{};
    std::atomic<std::uint64_t> max_{0};
};

using HistogramSnapshot = BasicHistogramSnapshot<7>;
using Histogram = BasicHistogram<7>;
using CoarseHistogramSnapshot = BasicHistogramSnapshot<4>;
using CoarseHistogram = BasicHistogram<4>;
extern template class BasicHistogramSnapshot<7>;
extern template class BasicHistogramSnapshot<4>;
extern template class BasicHistogram<7>;
extern template class BasicHistogram<4>;

}  // namespace evfly
