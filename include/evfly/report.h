// Report: evfly's accounting at one instant: what each producer fired and wrote, what the
// consumers read and dispatched, and the latency histograms. The engine fills one on demand
// (stats lines, the final summary); everything derived (totals, lost) is computed here.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/histogram.h"

namespace evfly {

// A producer's counts. each() is the one list of them: a new count is a member and a line there,
// and accumulating, totals and the summary follow.
struct ProducerCounts {
    std::uint64_t fired = 0;          // eventfd: writes; timerfd: expirations (the kernel fires)
    std::uint64_t value_written = 0;  // sum of the values written (timerfd: expirations)
    std::uint64_t value_read = 0;     // sum of the values consumers read (timerfd: expirations)
    // Values the producer's stop read (evflyd's stop, or a reload that removed or retuned it)
    // that no consumer had read: counted, never handled and without a latency sample.
    std::uint64_t drained_at_stop = 0;
    std::uint64_t expirations = 0;    // timerfd only: read by consumers or drained at the stop
    std::uint64_t overruns = 0;       // timerfd: expirations beyond the first in one read
    std::uint64_t write_retries = 0;  // eventfd writes that met a full counter (EAGAIN)
    std::uint64_t fd_exhaustion = 0;  // episodes of EMFILE/ENFILE when creating an fd
    std::uint64_t errors = 0;         // other failed syscalls (logged)
    // Schedule accounting. eventfd: fires the schedule called for so far (flat out: = fired),
    // fires more than one period after their due time, and fires given up on (a catch-up of more
    // than 1 s, or still owed at the stop); due == fired + skipped once the producer stopped.
    // timerfd: the kernel keeps the schedule, so due = fired = expirations, and its shortfall
    // shows as overruns and lateness.
    std::uint64_t due = 0;
    std::uint64_t late = 0;
    std::uint64_t skipped = 0;
    std::uint64_t stalls = 0;       // episodes with an event in flight longer than stall_after
    std::uint64_t clock_jumps = 0;  // timerfd (realtime): reads that failed with ECANCELED

    // Calls f(name, a.count, b.count) for every count of `a` and `b` (ProducerCounts or derived
    // from it), with its name in the summary, in the summary's order.
    template <typename A, typename B, typename F>
    static void each(A& a, B& b, F&& f) {
        f("fired", a.fired, b.fired);
        f("value_written", a.value_written, b.value_written);
        f("value_read", a.value_read, b.value_read);
        f("drained_at_stop", a.drained_at_stop, b.drained_at_stop);
        f("expirations", a.expirations, b.expirations);
        f("overruns", a.overruns, b.overruns);
        f("write_retries", a.write_retries, b.write_retries);
        f("fd_exhaustion", a.fd_exhaustion, b.fd_exhaustion);
        f("errors", a.errors, b.errors);
        f("due", a.due, b.due);
        f("late", a.late, b.late);
        f("skipped", a.skipped, b.skipped);
        f("stalls", a.stalls, b.stalls);
        f("clock_jumps", a.clock_jumps, b.clock_jumps);
    }
    void add(const ProducerCounts& other) noexcept {
        each(*this, other,
             [](const char*, std::uint64_t& into, std::uint64_t more) { into += more; });
    }
    // Scheduled fires neither fired nor skipped yet: the producer is this far behind.
    [[nodiscard]] std::uint64_t backlog() const noexcept {
        return due > fired + skipped ? due - fired - skipped : 0;
    }
};

struct ProducerReport : ProducerCounts {
    std::string name;
    ProducerKind kind = ProducerKind::eventfd;
    FdMode fd_mode = FdMode::per_event;
    std::uint32_t threads = 0;
    std::uint64_t rate = 0;
    Arrival arrival = Arrival::paced;
    std::uint64_t seed = 0;  // of its arrivals: the config's, or the one drawn at its start
    WorkDist work_dist = WorkDist::fixed;
    WorkKind work_kind = WorkKind::cpu;
};

// The consumer pool's counts, as plain numbers (PoolCounts) or as the counters a consumer keeps
// (PoolCountsOf<Counter>). each() is the one list of them.
template <typename T>
struct PoolCountsOf {
    T events_dispatched{};  // epoll events handed to a handler
    T epoll_wakeups{};      // consumer epoll_wait returns that brought work
    T epoll_returns{};      // every blocking consumer epoll_wait return (the stop's too)
    T spin_polls{};         // non-blocking epoll_wait calls while spinning (daemon.spin)
    T stale_events{};       // events for a registration retired meanwhile (a reload, the stop)
    T consumer_errors{};    // failed reads / epoll_ctl calls in consumers (logged)
    T handler_errors{};     // exceptions out of event handlers, caught (logged)
    // One sample in 16, consumers look at whether any consumer was parked when it was written
    // (a timer: when it expired): the share that found every consumer busy, beside Erlang C.
    T arrival_probes{};
    T arrivals_found_all_busy{};

    // Calls f(name, a.count, b.count) for every count of `a` and `b`, with its summary name.
    template <typename A, typename B, typename F>
    static void each(A& a, B& b, F&& f) {
        f("events_dispatched", a.events_dispatched, b.events_dispatched);
        f("epoll_wakeups", a.epoll_wakeups, b.epoll_wakeups);
        f("epoll_returns", a.epoll_returns, b.epoll_returns);
        f("spin_polls", a.spin_polls, b.spin_polls);
        f("stale_events", a.stale_events, b.stale_events);
        f("consumer_errors", a.consumer_errors, b.consumer_errors);
        f("handler_errors", a.handler_errors, b.handler_errors);
        f("arrival_probes", a.arrival_probes, b.arrival_probes);
        f("arrivals_found_all_busy", a.arrivals_found_all_busy, b.arrivals_found_all_busy);
    }
};
using PoolCounts = PoolCountsOf<std::uint64_t>;

// The oldest event in flight: a per-event fd not yet consumed, a persistent value not yet read,
// or a timer expiration not yet read.
struct InFlightAge {
    std::int64_t age_ns = 0;  // 0: nothing in flight
    std::string producer;
    int fd = -1;
};

// Every producer's counts added up.
struct Totals : ProducerCounts {
    // Written and never read by anyone: value_written - value_read - drained_at_stop; 0 after a
    // complete drain.
    std::int64_t lost = 0;
    // While running, what `lost` counts is in flight: written, not read yet (never below 0).
    [[nodiscard]] std::uint64_t in_flight() const noexcept {
        return lost > 0 ? static_cast<std::uint64_t>(lost) : 0;
    }
};

// Latency by where the hand-off ran, for one consumer CPU (the CPU a consumer read on; -1: not
// known): the eventfd samples whose fire ran on that CPU too (same-CPU) and the others
// (cross-CPU, a fire CPU that was not known included), and the lateness of the timer
// expirations read there (the kernel fires timers, so they have no fire CPU).
// An event's path in segments (ns, in coarse histograms). eventfd: producer (due -> written),
// wake_up (written -> the consumer's epoll_wait returned with it), batch (that return -> its turn
// in the consumer's batch) and handler (its turn -> the next event's turn or the batch's end: the
// read, the record and the modelled work). timerfd: wake_up (expiry -> return), batch, handler.
struct PathSegments {
    CoarseHistogramSnapshot eventfd_producer;
    CoarseHistogramSnapshot eventfd_wake_up;
    CoarseHistogramSnapshot eventfd_batch;
    CoarseHistogramSnapshot eventfd_handler;
    CoarseHistogramSnapshot timerfd_wake_up;
    CoarseHistogramSnapshot timerfd_batch;
    CoarseHistogramSnapshot timerfd_handler;

    // Calls f(kind, segment, a.histogram, b.histogram) for each: the one list of them.
    template <typename A, typename B, typename F>
    static void each(A& a, B& b, F&& f) {
        f("eventfd", "producer", a.eventfd_producer, b.eventfd_producer);
        f("eventfd", "wake_up", a.eventfd_wake_up, b.eventfd_wake_up);
        f("eventfd", "batch", a.eventfd_batch, b.eventfd_batch);
        f("eventfd", "handler", a.eventfd_handler, b.eventfd_handler);
        f("timerfd", "wake_up", a.timerfd_wake_up, b.timerfd_wake_up);
        f("timerfd", "batch", a.timerfd_batch, b.timerfd_batch);
        f("timerfd", "handler", a.timerfd_handler, b.timerfd_handler);
    }
    // The pool's service time: the handler segments of both kinds.
    [[nodiscard]] CoarseHistogramSnapshot service() const {
        CoarseHistogramSnapshot h = eventfd_handler;
        h.merge(timerfd_handler);
        return h;
    }
};

struct CpuLatency {
    int cpu = -1;
    HistogramSnapshot eventfd_same_cpu;    // due -> consumed, fired on this CPU
    HistogramSnapshot eventfd_cross_cpu;   // due -> consumed, fired on another CPU
    HistogramSnapshot delivery_same_cpu;   // written -> consumed, fired on this CPU
    HistogramSnapshot delivery_cross_cpu;  // written -> consumed, fired on another CPU
    HistogramSnapshot timerfd;             // lateness behind the due tick
    PathSegments segments;                 // the samples read on this CPU, in segments

    void merge(const CpuLatency& other) noexcept;
    [[nodiscard]] CpuLatency since(const CpuLatency& earlier) const noexcept;
    [[nodiscard]] std::uint64_t count() const noexcept {
        return eventfd_same_cpu.count() + eventfd_cross_cpu.count() + timerfd.count();
    }
};

// Every CPU's samples in one (its cpu is -1).
[[nodiscard]] CpuLatency total_of(const std::vector<CpuLatency>& cpus) noexcept;
// `more` added into `into`, CPU by CPU (both in CPU order, and so is the result).
void merge_by_cpu(std::vector<CpuLatency>& into, const std::vector<CpuLatency>& more);
// What `now` holds beyond `earlier` (an earlier view of the same samples), CPU by CPU; CPUs
// with nothing new are left out.
[[nodiscard]] std::vector<CpuLatency> since_by_cpu(const std::vector<CpuLatency>& now,
                                                   const std::vector<CpuLatency>& earlier);

// Why an outlier was late ([explain] in evfly.toml(5)): every consumer was busy when it became
// ready (queueing: the pool is too small for the load); a consumer was parked but ran late
// (wake_up: the host was slow to wake it); it waited behind others in one consumer's batch while
// another consumer was free (batch); handlers ahead of it ran beyond their work (handler); or it
// was fired late (producer: the producer was held up, or the process or host stopped).
enum class Cause : std::uint8_t { queueing, wake_up, batch, handler, producer };
inline constexpr std::size_t kCauses = 5;
const char* to_string(Cause cause) noexcept;

// One outlier: a sample above [explain] over, its path in segments and its cause. Times are
// CLOCK_MONOTONIC ns (a timer's expiry is converted to it).
struct Outlier {
    std::uint64_t id = 0;  // in the order found, from 1
    std::string producer;
    ProducerKind kind = ProducerKind::eventfd;
    std::uint32_t consumer = 0;
    int consumer_tid = 0;
    int cpu = -1;       // the CPU it was read on
    int park_cpu = -1;  // the CPU its consumer was on when it parked in epoll_wait
    int fire_cpu = -1;  // the CPU it was fired on (eventfd; -1 for timers)
    std::int64_t due_ns = 0;
    std::int64_t written_ns = 0;   // eventfd: the write; timerfd: the expiry
    std::int64_t returned_ns = 0;  // its consumer's epoll_wait returned with it
    std::int64_t turn_ns = 0;      // its turn in that batch began
    std::int64_t read_ns = 0;
    std::int64_t handler_end_ns = 0;
    std::int64_t latency_ns = 0;  // due -> read
    std::int64_t producer_ns = 0;
    std::int64_t wake_up_ns = 0;
    std::int64_t batch_ns = 0;
    std::int64_t handler_ns = 0;
    std::int64_t overrun_ahead_ns = 0;  // what handlers ahead of it in its batch ran beyond work
    std::uint32_t parked_at_write = 0;  // consumers parked in epoll_wait when it was written
    std::uint32_t parked_in_batch = 0;  // other consumers parked while it waited in its batch
    Cause cause = Cause::queueing;
    std::string trace;  // the kernel's account (JSON), when traced; "" otherwise
};

// Tier 2: kernel tracing of outliers.
struct TraceStatus {
    std::string state = "off";        // off, on, unavailable
    std::string reason;               // why it is unavailable
    std::uint64_t analyses = 0;       // outliers explained from the trace
    std::uint64_t skipped = 0;        // outliers not traced (rate limit, busy)
    std::uint64_t missed_events = 0;  // trace events the ring lost
};

struct ExplainReport {
    bool enabled = false;
    std::string over;  // as configured: "500us" or "p99.9"
    // The thresholds in force (a percentile's, once enough samples are known; 0 before).
    std::int64_t over_eventfd_ns = 0;
    std::int64_t over_timerfd_ns = 0;
    std::uint64_t outliers = 0;
    std::array<std::uint64_t, kCauses> causes{};
    std::vector<Outlier> worst;  // the slowest, slowest first
    TraceStatus trace;
};

struct Report : PoolCounts {
    std::uint32_t consumers = 0;
    std::vector<ProducerReport> producers;
    HistogramSnapshot eventfd_latency;   // due (as the schedule called for it) to consumed, ns
    HistogramSnapshot eventfd_delivery;  // written to consumed, ns
    HistogramSnapshot timerfd_latency;   // lateness behind the due tick, ns
    // The same samples by consumer CPU, in CPU order: the histograms above are their sums.
    std::vector<CpuLatency> by_cpu;
    InFlightAge oldest_in_flight;
    ExplainReport explain;
    // Latency samples left out of the histograms above because they were recorded during a
    // warm-up (daemon.warmup after the start or a reload that changed producers).
    std::uint64_t warmup_excluded_eventfd = 0;
    std::uint64_t warmup_excluded_timerfd = 0;

    [[nodiscard]] Totals totals() const noexcept;
    // Every latency sample: eventfd latency and timerfd lateness, both from the due time.
    [[nodiscard]] HistogramSnapshot latency() const {
        HistogramSnapshot h = eventfd_latency;
        h.merge(timerfd_latency);
        return h;
    }
};

// One stats interval, as the summary's time series keeps it.
struct IntervalStats {
    double t_s = 0;  // end of the interval, seconds since the start
    double interval_s = 0;
    double events_per_s = 0;
    double values_per_s = 0;
    double expirations_per_s = 0;
    double due_per_s = 0;
    std::uint64_t late = 0;
    std::uint64_t skipped = 0;
    Percentiles eventfd;
    Percentiles eventfd_delivery;
    Percentiles timerfd;
    std::int64_t in_flight = 0;
    std::int64_t oldest_in_flight_ns = 0;
    std::uint32_t consumers = 0;
    std::uint64_t outliers = 0;
    std::array<std::uint64_t, kCauses> outliers_by_cause{};
    // What one event cost a consumer in the interval (the handler segment's mean, both kinds);
    // 0 without samples.
    double service_mean_ns = 0;
    std::uint64_t service_count = 0;
};

}  // namespace evfly
