// The final summary: the run's accounting plus what the process used, as JSON (the layout is
// documented in the README and is a stable interface: fields are added, never renamed).
#pragma once

#include <cstdint>
#include <string>

#include "evfly/daemon.h"

namespace evfly {

struct Resources {
    double cpu_user_s = 0;
    double cpu_sys_s = 0;
    std::uint64_t max_rss_kib = 0;
    int fds_at_start = 0;
    int fds_at_exit = 0;
    std::uint64_t voluntary_ctx_switches = 0;
    std::uint64_t involuntary_ctx_switches = 0;
};

// getrusage(RUSAGE_SELF): every thread of the process, joined ones included.
Resources sample_resources();
// Peak resident set of this process image in KiB (VmHWM), unaffected by the exec'ing parent.
std::uint64_t peak_rss_kib();

std::string summary_json(const RunResult& result, const Resources& resources,
                         std::uint64_t log_dropped);

}  // namespace evfly
