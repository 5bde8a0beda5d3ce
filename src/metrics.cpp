#include "evfly/metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "evfly/fd.h"
#include "evfly/log.h"

namespace evfly {
namespace {

// Bucket bounds in seconds, 1 µs to 10 s: wake-up latency lives at the low end, timer lateness
// and stalls at the high end.
constexpr std::array<double, 22> kBounds{1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5,   1e-4, 2.5e-4,
                                         5e-4, 1e-3,   2.5e-3, 5e-3, 1e-2,   2.5e-2, 5e-2, 0.1,
                                         0.25, 0.5,    1.0,    2.5,  5.0,    10.0};

// Label values: backslash, double quote and newline escaped, as the format requires.
std::string label(const std::string& value) {
    std::string out;
    for (const char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

void line(std::string& out, const char* fmt, auto... args) {
    char buf[512];
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
}

// The producer counts exported as counters, by producer and kind.
struct CounterFamily {
    const char* name;
    const char* help;
    std::uint64_t ProducerCounts::*count;
};
constexpr CounterFamily kCounterFamilies[] = {
    {"evfly_events_total", "Events fired (eventfd writes, timerfd expirations).",
     &ProducerCounts::fired},
    {"evfly_values_written_total", "Sum of the values written (timerfd: expirations).",
     &ProducerCounts::value_written},
    {"evfly_values_read_total", "Sum of the values read by consumers (timerfd: expirations).",
     &ProducerCounts::value_read},
    {"evfly_drained_at_stop_total",
     "Values the producer's stop read because no consumer had (never handled).",
     &ProducerCounts::drained_at_stop},
    {"evfly_overruns_total", "Timer expirations beyond the first in one read.",
     &ProducerCounts::overruns},
    {"evfly_schedule_due_total",
     "Fires the producer's schedule called for (flat out and timerfd: as fired).",
     &ProducerCounts::due},
    {"evfly_schedule_late_total", "Fires made more than one period after their due time.",
     &ProducerCounts::late},
    {"evfly_schedule_skipped_total",
     "Scheduled fires given up on (a catch-up beyond 1 s, or owed at the stop).",
     &ProducerCounts::skipped},
    {"evfly_stalls_total", "Episodes with an event in flight longer than daemon.stall_after.",
     &ProducerCounts::stalls},
    {"evfly_clock_jumps_total", "Realtime timer reads that reported a wall-clock step (ECANCELED).",
     &ProducerCounts::clock_jumps},
};

void counter_family(std::string& out, const Report& report, const char* name, const char* help,
                    std::uint64_t ProducerCounts::*field) {
    line(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (const auto& p : report.producers) {
        line(out, "%s{producer=\"%s\",kind=\"%s\"} %llu\n", name, label(p.name).c_str(),
             to_string(p.kind), static_cast<unsigned long long>(p.*field));
    }
}

// One histogram's series; `labels` is its label set without braces (kind="eventfd",...).
template <typename Snapshot>
void histogram(std::string& out, const char* name, const std::string& labels, const Snapshot& h) {
    const char* l = labels.c_str();
    for (const double bound : kBounds) {
        const auto ns = static_cast<std::uint64_t>(bound * 1e9);
        line(out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, l, bound,
             static_cast<unsigned long long>(h.count_up_to(ns)));
    }
    line(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, l,
         static_cast<unsigned long long>(h.count()));
    line(out, "%s_sum{%s} %.9g\n", name, l, h.approx_sum() / 1e9);
    line(out, "%s_count{%s} %llu\n", name, l, static_cast<unsigned long long>(h.count()));
}

std::string cpu_labels(const char* kind, int cpu, const char* handoff) {
    return std::string("kind=\"") + kind + "\",cpu=\"" + std::to_string(cpu) + "\",handoff=\"" +
           handoff + "\"";
}

// The same samples as evfly_latency_seconds and evfly_delivery_seconds, by the CPU that read
// them and whether the fire ran on that CPU (a separate family, so sums over it do not count a
// sample twice).
void by_cpu(std::string& out, const std::vector<CpuLatency>& cpus) {
    out +=
        "# HELP evfly_cpu_latency_seconds As evfly_latency_seconds, by the consumer's CPU and "
        "hand-off (same_cpu: fired on that CPU; cross_cpu: on another; timer: the kernel).\n"
        "# TYPE evfly_cpu_latency_seconds histogram\n";
    for (const CpuLatency& c : cpus) {
        histogram(out, "evfly_cpu_latency_seconds", cpu_labels("eventfd", c.cpu, "same_cpu"),
                  c.eventfd_same_cpu);
        histogram(out, "evfly_cpu_latency_seconds", cpu_labels("eventfd", c.cpu, "cross_cpu"),
                  c.eventfd_cross_cpu);
        histogram(out, "evfly_cpu_latency_seconds", cpu_labels("timerfd", c.cpu, "timer"),
                  c.timerfd);
    }
    out +=
        "# HELP evfly_cpu_delivery_seconds As evfly_delivery_seconds, by the consumer's CPU and "
        "hand-off.\n# TYPE evfly_cpu_delivery_seconds histogram\n";
    for (const CpuLatency& c : cpus) {
        histogram(out, "evfly_cpu_delivery_seconds", cpu_labels("eventfd", c.cpu, "same_cpu"),
                  c.delivery_same_cpu);
        histogram(out, "evfly_cpu_delivery_seconds", cpu_labels("eventfd", c.cpu, "cross_cpu"),
                  c.delivery_cross_cpu);
    }
}

// The samples' paths in segments, by kind and segment.
void segments(std::string& out, const std::vector<CpuLatency>& cpus) {
    out +=
        "# HELP evfly_segment_seconds An event's path in segments: producer (due to written), "
        "wake_up (written or expired to the consumer's epoll_wait return), batch (to its turn), "
        "handler (its turn to the next).\n# TYPE evfly_segment_seconds histogram\n";
    const CpuLatency all = total_of(cpus);
    PathSegments::each(all.segments, all.segments,
                       [&out](const char* kind, const char* segment, const auto& h, const auto&) {
                           histogram(
                               out, "evfly_segment_seconds",
                               std::string("kind=\"") + kind + "\",segment=\"" + segment + "\"", h);
                       });
}

}  // namespace

std::string prometheus_text(const Report& report, const MetricsExtras& extras) {
    std::string out;
    for (const CounterFamily& family : kCounterFamilies)
        counter_family(out, report, family.name, family.help, family.count);
    out +=
        "# HELP evfly_latency_seconds eventfd: from when the event was due to consumed; timerfd: "
        "lateness behind the due tick.\n# TYPE evfly_latency_seconds histogram\n";
    histogram(out, "evfly_latency_seconds", "kind=\"eventfd\"", report.eventfd_latency);
    histogram(out, "evfly_latency_seconds", "kind=\"timerfd\"", report.timerfd_latency);
    out +=
        "# HELP evfly_delivery_seconds eventfd: from the write to consumed.\n"
        "# TYPE evfly_delivery_seconds histogram\n";
    histogram(out, "evfly_delivery_seconds", "kind=\"eventfd\"", report.eventfd_delivery);
    by_cpu(out, report.by_cpu);
    segments(out, report.by_cpu);
    if (report.explain.enabled) {
        out +=
            "# HELP evfly_outliers_total Samples above [explain] over, by cause.\n"
            "# TYPE evfly_outliers_total counter\n";
        for (std::size_t c = 0; c < kCauses; ++c)
            line(out, "evfly_outliers_total{cause=\"%s\"} %llu\n", to_string(static_cast<Cause>(c)),
                 static_cast<unsigned long long>(report.explain.causes[c]));
    }
    line(out,
         "# HELP evfly_oldest_in_flight_seconds Age of the oldest event in flight (0: none).\n"
         "# TYPE evfly_oldest_in_flight_seconds gauge\nevfly_oldest_in_flight_seconds %.9g\n",
         static_cast<double>(report.oldest_in_flight.age_ns) / 1e9);
    line(out,
         "# HELP evfly_consumers Consumer threads.\n# TYPE evfly_consumers gauge\n"
         "evfly_consumers %u\n",
         report.consumers);
    line(out,
         "# HELP evfly_log_dropped_total Log lines dropped because the queue was full.\n"
         "# TYPE evfly_log_dropped_total counter\nevfly_log_dropped_total %llu\n",
         static_cast<unsigned long long>(extras.log_dropped));
    line(out,
         "# HELP evfly_reloads_total Config reloads (SIGHUP) by result.\n"
         "# TYPE evfly_reloads_total counter\nevfly_reloads_total{result=\"ok\"} %llu\n"
         "evfly_reloads_total{result=\"failed\"} %llu\n",
         static_cast<unsigned long long>(extras.reloads_ok),
         static_cast<unsigned long long>(extras.reloads_failed));
    if (extras.start_time_s > 0)
        line(out,
             "# HELP evfly_start_time_seconds When this evflyd started, in seconds since the "
             "epoch.\n# TYPE evfly_start_time_seconds gauge\nevfly_start_time_seconds %.3f\n",
             extras.start_time_s);
    return out;
}

void write_textfile(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd) throw_errno(("open " + tmp).c_str());
        // Readable by the scraper (node_exporter runs as its own user) whatever the umask: the
        // shipped unit's UMask=0077 would otherwise leave it 0600.
        if (::fchmod(fd.get(), 0644) != 0) {
            const int err = errno;
            ::unlink(tmp.c_str());
            throw std::system_error(err, std::generic_category(), "chmod " + tmp);
        }
        std::size_t done = 0;
        while (done < text.size()) {
            const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                const int err = errno;
                ::unlink(tmp.c_str());
                throw std::system_error(err, std::generic_category(), "write " + tmp);
            }
            done += static_cast<std::size_t>(n);
        }
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw std::system_error(err, std::generic_category(), "rename to " + path);
    }
}

void MetricsFile::set_path(std::string path) {
    if (path == path_) return;
    if (!path_.empty()) (void)std::remove(path_.c_str());
    path_ = std::move(path);
    failing_ = false;
}

void MetricsFile::write(const Report& report, MetricsExtras extras) {
    if (path_.empty()) return;
    extras.log_dropped = log::dropped();
    try {
        write_textfile(path_, prometheus_text(report, extras));
        if (failing_) log::emit(log::Level::info, "metrics file written again", {{"path", path_}});
        failing_ = false;
    } catch (const std::exception& e) {
        if (!failing_)
            log::emit(log::Level::warn, "cannot write the metrics file",
                      {{"path", path_}, {"error", e.what()}});
        failing_ = true;
    }
}

}  // namespace evfly
