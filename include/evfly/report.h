// Report: evfly's accounting at one instant: what each producer fired and wrote, what the
// consumers read and dispatched, and the latency histograms. The engine fills one on demand
// (stats lines, the final summary); everything derived (totals, lost) is computed here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/histogram.h"

namespace evfly {

struct ProducerReport {
    std::string name;
    ProducerKind kind = ProducerKind::eventfd;
    FdMode fd_mode = FdMode::per_event;
    std::uint32_t threads = 0;
    std::uint64_t fired = 0;          // eventfd: writes; timerfd: expirations (the kernel fires)
    std::uint64_t value_written = 0;  // sum of the values written (timerfd: expirations)
    std::uint64_t value_read = 0;     // sum of the values read back (timerfd: expirations)
    std::uint64_t expirations = 0;    // timerfd only
    std::uint64_t overruns = 0;       // timerfd: expirations beyond the first in one read
    std::uint64_t write_retries = 0;  // eventfd writes that met a full counter (EAGAIN)
    std::uint64_t fd_exhaustion = 0;  // episodes of EMFILE/ENFILE when creating an fd
    std::uint64_t errors = 0;         // other failed syscalls (logged)
};

struct Totals {
    std::uint64_t fired = 0;
    std::uint64_t value_written = 0;
    std::uint64_t value_read = 0;
    std::int64_t lost = 0;  // value_written - value_read; 0 after a complete drain
    std::uint64_t expirations = 0;
    std::uint64_t overruns = 0;
    std::uint64_t fd_exhaustion = 0;  // episodes of EMFILE/ENFILE, all producers
};

struct Report {
    std::uint32_t consumers = 0;
    std::vector<ProducerReport> producers;
    std::uint64_t events_dispatched = 0;  // epoll events handed to a handler
    std::uint64_t epoll_wakeups = 0;      // epoll_wait returns in consumers
    std::uint64_t stale_events = 0;       // events for a registration retired meanwhile (stop only)
    std::uint64_t consumer_errors = 0;    // failed reads / epoll_ctl calls in consumers (logged)
    std::uint64_t handler_errors = 0;     // exceptions out of event handlers, caught (logged)
    HistogramSnapshot eventfd_latency;    // fire to consume, ns
    HistogramSnapshot timerfd_latency;    // lateness behind the due tick, ns

    [[nodiscard]] Totals totals() const noexcept;
};

}  // namespace evfly
