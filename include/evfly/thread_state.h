// ThreadState: one of evflyd's threads as the kernel reports it (/proc/self/task,
// sched_getscheduler): where it runs and how it is scheduled. The summary lists every thread so.
#pragma once

#include <cstdint>
#include <string>

namespace evfly {

struct ThreadState {
    std::string name;
    int tid = 0;
    int cpu = -1;              // the CPU it last ran on (/proc/.../stat field 39)
    std::string cpus_allowed;  // Cpus_allowed_list
    std::string policy;        // other, batch, idle, fifo, rr
    int priority = 0;
    int nice = 0;
    std::uint64_t timer_slack_ns = 0;
};

}  // namespace evfly
