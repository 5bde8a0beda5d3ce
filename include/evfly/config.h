// Config: evfly's whole configuration, loaded from one TOML file and validated strictly.
//
// Loading never stops at the first problem: every unknown key, wrong type, out-of-range value,
// bad duration, key of the wrong producer kind and duplicate name is collected, each with the
// file, line and dotted key it concerns. A Config that load_config() returns is valid.
#pragma once

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "evfly/duration.h"

namespace evfly {

enum class ProducerKind { eventfd, timerfd };
// per_event: a fresh eventfd per event; persistent: one eventfd per thread whose counts
// coalesce; semaphore: one EFD_SEMAPHORE eventfd per thread, each read one unit (a work queue).
enum class FdMode { per_event, persistent, semaphore };
// How a per-event producer fires: write (create, register, write; 5 syscalls in the fd's life)
// or create (create the eventfd already holding its value, register; 4 syscalls).
enum class FireMode { write, create };
// How a paced eventfd producer's events arrive: evenly spaced, as a Poisson process (exponential
// gaps at the rate), or `burst` at once every burst / rate.
enum class Arrival { paced, poisson, burst };
// Where a paced producer's schedule starts: spread (the tables of one rate and arrival take
// turns over the period, as the threads of one table do) or aligned (all at the start).
enum class Phase { spread, aligned };
// A handler's cost per event: `work` every time, or drawn from a distribution of mean `work`.
enum class WorkDist { fixed, exponential, lognormal, bimodal };
// What a handler does for its cost: burn CPU (cpu) or block (sleep, as an I/O-bound one does).
enum class WorkKind { cpu, sleep };
enum class LogFormat { json, text };
enum class LogSink { automatic, stderr_sink, journald, file };

// Scheduling policies, as sched(7) names them.
enum class SchedPolicy { other, batch, idle, fifo, rr };

// Where and how a group of threads runs (the consumer pool, or one producer's threads). Every
// field unset leaves the thread as it was started (inherited from evflyd).
struct Placement {
    // One CPU per thread, round-robin: thread i runs on cpus[i % cpus.size()]; empty: inherited.
    std::vector<int> cpus;
    std::optional<SchedPolicy> policy;
    int priority = 0;                  // fifo/rr: 1..99; others: 0
    std::optional<int> nice;           // other/batch/idle: -20..19
    std::optional<Nanos> timer_slack;  // PR_SET_TIMERSLACK
    [[nodiscard]] bool empty() const noexcept {
        return cpus.empty() && !policy && !nice && !timer_slack;
    }
    bool operator==(const Placement&) const = default;
};

struct ProducerConfig {
    std::string name;
    ProducerKind kind = ProducerKind::eventfd;
    std::uint32_t threads = 1;
    Nanos work{0};  // fixed: the time; exponential, lognormal: the mean; bimodal: the common time
    WorkDist work_dist = WorkDist::fixed;
    WorkKind work_kind = WorkKind::cpu;
    double work_sigma = 0;              // lognormal: sigma of ln(work), given or from work_p99
    Nanos work_p99{0};                  // lognormal: its p99, instead of work_sigma (0: not given)
    Nanos work_slow{0};                 // bimodal: the other time
    double work_slow_share = 0;         // bimodal: the share of events that take it (0..1)
    std::optional<std::uint64_t> seed;  // arrivals' generator; unset: drawn at start, reported
    // eventfd
    std::uint64_t rate = 1;  // events per second per thread; 0 = flat out
    Arrival arrival = Arrival::paced;
    std::uint32_t burst = 1;  // arrival = "burst": events at once
    Phase phase = Phase::spread;
    FdMode fd_mode = FdMode::per_event;
    std::uint32_t max_in_flight = 1024;
    FireMode fire = FireMode::write;
    // timerfd
    std::uint32_t timers = 1;
    Nanos initial = std::chrono::seconds(1);
    Nanos interval = std::chrono::seconds(3);
    clockid_t clock = CLOCK_MONOTONIC;
    Placement placement;

    bool operator==(const ProducerConfig&) const = default;
};

// A per-event eventfd producer: a fresh fd for every event.
[[nodiscard]] inline bool is_per_event(const ProducerConfig& p) noexcept {
    return p.kind == ProducerKind::eventfd && p.fd_mode == FdMode::per_event;
}

// Registrations (slots) evflyd can hold at once, over every producer: each per-event fd in
// flight, each timer, each persistent or semaphore thread.
inline constexpr std::uint64_t kMaxSlots = std::uint64_t{1} << 24;  // 16M
// Slots one thread of `p` may hold at most, and all its threads together.
[[nodiscard]] inline std::uint32_t slots_per_thread(const ProducerConfig& p) noexcept {
    if (p.kind == ProducerKind::timerfd) return p.timers;
    return p.fd_mode == FdMode::per_event ? p.max_in_flight : 1;
}
[[nodiscard]] inline std::uint64_t slots_needed(const ProducerConfig& p) noexcept {
    return std::uint64_t{slots_per_thread(p)} * p.threads;
}

struct Config {
    std::string source;  // where it came from: a path or "<embedded default>"
    struct Daemon {
        std::uint32_t consumers = 4;
        std::uint32_t max_events = 64;
        Nanos stats_interval = std::chrono::seconds(10);
        Nanos shutdown_timeout = std::chrono::seconds(5);
        // An event in flight longer than this is a stall (logged, counted); 0 turns it off.
        Nanos stall_after = std::chrono::seconds(1);
        // Latency recorded this long after the start (or a reload that changes producers) is
        // left out of the histograms.
        Nanos warmup{0};
        // After handling work, a consumer polls the epoll without blocking for this long before
        // it blocks again (lower wake-up latency for CPU); 0: never spins.
        Nanos spin{0};
        Placement placement;    // of the consumer pool
        bool mlockall = false;  // lock the process's memory (mlockall MCL_CURRENT|MCL_FUTURE)
        // The wake-up latency the CPUs may take, asked of the kernel while evflyd runs (PM QoS,
        // /dev/cpu_dma_latency; whole microseconds): "0us" keeps idle CPUs out of deep sleep
        // states, as cyclictest does by default. Unset: not asked.
        std::optional<Nanos> cpu_dma_latency;
        bool operator==(const Daemon&) const = default;
    } daemon;
    struct Log {
        std::string level = "info";
        LogFormat format = LogFormat::json;
        LogSink sink = LogSink::automatic;
        std::string file;
        bool operator==(const Log&) const = default;
    } log;
    struct Metrics {
        std::string textfile;  // node_exporter textfile collector file; empty: none
        std::string listen;    // the /metrics endpoint's address, "127.0.0.1:9464"; empty: none
        bool operator==(const Metrics&) const = default;
    } metrics;
    // [explain]: outliers, and why each was late. Off unless `over` is set.
    struct Explain {
        // An outlier is a latency sample above a fixed time (`over`) or above a percentile of
        // the latency measured so far (`over_quantile`, e.g. 0.999 for "p99.9"). Neither: off.
        std::optional<Nanos> over;
        std::optional<double> over_quantile;
        std::optional<Nanos> log_over;  // outliers above this log a line; unset: every outlier
        std::uint32_t worst = 32;       // the slowest outliers the summary keeps, explained
        enum class Trace { off, on, required };
        Trace trace = Trace::off;                     // kernel tracing of outliers (tracefs)
        std::uint32_t trace_buffer_kb = 4096;         // per CPU
        Nanos trace_every = std::chrono::seconds(1);  // at most one analysis per this
        [[nodiscard]] bool enabled() const noexcept { return over || over_quantile; }
        bool operator==(const Explain&) const = default;
    } explain;
    // [slo]: limits checked at the stop; a violation is logged and evflyd exits with its own
    // code. Latency limits by key (eventfd_p99, timerfd_max, eventfd_delivery_p50, ...), count
    // limits by key (max_lost, max_skipped, max_late, max_stalls, max_overruns,
    // max_clock_jumps, max_drained_at_stop). Empty: no gate.
    struct Slo {
        std::map<std::string, Nanos> latency;
        std::map<std::string, std::uint64_t> counts;
        // A run whose numbers drifted (stationarity.h) passes the gate all the same.
        bool allow_non_stationary = false;
        [[nodiscard]] bool empty() const noexcept { return latency.empty() && counts.empty(); }
        bool operator==(const Slo&) const = default;
    } slo;
    std::vector<ProducerConfig> producers;

    bool operator==(const Config&) const = default;
};

struct ConfigIssue {
    std::string file;
    std::uint32_t line = 0;  // 0: the file as a whole
    std::string key;         // dotted, e.g. "producer[1].rate"; empty for file-level problems
    std::string message;
    [[nodiscard]] std::string to_string() const;
};

// Thrown by load_config/parse_config with every problem found.
class ConfigError : public std::runtime_error {
  public:
    explicit ConfigError(std::vector<ConfigIssue> issues);
    [[nodiscard]] const std::vector<ConfigIssue>& issues() const noexcept { return issues_; }

  private:
    std::vector<ConfigIssue> issues_;
};

// Reads and validates a config file. Refuses anything but a regular file (a directory or a FIFO
// never blocks the caller) and files over kMaxConfigBytes.
Config load_config(const std::filesystem::path& path);
// Validates TOML text; `name` is used in messages.
Config parse_config(const std::string& text, const std::string& name);

inline constexpr std::size_t kMaxConfigBytes = 1 << 20;
inline constexpr const char* kDefaultConfigPath = "/etc/evfly/evfly.toml";
inline constexpr const char* kEmbeddedName = "<embedded default>";

// The classic demo: two per-event eventfd threads at 1/s, two timerfd threads (1 s, then every
// 3 s), four consumers.
const std::string& embedded_default_config();

// The effective config as TOML, every default filled in; parse_config() accepts it unchanged.
std::string to_toml(const Config& config);
// [explain] over as the config writes it: "500us" or "p99.9" ("" when off).
std::string format_over(const Config::Explain& explain);

const char* to_string(ProducerKind kind);
const char* to_string(FdMode mode);
const char* to_string(Arrival arrival);
const char* to_string(Phase phase);
const char* to_string(WorkDist dist);
const char* to_string(WorkKind kind);
const char* to_string(FireMode mode);
const char* to_string(SchedPolicy policy);
// "0-3,6" -> {0,1,2,3,6}; nullopt and a reason when it is not a CPU list.
std::optional<std::vector<int>> parse_cpu_list(const std::string& text, std::string* why);
std::string format_cpu_list(const std::vector<int>& cpus);
const char* clock_name(clockid_t clock);

// The [slo] keys: latency kinds (eventfd, eventfd_delivery, timerfd) times the statistics
// (p50, p90, p99, p999, max), and the count limits.
const std::vector<std::string>& slo_latency_keys();
const std::vector<std::string>& slo_count_keys();

}  // namespace evfly
