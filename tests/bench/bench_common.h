// Shared by the benchmark programs in tests/bench/ (the raw-syscall floor and the libuv and
// Boost.Asio peers): option parsing, exact latency percentiles, resource usage, and the one JSON
// object each program prints on stdout for tests/bench/run to collect.
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

inline std::int64_t now_ns(clockid_t clock = CLOCK_MONOTONIC) noexcept {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline timespec to_timespec(std::int64_t ns) noexcept {
    return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// Sleeps until an absolute CLOCK_MONOTONIC time (steady_clock is the same clock on Linux).
inline void sleep_until_ns(std::int64_t deadline) noexcept {
    const timespec ts = to_timespec(deadline);
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) != 0) {
    }
}

[[noreturn]] inline void die(const char* what) {
    std::fprintf(stderr, "bench: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

// --key=value options; every program takes the same set and ignores what it does not use.
struct Options {
    std::string workload;  // persistent | per-event | paced | overload | timer | idle | channels
    int producers = 2;
    int consumers = 2;
    int max_events = 64;
    double seconds = 1.0;
    std::uint64_t rate = 0;              // per producer, events/s; 0 = flat out
    std::int64_t period_ns = 1'000'000;  // timer workload
    int timers = 8;
    int channels = 10'000;
    int max_in_flight = 1024;
    std::int64_t work_ns = 0;  // overload workload: a consumer's busy time per event
    bool pipe = false;         // the floor's pipe variant
    bool create = false;       // per-event: eventfd(1) born fired, no write (4 syscalls)
    bool oneshot =
        false;  // the floor's persistent workload with EPOLLONESHOT and a re-arm per read
    // Placement, as evflyd's `cpus`, `policy`, `priority` and `spin` (the floor only): a cpuset
    // list per group, one CPU per thread round-robin; the consumers' policy; after work, a
    // consumer polls epoll_wait(0) for up to spin_ns before it blocks again.
    std::string producer_cpus;
    std::string consumer_cpus;
    std::string consumer_policy;  // "" (inherited), other, batch, idle, fifo, rr
    int consumer_priority = 0;
    std::int64_t spin_ns = 0;
    bool mlockall = false;
    int cpu_dma_latency_us = -1;  // held while running (/dev/cpu_dma_latency), as cyclictest does
};

// "0-3,6" as a list of CPUs, in order.
inline std::vector<int> parse_cpus(const std::string& list) {
    std::vector<int> cpus;
    std::size_t at = 0;
    while (at < list.size()) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        const std::string part = list.substr(at, comma - at);
        const std::size_t dash = part.find('-');
        const int lo = std::stoi(part.substr(0, dash));
        const int hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
        for (int c = lo; c <= hi; ++c) cpus.push_back(c);
        at = comma + 1;
    }
    return cpus;
}

[[noreturn]] inline void die(const char* what);

// Pins the calling thread, thread `index` of its group, to one CPU of `list` (round-robin, as
// evflyd does); nothing when `list` is empty.
inline void pin(const std::string& list, int index) {
    if (list.empty()) return;
    const std::vector<int> cpus = parse_cpus(list);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<std::size_t>(cpus[static_cast<std::size_t>(index) % cpus.size()]), &set);
    if (::sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

inline void set_policy(const std::string& policy, int priority) {
    if (policy.empty()) return;
    const int p = policy == "fifo"    ? SCHED_FIFO
                  : policy == "rr"    ? SCHED_RR
                  : policy == "batch" ? SCHED_BATCH
                  : policy == "idle"  ? SCHED_IDLE
                                      : SCHED_OTHER;
    sched_param param{};
    param.sched_priority = (p == SCHED_FIFO || p == SCHED_RR) ? priority : 0;
    if (::sched_setscheduler(0, p, &param) != 0) die("sched_setscheduler");
}

inline Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        const auto eq = arg.find('=');
        if (arg.substr(0, 2) != "--") {
            std::fprintf(stderr, "bench: unexpected argument '%s'\n", argv[i]);
            std::exit(64);
        }
        const std::string key(arg.substr(2, eq == std::string_view::npos ? arg.npos : eq - 2));
        const std::string value =
            eq == std::string_view::npos ? "" : std::string(arg.substr(eq + 1));
        if (key == "workload")
            o.workload = value;
        else if (key == "producers")
            o.producers = std::stoi(value);
        else if (key == "consumers")
            o.consumers = std::stoi(value);
        else if (key == "max-events")
            o.max_events = std::stoi(value);
        else if (key == "seconds")
            o.seconds = std::stod(value);
        else if (key == "rate")
            o.rate = std::stoull(value);
        else if (key == "period-us")
            o.period_ns = std::stoll(value) * 1000;
        else if (key == "timers")
            o.timers = std::stoi(value);
        else if (key == "channels")
            o.channels = std::stoi(value);
        else if (key == "max-in-flight")
            o.max_in_flight = std::stoi(value);
        else if (key == "work-us")
            o.work_ns = std::stoll(value) * 1000;
        else if (key == "oneshot")
            o.oneshot = true;
        else if (key == "pipe")
            o.pipe = true;
        else if (key == "create")
            o.create = true;
        else if (key == "producer-cpus")
            o.producer_cpus = value;
        else if (key == "consumer-cpus")
            o.consumer_cpus = value;
        else if (key == "consumer-policy")
            o.consumer_policy = value;
        else if (key == "consumer-priority")
            o.consumer_priority = std::stoi(value);
        else if (key == "spin-us")
            o.spin_ns = std::stoll(value) * 1000;
        else if (key == "mlockall")
            o.mlockall = true;
        else if (key == "cpu-dma-latency-us")
            o.cpu_dma_latency_us = std::stoi(value);
        else {
            std::fprintf(stderr, "bench: unknown option '--%s'\n", key.c_str());
            std::exit(64);
        }
    }
    if (o.workload.empty()) {
        std::fprintf(stderr, "bench: --workload= is required\n");
        std::exit(64);
    }
    if (o.mlockall && ::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) die("mlockall");
    if (o.cpu_dma_latency_us >= 0) {
        // Kept open (and so in force) until the process exits.
        const int fd = ::open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
        const std::int32_t us = o.cpu_dma_latency_us;
        if (fd < 0 || ::write(fd, &us, sizeof us) != sizeof us) die("/dev/cpu_dma_latency");
    }
    return o;
}

// Latency samples of one thread, kept exactly: sorted once at the end.
class Samples {
  public:
    Samples() { values_.reserve(1 << 16); }
    void add(std::int64_t ns) { values_.push_back(ns > 0 ? static_cast<std::uint64_t>(ns) : 0); }
    void merge(const Samples& other) {
        values_.insert(values_.end(), other.values_.begin(), other.values_.end());
    }
    [[nodiscard]] std::size_t size() const { return values_.size(); }
    // Nearest-rank percentile; q in [0, 1].
    [[nodiscard]] std::uint64_t at(double q) {
        if (values_.empty()) return 0;
        if (!sorted_) std::sort(values_.begin(), values_.end()), sorted_ = true;
        auto rank = static_cast<std::size_t>(q * static_cast<double>(values_.size()));
        return values_[std::min(rank, values_.size() - 1)];
    }

  private:
    std::vector<std::uint64_t> values_;
    bool sorted_ = false;
};

// Builds the single-line JSON result: {"k": v, ...}. Values are numbers or plain strings.
class Result {
  public:
    Result& num(const char* key, double value) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.6g", value);
        return raw(key, buf);
    }
    Result& str(const char* key, const std::string& value) { return raw(key, "\"" + value + "\""); }
    Result& latency(const char* key, Samples& s) {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "{\"count\": %zu, \"p50\": %llu, \"p90\": %llu, \"p99\": %llu, "
                      "\"p999\": %llu, \"max\": %llu}",
                      s.size(), static_cast<unsigned long long>(s.at(0.50)),
                      static_cast<unsigned long long>(s.at(0.90)),
                      static_cast<unsigned long long>(s.at(0.99)),
                      static_cast<unsigned long long>(s.at(0.999)),
                      static_cast<unsigned long long>(s.at(1.0)));
        return raw(key, buf);
    }
    // CPU and peak RSS of the whole process so far.
    Result& resources() {
        rusage u{};
        ::getrusage(RUSAGE_SELF, &u);
        num("cpu_s", static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6);
        // VmHWM: ru_maxrss would include the peak of the parent that exec'd us.
        double hwm = static_cast<double>(u.ru_maxrss);
        if (FILE* f = std::fopen("/proc/self/status", "r")) {
            char line[256];
            while (std::fgets(line, sizeof line, f) != nullptr)
                if (std::strncmp(line, "VmHWM:", 6) == 0) hwm = std::strtod(line + 6, nullptr);
            std::fclose(f);
        }
        return num("max_rss_kib", hwm);
    }
    void print() const { std::printf("{%s}\n", body_.c_str()); }

  private:
    Result& raw(const char* key, const std::string& value) {
        if (!body_.empty()) body_ += ", ";
        body_ += "\"" + std::string(key) + "\": " + value;
        return *this;
    }
    std::string body_;
};

// The part of every result that all programs share: totals over the run and merged latencies.
inline Result totals(double elapsed, std::uint64_t values, std::uint64_t reads, Samples& latency) {
    Result r;
    r.num("elapsed_s", elapsed)
        .num("values", static_cast<double>(values))
        .num("reads", static_cast<double>(reads))
        .num("values_per_s", static_cast<double>(values) / elapsed)
        .num("reads_per_s", static_cast<double>(reads) / elapsed);
    if (latency.size() > 0) r.latency("latency_ns", latency);
    return r;
}

// Absolute-deadline pacing of producer `index` of `count` at `rate` events/s; the producers'
// phases are spread evenly over one period (as evflyd spreads a producer's threads).
class Pacer {
  public:
    Pacer(std::uint64_t rate, std::int64_t begin, std::size_t index, std::size_t count)
        : period_(rate == 0 ? 0 : 1'000'000'000 / static_cast<std::int64_t>(rate)),
          due_(begin +
               period_ * static_cast<std::int64_t>(index) / static_cast<std::int64_t>(count)) {}
    [[nodiscard]] bool paced() const noexcept { return period_ != 0; }
    // Sleeps until the next deadline; returns at once when flat out.
    void wait() noexcept {
        if (period_ == 0) return;
        due_ += period_;
        sleep_until_ns(due_);
    }
    // When the fire just waited for was due: latency counts from here, as evflyd counts it, so
    // a late wake-up of the producer is in every system's numbers alike.
    [[nodiscard]] std::int64_t due() const noexcept { return due_; }

  private:
    std::int64_t period_;
    std::int64_t due_;
};

// Marks the oldest unread fire of a channel with its due time; the consumer takes the stamp
// after its read.
inline void stamp_if_unset(std::atomic<std::int64_t>& stamp, std::int64_t due) noexcept {
    std::int64_t expected = 0;
    stamp.compare_exchange_strong(expected, due, std::memory_order_relaxed);
}

inline void name_thread(const char* name) { ::pthread_setname_np(::pthread_self(), name); }

// Keeps a cache line to itself, so per-thread counters never share one.
template <typename T>
struct alignas(64) Padded {
    T value{};
};

}  // namespace bench
