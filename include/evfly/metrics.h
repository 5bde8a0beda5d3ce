// Prometheus metrics in the text exposition format, for node_exporter's textfile collector.
//
// The supervisor renders a Report every stats interval and replaces the file atomically (a
// temporary file in the same directory, then rename), so the collector never reads half a file.
#pragma once

#include <cstdint>
#include <string>

#include "evfly/report.h"

namespace evfly {

struct MetricsExtras {
    std::uint64_t log_dropped = 0;
    std::uint64_t reloads_ok = 0;
    std::uint64_t reloads_failed = 0;
    double start_time_s = 0;  // wall clock, for restart loops; 0: not said
};

// The exposition text: counters per producer (evfly_events_total, evfly_values_written_total,
// evfly_values_read_total, evfly_overruns_total), the evfly_latency_seconds histogram per kind,
// evfly_consumers, evfly_log_dropped_total, evfly_reloads_total{result} and
// evfly_start_time_seconds.
std::string prometheus_text(const Report& report, const MetricsExtras& extras);

// Writes `text` to `path` atomically. Throws std::system_error naming the failing step.
void write_textfile(const std::string& path, const std::string& text);

// The Prometheus textfile, if configured. A failure (full disk, missing directory) is logged
// once until a write succeeds again; the daemon carries on. Supervisor thread only.
class MetricsFile {
  public:
    explicit MetricsFile(std::string path) : path_(std::move(path)) {}
    // A reload moved or turned off the file: the old one goes, so that node_exporter does not
    // serve numbers that no longer change.
    void set_path(std::string path);
    void write(const Report& report, MetricsExtras extras);

  private:
    std::string path_;
    bool failing_ = false;
};

}  // namespace evfly
