// Internal header: the kernel's account of one outlier, from scheduler and interrupt trace events
// (tier 2 of [explain]). Pure: the events come decoded (tracer.cpp reads them with libtracefs),
// so every rule is tested on events written by hand.
//
// For the consumer that read the outlier it finds who woke it (the task and CPU that issued the
// wake-up: for an eventfd the producer's write, for a timer the timer interrupt), on which CPU it
// was woken, how long it then sat runnable and which tasks ran on that CPU instead, the IRQs and
// softirqs there meanwhile (net of each other), whether that CPU was idle (a wake-up from idle),
// and what preempted the consumer while its handler ran. Times are CLOCK_MONOTONIC ns: the trace
// runs on trace_clock "mono", the clock of evflyd's own stamps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "evfly/report.h"

namespace evfly::detail {

struct TraceEvent {
    enum class Type : std::uint8_t {
        sched_waking,   // pid, comm: the task woken; target_cpu; on the waker's CPU
        sched_wakeup,   // pid, comm, target_cpu; on the target CPU
        sched_switch,   // prev_pid, prev_comm, prev_state, next_pid, next_comm
        migrate,        // pid, orig_cpu -> dest_cpu
        irq_entry,      // irq, name
        irq_exit,       // irq
        softirq_entry,  // vec
        softirq_exit,   // vec
        hrtimer_expire  // a timer fired (timerfd expiries among them)
    };
    Type type = Type::sched_switch;
    std::int64_t ts = 0;
    int cpu = -1;
    int common_pid = 0;  // the task running when the event was recorded
    int pid = 0;         // waking, wakeup, migrate: the task concerned
    int target_cpu = -1;
    int prev_pid = 0;
    int next_pid = 0;
    long prev_state = 0;  // 0: still runnable (preempted)
    int irq = 0;          // irq number, or softirq vector
    std::string comm;     // waking, wakeup, migrate: the task's; switch: next_comm; irq: its name
    std::string prev_comm;
};

struct TaskTime {
    std::string comm;
    int pid = 0;
    std::int64_t ns = 0;
};

struct TraceInterval {  // a task on a CPU, for the timeline
    int cpu = -1;
    std::string comm;
    int pid = 0;
    std::int64_t start = 0;
    std::int64_t end = 0;
};

struct TraceExplanation {
    bool found_wakeup = false;  // the consumer's wake-up is in the trace
    std::string waker_comm;     // the task that issued the wake-up ("" in an interrupt)
    int waker_pid = 0;
    int waker_cpu = -1;
    int wakee_cpu = -1;                  // where the consumer was woken
    std::int64_t waking_ts = 0;          // sched_waking
    std::int64_t wakeup_ts = 0;          // sched_wakeup
    std::int64_t running_ts = 0;         // switched in
    std::int64_t runnable_ns = 0;        // woken -> running
    bool from_idle = false;              // the wakee's CPU was idle when the wake-up came
    std::vector<TaskTime> ran_instead;   // on the wakee's CPU while the consumer was runnable
    std::vector<TaskTime> irqs;          // hard IRQs on that CPU meanwhile, net time
    std::vector<TaskTime> softirqs;      // softirqs on that CPU meanwhile, net time
    std::vector<TaskTime> preempted_by;  // tasks that ran while the handler was preempted
    std::int64_t handler_preempted_ns = 0;
    std::vector<TraceInterval> timeline;  // the CPUs involved, over the outlier's window
    std::uint64_t missed_events = 0;
};

// The account of `o` (read by the thread `o.consumer_tid`) from `events`, in time order.
TraceExplanation analyze_trace(const std::vector<TraceEvent>& events, const Outlier& o);
// As JSON for the summary (one object).
std::string to_json(const TraceExplanation& e, const Outlier& o);

}  // namespace evfly::detail
