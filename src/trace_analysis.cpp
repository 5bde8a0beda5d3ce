#include "trace_analysis.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

namespace evfly::detail {
namespace {

using Type = TraceEvent::Type;

// The scheduler and the wake-up are recorded on CPUs whose clocks agree only to within a little;
// a wake-up recorded this much before the event's own stamp still counts as its.
constexpr std::int64_t kSkewNs = 20'000;
// The timeline covers this much before the event was due, and at most this many intervals.
constexpr std::int64_t kTimelineBeforeNs = 1'000'000;
constexpr std::size_t kMaxTimeline = 256;
constexpr std::size_t kMaxTasks = 8;

struct Running {
    int pid = -1;  // -1: not known yet
    std::string comm;
    std::int64_t since = 0;
};

// Adds `ns` to the entry of (comm, pid) in `into`.
void add_time(std::map<std::pair<int, std::string>, std::int64_t>& into, int pid,
              const std::string& comm, std::int64_t ns) {
    if (ns > 0) into[{pid, comm}] += ns;
}

std::vector<TaskTime> largest_first(const std::map<std::pair<int, std::string>, std::int64_t>& m) {
    std::vector<TaskTime> out;
    out.reserve(m.size());
    for (const auto& [key, ns] : m) out.push_back({key.second, key.first, ns});
    std::sort(out.begin(), out.end(),
              [](const TaskTime& a, const TaskTime& b) { return a.ns > b.ns; });
    if (out.size() > kMaxTasks) out.resize(kMaxTasks);
    return out;
}

const char* softirq_name(int vec) {
    static constexpr const char* kNames[] = {"HI",       "TIMER",   "NET_TX", "NET_RX",  "BLOCK",
                                             "IRQ_POLL", "TASKLET", "SCHED",  "HRTIMER", "RCU"};
    return vec >= 0 && vec < 10 ? kNames[vec] : "?";
}

// Net time of hard IRQs and softirqs on `cpu` within [from, to].
void interrupts_on(const std::vector<TraceEvent>& events, int cpu, std::int64_t from,
                   std::int64_t to, TraceExplanation& e) {
    std::map<std::pair<int, std::string>, std::int64_t> irqs;
    std::map<std::pair<int, std::string>, std::int64_t> softirqs;
    std::int64_t irq_start = -1;
    std::string irq_name;
    int irq = 0;
    std::int64_t soft_start = -1;
    std::int64_t soft_hard = 0;  // hard-IRQ time inside the softirq in hand
    int vec = 0;
    for (const TraceEvent& ev : events) {
        if (ev.cpu != cpu || ev.ts > to) continue;
        switch (ev.type) {
            case Type::irq_entry:
                irq_start = ev.ts;
                irq_name = ev.comm;
                irq = ev.irq;
                break;
            case Type::irq_exit:
                if (irq_start >= 0) {
                    const std::int64_t ns = ev.ts - std::max(irq_start, from);
                    if (ev.ts >= from) {
                        add_time(irqs, irq, irq_name.empty() ? std::to_string(irq) : irq_name, ns);
                        if (soft_start >= 0) soft_hard += ns;
                    }
                }
                irq_start = -1;
                break;
            case Type::softirq_entry:
                soft_start = ev.ts;
                soft_hard = 0;
                vec = ev.irq;
                break;
            case Type::softirq_exit:
                if (soft_start >= 0 && ev.ts >= from)
                    add_time(softirqs, vec, softirq_name(vec),
                             ev.ts - std::max(soft_start, from) - soft_hard);
                soft_start = -1;
                break;
            default:
                break;
        }
    }
    e.irqs = largest_first(irqs);
    e.softirqs = largest_first(softirqs);
}

}  // namespace

TraceExplanation analyze_trace(const std::vector<TraceEvent>& events, const Outlier& o) {
    TraceExplanation e;
    const int tid = o.consumer_tid;
    // What each CPU runs, as the switches say, up to each event.
    std::map<int, Running> running;
    const auto current = [&](int cpu) -> const Running& { return running[cpu]; };
    std::map<std::pair<int, std::string>, std::int64_t> instead;
    std::map<std::pair<int, std::string>, std::int64_t> preempters;
    std::vector<TraceInterval> timeline;
    std::set<int> timeline_cpus{o.cpu, o.park_cpu, o.fire_cpu};
    const std::int64_t window_from = o.due_ns - kTimelineBeforeNs;
    const std::int64_t window_to = o.handler_end_ns;
    // Every task's name as the trace gives it, for a waker that ran before the window.
    std::map<int, std::string> comms;
    for (const TraceEvent& ev : events) {
        if (ev.type == Type::sched_switch) {
            comms[ev.prev_pid] = ev.prev_comm;
            comms[ev.next_pid] = ev.comm;
        } else if (ev.type == Type::sched_waking || ev.type == Type::sched_wakeup) {
            comms[ev.pid] = ev.comm;
        }
    }
    bool woken = false;
    bool waiting_to_run = false;  // woken, not running yet
    bool preempted = false;       // preempted inside its handler
    std::int64_t preempted_at = 0;
    for (const TraceEvent& ev : events) {
        switch (ev.type) {
            case Type::sched_waking:
                // The consumer's last wake-up before it returned with the event: one after the
                // event was written, or an earlier one it was still waiting to run from (another
                // event woke it and the CPU was not free yet).
                if (!woken && ev.pid == tid && ev.ts <= o.returned_ns + kSkewNs) {
                    waiting_to_run = true;
                    instead.clear();
                    e.found_wakeup = true;
                    e.wakeup_ts = 0;
                    e.from_idle = false;
                    e.found_wakeup = true;
                    e.waking_ts = ev.ts;
                    e.waker_cpu = ev.cpu;
                    e.wakee_cpu = ev.target_cpu;
                    e.waker_pid = ev.common_pid;
                    if (const auto it = comms.find(ev.common_pid); it != comms.end())
                        e.waker_comm = it->second;
                    timeline_cpus.insert(ev.cpu);
                    timeline_cpus.insert(ev.target_cpu);
                    const Running& there = current(ev.target_cpu);
                    e.from_idle = there.pid == 0;
                }
                break;
            case Type::sched_wakeup:
                // Recorded where the wake-up was done, which is often the waker's CPU: the
                // consumer's CPU is the event's target.
                if (waiting_to_run && ev.pid == tid && e.wakeup_ts == 0) {
                    e.wakeup_ts = ev.ts;
                    e.wakee_cpu = ev.target_cpu;
                }
                break;
            case Type::migrate:
                if (waiting_to_run && ev.pid == tid) e.wakee_cpu = ev.target_cpu;
                break;
            case Type::sched_switch: {
                Running& r = running[ev.cpu];
                if (r.pid >= 0 && timeline_cpus.contains(ev.cpu) && ev.ts >= window_from &&
                    r.since <= window_to && timeline.size() < kMaxTimeline)
                    timeline.push_back({ev.cpu, r.comm, r.pid, std::max(r.since, window_from),
                                        std::min(ev.ts, window_to)});
                // While the consumer waits to run on its CPU, whoever runs there instead.
                if (waiting_to_run && ev.cpu == e.wakee_cpu && ev.prev_pid != tid &&
                    ev.prev_pid != 0) {
                    const std::int64_t from =
                        std::max(r.since, e.wakeup_ts ? e.wakeup_ts : e.waking_ts);
                    add_time(instead, ev.prev_pid, ev.prev_comm, ev.ts - from);
                }
                if (waiting_to_run && ev.next_pid == tid) {
                    waiting_to_run = false;
                    if (ev.ts < o.written_ns - kSkewNs) {
                        e.found_wakeup = false;  // it ran before the event was written
                    } else {
                        woken = true;
                        e.running_ts = ev.ts;
                        e.wakee_cpu = ev.cpu;
                        e.runnable_ns = ev.ts - (e.wakeup_ts != 0 ? e.wakeup_ts : e.waking_ts);
                    }
                }
                // Preempted in its handler: who ran until it ran again.
                if (ev.prev_pid == tid && ev.prev_state == 0 && ev.ts >= o.turn_ns &&
                    ev.ts <= o.handler_end_ns) {
                    preempted = true;
                    preempted_at = ev.ts;
                } else if (preempted && ev.prev_pid != tid && ev.prev_pid != 0 &&
                           ev.ts <= o.handler_end_ns) {
                    add_time(preempters, ev.prev_pid, ev.prev_comm,
                             ev.ts - std::max(r.since, preempted_at));
                }
                if (preempted && ev.next_pid == tid) {
                    preempted = false;
                    e.handler_preempted_ns += ev.ts - preempted_at;
                }
                r.pid = ev.next_pid;
                r.comm = ev.comm;
                r.since = ev.ts;
                break;
            }
            default:
                break;
        }
    }
    // Tasks still running at the window's end.
    for (const auto& [cpu, r] : running) {
        if (r.pid >= 0 && timeline_cpus.contains(cpu) && r.since <= window_to &&
            timeline.size() < kMaxTimeline)
            timeline.push_back({cpu, r.comm, r.pid, std::max(r.since, window_from), window_to});
    }
    if (!woken) {  // no wake-up of the consumer led to this read: it was running already
        const std::int64_t preempted_ns = e.handler_preempted_ns;
        e = TraceExplanation{};
        e.handler_preempted_ns = preempted_ns;
        instead.clear();
    }
    std::sort(timeline.begin(), timeline.end(), [](const TraceInterval& a, const TraceInterval& b) {
        return a.cpu != b.cpu ? a.cpu < b.cpu : a.start < b.start;
    });
    e.timeline = std::move(timeline);
    e.ran_instead = largest_first(instead);
    e.preempted_by = largest_first(preempters);
    if (e.found_wakeup && e.wakee_cpu >= 0) {
        const std::int64_t from = e.wakeup_ts != 0 ? e.wakeup_ts : e.waking_ts;
        const std::int64_t to = e.running_ts != 0 ? e.running_ts : o.returned_ns;
        interrupts_on(events, e.wakee_cpu, from, to, e);
    }
    return e;
}

std::string to_json(const TraceExplanation& e, const Outlier& o) {
    using nlohmann::ordered_json;
    const auto tasks = [](const std::vector<TaskTime>& list) {
        ordered_json out = ordered_json::array();
        for (const TaskTime& t : list)
            out.push_back({{"comm", t.comm}, {"pid", t.pid}, {"ns", t.ns}});
        return out;
    };
    ordered_json timeline = ordered_json::array();
    for (const TraceInterval& i : e.timeline)
        timeline.push_back({{"cpu", i.cpu},
                            {"comm", i.comm},
                            {"pid", i.pid},
                            {"start_ns", i.start - o.due_ns},
                            {"end_ns", i.end - o.due_ns}});
    const auto since_due = [&o](std::int64_t ts) -> ordered_json {
        return ts == 0 ? ordered_json(nullptr) : ordered_json(ts - o.due_ns);
    };
    ordered_json irqs = tasks(e.irqs);
    for (auto& i : irqs) i.erase("pid");
    ordered_json softirqs = tasks(e.softirqs);
    for (auto& s : softirqs) s.erase("pid");
    const ordered_json out = {
        {"found_wakeup", e.found_wakeup},
        {"waker", {{"comm", e.waker_comm}, {"pid", e.waker_pid}, {"cpu", e.waker_cpu}}},
        {"wakee_cpu", e.wakee_cpu},
        {"from_idle", e.from_idle},
        {"waking_ns", since_due(e.waking_ts)},
        {"wakeup_ns", since_due(e.wakeup_ts)},
        {"running_ns", since_due(e.running_ts)},
        {"runnable_ns", e.runnable_ns},
        {"ran_instead", tasks(e.ran_instead)},
        {"irqs", irqs},
        {"softirqs", softirqs},
        {"handler_preempted_ns", e.handler_preempted_ns},
        {"preempted_by", tasks(e.preempted_by)},
        {"missed_events", e.missed_events},
        {"timeline", timeline}};
    return out.dump();
}

}  // namespace evfly::detail
