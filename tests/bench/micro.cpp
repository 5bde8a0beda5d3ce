// evfly_micro: Google Benchmark microbenchmarks of the pieces a consumer runs per event.
#include <benchmark/benchmark.h>
#include <spdlog/details/log_msg.h>

#include <random>
#include <vector>

#include "evfly/histogram.h"
#include "evfly/log.h"
#include "log_format.h"
#include "slots.h"

namespace {

// Latencies spread over 1 µs..100 ms, as a consumer sees them.
std::vector<std::uint64_t> sample_latencies() {
    std::mt19937_64 rng(42);
    std::lognormal_distribution<double> dist(10.0, 2.0);
    std::vector<std::uint64_t> v(4096);
    for (auto& x : v) x = static_cast<std::uint64_t>(dist(rng));
    return v;
}

void BM_HistogramRecord(benchmark::State& state) {
    static evfly::Histogram h;  // 32 KiB of counters: static, not on the benchmark's stack
    const auto values = sample_latencies();
    std::size_t i = 0;
    for (auto _ : state) {
        h.record(values[i++ & 4095]);
    }
    benchmark::ClobberMemory();
}
BENCHMARK(BM_HistogramRecord);

void BM_HistogramBucketOf(benchmark::State& state) {
    const auto values = sample_latencies();
    std::size_t i = 0;
    for (auto _ : state) {
        benchmark::DoNotOptimize(evfly::HistogramSnapshot::bucket_of(values[i++ & 4095]));
    }
}
BENCHMARK(BM_HistogramBucketOf);

// The accounting a consumer does per event: single-writer counters in the slot it holds.
void BM_AccountingPerEvent(benchmark::State& state) {
    evfly::detail::Slot slot;
    for (auto _ : state) {
        slot.value_read.add(1);
    }
    benchmark::DoNotOptimize(slot.value_read.get());
}
BENCHMARK(BM_AccountingPerEvent);

// The same with a shared atomic read-modify-write, the design evfly avoids, for comparison.
void BM_AccountingSharedAtomic(benchmark::State& state) {
    static std::atomic<std::uint64_t> value{0};
    static std::atomic<std::uint64_t> events{0};
    for (auto _ : state) {
        value.fetch_add(1, std::memory_order_relaxed);
        events.fetch_add(1, std::memory_order_relaxed);
    }
}
BENCHMARK(BM_AccountingSharedAtomic)->Threads(1)->Threads(2);

// A debug "event" line: encoding on the consumer, then formatting on the logger thread.
void BM_LogEncodeEvent(benchmark::State& state) {
    for (auto _ : state) {
        std::string payload = evfly::log::encode("event", {{"consumer", 3},
                                                           {"producer", "notify"},
                                                           {"kind", "eventfd"},
                                                           {"fd", 17},
                                                           {"value", std::uint64_t{1}},
                                                           {"latency_us", 12.5}});
        benchmark::DoNotOptimize(payload);
    }
}
BENCHMARK(BM_LogEncodeEvent);

void format_event(benchmark::State& state, evfly::LogFormat format) {
    const auto formatter = evfly::log::make_formatter(format);
    const std::string payload = evfly::log::encode("event", {{"consumer", 3},
                                                             {"producer", "notify"},
                                                             {"kind", "eventfd"},
                                                             {"fd", 17},
                                                             {"value", std::uint64_t{1}},
                                                             {"latency_us", 12.5}});
    const spdlog::details::log_msg msg("evflyd", spdlog::level::debug, payload);
    spdlog::memory_buf_t out;
    for (auto _ : state) {
        out.clear();
        formatter->format(msg, out);
        benchmark::DoNotOptimize(out.data());
    }
}
void BM_LogFormatJson(benchmark::State& state) { format_event(state, evfly::LogFormat::json); }
void BM_LogFormatText(benchmark::State& state) { format_event(state, evfly::LogFormat::text); }
BENCHMARK(BM_LogFormatJson);
BENCHMARK(BM_LogFormatText);

// The check every event makes before logging at debug when the level is info.
void BM_LogEnabledCheck(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(evfly::log::enabled(evfly::log::Level::debug));
}
BENCHMARK(BM_LogEnabledCheck);

}  // namespace

BENCHMARK_MAIN();
