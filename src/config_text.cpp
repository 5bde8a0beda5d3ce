// A config as text: the names of its enumerations, CPU lists, the [slo] keys, and the effective
// config printed back as TOML (--print-config).
#include <algorithm>
#include <cstdio>
#include <map>
#include <toml.hpp>

#include "evfly/config.h"
#include "sched_policy.h"

namespace evfly {

using OrderedValue = toml::basic_value<toml::discard_comments, std::map, std::vector>;

const std::vector<std::string>& slo_latency_keys() {
    static const std::vector<std::string> keys = [] {
        std::vector<std::string> out;
        for (const char* kind : {"eventfd", "eventfd_delivery", "timerfd"})
            for (const char* stat : {"p50", "p90", "p99", "p999", "max"})
                out.push_back(std::string(kind) + "_" + stat);
        return out;
    }();
    return keys;
}

const std::vector<std::string>& slo_count_keys() {
    static const std::vector<std::string> keys{
        "max_lost",     "max_skipped",     "max_late",           "max_stalls",
        "max_overruns", "max_clock_jumps", "max_drained_at_stop"};
    return keys;
}

const char* to_string(ProducerKind kind) {
    return kind == ProducerKind::eventfd ? "eventfd" : "timerfd";
}
const char* to_string(FdMode mode) {
    return mode == FdMode::per_event    ? "per-event"
           : mode == FdMode::persistent ? "persistent"
                                        : "semaphore";
}
const char* to_string(SchedPolicy policy) { return detail::sched_policy_of(policy).name; }
const char* to_string(Arrival arrival) {
    return arrival == Arrival::paced ? "paced" : arrival == Arrival::poisson ? "poisson" : "burst";
}
const char* to_string(Phase phase) { return phase == Phase::spread ? "spread" : "aligned"; }
const char* to_string(WorkDist dist) {
    switch (dist) {
        case WorkDist::fixed:
            return "fixed";
        case WorkDist::exponential:
            return "exponential";
        case WorkDist::lognormal:
            return "lognormal";
        case WorkDist::bimodal:
            return "bimodal";
    }
    return "fixed";
}
const char* to_string(WorkKind kind) { return kind == WorkKind::cpu ? "cpu" : "sleep"; }

std::optional<std::vector<int>> parse_cpu_list(const std::string& text, std::string* why) {
    std::vector<int> cpus;
    const auto fail = [&](const std::string& reason) -> std::optional<std::vector<int>> {
        if (why != nullptr) *why = reason + " (a CPU list is like \"0-3,6\")";
        return std::nullopt;
    };
    if (text.empty()) return fail("is empty");
    std::size_t at = 0;
    const auto number = [&](int& out) {
        const std::size_t start = at;
        long value = 0;
        while (at < text.size() && text[at] >= '0' && text[at] <= '9' && value < 100000)
            value = value * 10 + (text[at++] - '0');
        out = static_cast<int>(value);
        return at > start && value < 100000;
    };
    while (at < text.size()) {
        int first = 0;
        if (!number(first)) return fail("\"" + text + "\" is not a CPU list");
        int last = first;
        if (at < text.size() && text[at] == '-') {
            ++at;
            if (!number(last) || last < first) return fail("\"" + text + "\" has a bad range");
        }
        for (int cpu = first; cpu <= last; ++cpu)
            if (std::find(cpus.begin(), cpus.end(), cpu) == cpus.end()) cpus.push_back(cpu);
        if (at < text.size()) {
            if (text[at] != ',') return fail("\"" + text + "\" is not a CPU list");
            ++at;
            if (at == text.size()) return fail("\"" + text + "\" ends with a comma");
        }
    }
    return cpus;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
    std::string out;
    for (std::size_t i = 0; i < cpus.size();) {
        std::size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
        out += (out.empty() ? "" : ",") + std::to_string(cpus[i]);
        if (j > i) out += "-" + std::to_string(cpus[j]);
        i = j + 1;
    }
    return out;
}

const char* to_string(FireMode mode) { return mode == FireMode::create ? "create" : "write"; }

const char* clock_name(clockid_t clock) {
    switch (clock) {
        case CLOCK_REALTIME:
            return "realtime";
        case CLOCK_BOOTTIME:
            return "boottime";
        default:
            return "monotonic";
    }
}

namespace {
void add_placement(OrderedValue::table_type& t, const Placement& p) {
    if (!p.cpus.empty()) t.emplace("cpus", format_cpu_list(p.cpus));
    if (p.policy) t.emplace("policy", to_string(*p.policy));
    if (p.policy == SchedPolicy::fifo || p.policy == SchedPolicy::rr)
        t.emplace("priority", p.priority);
    if (p.nice) t.emplace("nice", *p.nice);
    if (p.timer_slack) t.emplace("timer_slack", format_duration(*p.timer_slack));
}
}  // namespace

std::string format_over(const Config::Explain& explain) {
    if (explain.over) return format_duration(*explain.over);
    if (!explain.over_quantile) return {};
    char text[32];
    std::snprintf(text, sizeof text, "p%.6g", *explain.over_quantile * 100.0);
    return text;
}

std::string to_toml(const Config& config) {
    static constexpr const char* kSinks[] = {"auto", "stderr", "journald", "file"};
    OrderedValue root(toml::table{});
    auto& top = root.as_table();
    top["daemon"] = OrderedValue::table_type{
        {"consumers", config.daemon.consumers},
        {"max_events", config.daemon.max_events},
        {"stats_interval", format_duration(config.daemon.stats_interval)},
        {"shutdown_timeout", format_duration(config.daemon.shutdown_timeout)},
        {"stall_after", format_duration(config.daemon.stall_after)},
        {"warmup", format_duration(config.daemon.warmup)},
        {"spin", format_duration(config.daemon.spin)},
        {"mlockall", config.daemon.mlockall}};
    if (config.daemon.cpu_dma_latency)
        top["daemon"].as_table()["cpu_dma_latency"] =
            format_duration(*config.daemon.cpu_dma_latency);
    add_placement(top["daemon"].as_table(), config.daemon.placement);
    OrderedValue::table_type log{{"level", config.log.level},
                                 {"format", config.log.format == LogFormat::json ? "json" : "text"},
                                 {"sink", kSinks[static_cast<int>(config.log.sink)]},
                                 {"file", config.log.file}};
    top["log"] = log;
    top["metrics"] = OrderedValue::table_type{{"textfile", config.metrics.textfile},
                                              {"listen", config.metrics.listen}};
    if (config.explain.enabled()) {
        const Config::Explain& e = config.explain;
        OrderedValue::table_type explain;
        explain.emplace("over", format_over(e));
        if (e.log_over) explain.emplace("log_over", format_duration(*e.log_over));
        explain.emplace("worst", e.worst);
        if (e.trace == Config::Explain::Trace::required) {
            explain.emplace("trace", "required");
        } else {
            explain.emplace("trace", e.trace == Config::Explain::Trace::on);
        }
        explain.emplace("trace_buffer_kb", e.trace_buffer_kb);
        explain.emplace("trace_every", format_duration(e.trace_every));
        top["explain"] = explain;
    }
    if (!config.slo.empty()) {
        OrderedValue::table_type slo;
        for (const auto& [key, limit] : config.slo.latency)
            slo.emplace(key, format_duration(limit));
        for (const auto& [key, limit] : config.slo.counts)
            slo.emplace(key, static_cast<std::int64_t>(limit));
        if (config.slo.allow_non_stationary) slo.emplace("allow_non_stationary", true);
        top["slo"] = slo;
    } else if (config.slo.allow_non_stationary) {
        top["slo"] = OrderedValue::table_type{{"allow_non_stationary", true}};
    }
    OrderedValue::array_type producers;
    for (const auto& p : config.producers) {
        OrderedValue::table_type t{{"name", p.name},
                                   {"kind", to_string(p.kind)},
                                   {"threads", p.threads},
                                   {"work", format_duration(p.work)},
                                   {"work_dist", to_string(p.work_dist)},
                                   {"work_kind", to_string(p.work_kind)}};
        if (p.work_dist == WorkDist::lognormal) t.emplace("work_sigma", p.work_sigma);
        if (p.work_dist == WorkDist::bimodal) {
            t.emplace("work_slow", format_duration(p.work_slow));
            t.emplace("work_slow_share", p.work_slow_share);
        }
        if (p.seed) t.emplace("seed", static_cast<std::int64_t>(*p.seed));
        add_placement(t, p.placement);
        if (p.kind == ProducerKind::eventfd) {
            t.emplace("rate", static_cast<std::int64_t>(p.rate));
            t.emplace("arrival", to_string(p.arrival));
            if (p.arrival == Arrival::burst) t.emplace("burst", p.burst);
            t.emplace("phase", to_string(p.phase));
            t.emplace("fd_mode", to_string(p.fd_mode));
            t.emplace("max_in_flight", p.max_in_flight);
            t.emplace("fire", to_string(p.fire));
        } else {
            t.emplace("timers", p.timers);
            t.emplace("initial", format_duration(p.initial));
            t.emplace("interval", format_duration(p.interval));
            t.emplace("clock", clock_name(p.clock));
        }
        producers.emplace_back(std::move(t));
    }
    if (!producers.empty()) top["producer"] = producers;
    return toml::format(root, 0);
}

}  // namespace evfly
