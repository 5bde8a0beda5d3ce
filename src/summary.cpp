#include "evfly/summary.h"

#include <sys/resource.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "evfly/log.h"

namespace evfly {
namespace {

double seconds(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

nlohmann::ordered_json latency(const HistogramSnapshot& h) {
    const Percentiles p = h.percentiles();
    return {{"count", p.count}, {"p50", p.p50},   {"p90", p.p90},
            {"p99", p.p99},     {"p999", p.p999}, {"max", p.max}};
}

}  // namespace

std::uint64_t peak_rss_kib() {
    // VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so a daemon
    // started by a large parent (a shell script, a test harness) would report the parent's peak.
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
    }
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::uint64_t>(usage.ru_maxrss);
}

Resources sample_resources() {
    Resources r;
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    r.cpu_user_s = seconds(usage.ru_utime);
    r.cpu_sys_s = seconds(usage.ru_stime);
    r.max_rss_kib = peak_rss_kib();
    r.voluntary_ctx_switches = static_cast<std::uint64_t>(usage.ru_nvcsw);
    r.involuntary_ctx_switches = static_cast<std::uint64_t>(usage.ru_nivcsw);
    return r;
}

std::string summary_json(const RunResult& result, const Resources& resources,
                         std::uint64_t log_dropped) {
    const Report& report = result.report;
    const Totals totals = report.totals();
    nlohmann::ordered_json producers = nlohmann::ordered_json::array();
    for (const auto& p : report.producers) {
        nlohmann::ordered_json entry = {{"name", p.name},
                                        {"kind", to_string(p.kind)},
                                        {"threads", p.threads},
                                        {"fired", p.fired},
                                        {"value_written", p.value_written},
                                        {"value_read", p.value_read},
                                        {"expirations", p.expirations},
                                        {"overruns", p.overruns},
                                        {"write_retries", p.write_retries},
                                        {"fd_exhaustion", p.fd_exhaustion},
                                        {"errors", p.errors}};
        if (p.kind == ProducerKind::eventfd) entry["fd_mode"] = to_string(p.fd_mode);
        producers.push_back(std::move(entry));
    }
    const nlohmann::ordered_json doc = {
        {"evfly_version", EVFLY_VERSION},
        {"elapsed_s", result.elapsed_s},
        {"consumers", report.consumers},
        {"drained", result.drained},
        {"producers", producers},
        {"totals",
         {{"fired", totals.fired},
          {"value_written", totals.value_written},
          {"value_read", totals.value_read},
          {"lost", totals.lost},
          {"events_dispatched", report.events_dispatched},
          {"epoll_wakeups", report.epoll_wakeups},
          {"expirations", totals.expirations},
          {"overruns", totals.overruns},
          {"stale_events", report.stale_events},
          {"consumer_errors", report.consumer_errors},
          {"handler_errors", report.handler_errors},
          {"fd_exhaustion", totals.fd_exhaustion},
          {"log_dropped", log_dropped},
          {"log_sink_errors", log::sink_errors()}}},
        {"reloads", {{"ok", result.reloads_ok}, {"failed", result.reloads_failed}}},
        {"latency_ns",
         {{"eventfd", latency(report.eventfd_latency)},
          {"timerfd", latency(report.timerfd_latency)}}},
        {"resources",
         {{"cpu_user_s", resources.cpu_user_s},
          {"cpu_sys_s", resources.cpu_sys_s},
          {"max_rss_kib", resources.max_rss_kib},
          {"fds_at_start", resources.fds_at_start},
          {"fds_at_exit", resources.fds_at_exit},
          {"voluntary_ctx_switches", resources.voluntary_ctx_switches},
          {"involuntary_ctx_switches", resources.involuntary_ctx_switches}}}};
    return doc.dump(2) + "\n";
}

}  // namespace evfly
