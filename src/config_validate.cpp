// evfly's config schema: every section and key, its type, range and default, and the checks
// against this host (the CPUs the process may use, the fds it may open, a writable metrics
// directory). The generic type and range checks are TomlValidator's.
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

#include "config_schema.h"
#include "evfly/fd.h"
#include "metrics_http.h"
#include "sched_policy.h"
#include "toml_validator.h"

namespace evfly::detail {
namespace {

const std::set<std::string> kTopKeys{"daemon", "log", "metrics", "slo", "explain", "producer"};
const std::set<std::string> kExplainKeys{"over",  "log_over",        "worst",
                                         "trace", "trace_buffer_kb", "trace_every"};
const std::set<std::string> kDaemonKeys{
    "consumers", "max_events",  "stats_interval", "shutdown_timeout", "stall_after",
    "warmup",    "spin",        "cpus",           "policy",           "priority",
    "nice",      "timer_slack", "mlockall",       "cpu_dma_latency"};
const std::set<std::string> kLogKeys{"level", "format", "sink", "file"};
const std::set<std::string> kMetricsKeys{"textfile", "listen"};
const std::set<std::string> kCommonProducerKeys{
    "name",       "kind",       "threads",         "work", "work_dist", "work_kind", "work_p99",
    "work_sigma", "work_slow",  "work_slow_share", "seed", "cpus",      "policy",    "priority",
    "nice",       "timer_slack"};
const std::set<std::string> kEventfdKeys{"rate",    "arrival",       "burst", "phase",
                                         "fd_mode", "max_in_flight", "fire"};
const std::set<std::string> kTimerfdKeys{"timers", "initial", "interval", "clock"};
const std::vector<std::string> kLevels{"trace", "debug",    "info", "warn",
                                       "error", "critical", "off"};

// --- Host checks: what this machine allows, checked when the config is read. -------------------

struct Need {
    std::size_t index;             // producer[index]
    std::uint32_t line;            // its table
    std::uint32_t in_flight_line;  // its max_in_flight key (or the table)
};

// Why the directory that would hold `path` cannot take a new file, or "" when it can: the metrics
// file is written there as a temporary file, then renamed.
std::string unwritable_dir_of(const std::string& path) {
    if (path.empty()) return {};
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    const std::string name = dir.empty() ? "." : dir.string();
    struct stat st {};
    if (::stat(name.c_str(), &st) != 0)
        return "directory " + name + " is not usable: " + errno_text(errno);
    if (!S_ISDIR(st.st_mode)) return name + " is not a directory";
    if (::access(name.c_str(), W_OK | X_OK) != 0)
        return "directory " + name + " is not writable: " + errno_text(errno);
    return {};
}

// What the engine will need of the host, checked before anything starts: the slots of every
// fd that may be in flight (at most kMaxSlots), and the fds that timers and persistent producers
// hold for as long as they run (at most the hard RLIMIT_NOFILE, to which evflyd raises its own).
void check_resources(TomlValidator& check, const Config& config, const std::vector<Need>& needs) {
    std::uint64_t slots = 0;
    std::uint64_t held_fds = 0;
    std::size_t biggest = 0;
    std::uint64_t biggest_slots = 0;
    for (std::size_t j = 0; j < config.producers.size() && j < needs.size(); ++j) {
        const ProducerConfig& p = config.producers[j];
        const std::uint64_t n = slots_needed(p);
        slots += n;
        if (!is_per_event(p)) held_fds += n;
        if (n > biggest_slots) {
            biggest_slots = n;
            biggest = j;
        }
    }
    if (slots > kMaxSlots && !needs.empty()) {
        const Need& at = needs[biggest];
        const ProducerConfig& p = config.producers[biggest];
        const bool per_event = is_per_event(p);
        check.error(per_event ? at.in_flight_line : at.line,
                    "producer[" + std::to_string(at.index) + "]." +
                        (per_event                         ? "max_in_flight"
                         : p.kind == ProducerKind::timerfd ? "timers"
                                                           : "threads"),
                    "the producers need " + std::to_string(slots) +
                        " slots (threads x max_in_flight, threads x timers, persistent threads), "
                        "more than the " +
                        std::to_string(kMaxSlots) + " evflyd can hold; this producer needs " +
                        std::to_string(biggest_slots));
    }
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY &&
        held_fds > limit.rlim_max && !needs.empty()) {
        check.error(needs[biggest].line, "producer[" + std::to_string(needs[biggest].index) + "]",
                    "timers and persistent producers hold " + std::to_string(held_fds) +
                        " fds for as long as they run, more than this process may open (hard "
                        "RLIMIT_NOFILE " +
                        std::to_string(limit.rlim_max) + ")");
    }
}

// --- The schema. -------------------------------------------------------------------------------

// cpus, policy, priority, nice and timer_slack of [daemon] or a [[producer]].
void validate_placement(TomlValidator& check, const TomlValue& table, const std::string& prefix,
                        Placement& p) {
    if (const std::string* text = check.string(table, prefix, "cpus")) {
        std::string why;
        const auto cpus = parse_cpu_list(*text, &why);
        if (!cpus) {
            check.error(*check.find(table, "cpus"), prefix + "cpus", why);
        } else {
            cpu_set_t allowed;
            CPU_ZERO(&allowed);
            const bool known = ::sched_getaffinity(0, sizeof allowed, &allowed) == 0;
            for (const int cpu : *cpus) {
                if (known &&
                    (cpu >= CPU_SETSIZE || !CPU_ISSET(static_cast<std::size_t>(cpu), &allowed))) {
                    check.error(*check.find(table, "cpus"), prefix + "cpus",
                                "CPU " + std::to_string(cpu) +
                                    " is not in this process's allowed set (Cpus_allowed_list)");
                    break;
                }
            }
            p.cpus = *cpus;
        }
    }
    SchedPolicy policy = SchedPolicy::other;
    std::vector<std::pair<std::string, SchedPolicy>> policies;
    policies.reserve(detail::kSchedPolicies.size());
    for (const auto& known : detail::kSchedPolicies)
        policies.emplace_back(known.name, known.policy);
    if (check.choice(table, prefix, "policy", policy, policies)) p.policy = policy;
    const bool realtime = p.policy == SchedPolicy::fifo || p.policy == SchedPolicy::rr;
    if (const TomlValue* v = check.find(table, "priority")) {
        if (!realtime) {
            check.error(*v, prefix + "priority",
                        "applies to policy = \"fifo\" or \"rr\" only; for the others use nice");
        } else {
            check.integer(table, prefix, "priority", p.priority, 1, 99);
        }
    } else if (realtime) {
        check.error(*check.find(table, "policy"), prefix + "priority",
                    "missing: policy = \"" + std::string(to_string(*p.policy)) +
                        "\" needs a priority (1..99)");
    }
    if (const TomlValue* v = check.find(table, "nice")) {
        if (realtime) {
            check.error(*v, prefix + "nice", "does not apply to real-time policies (fifo, rr)");
        } else {
            int nice = 0;
            check.integer(table, prefix, "nice", nice, -20, 19);
            if (v->is_integer() && v->as_integer() >= -20 && v->as_integer() <= 19) p.nice = nice;
        }
    }
    Nanos slack{-1};
    check.duration(table, prefix, "timer_slack", slack, Nanos(1), std::chrono::seconds(1));
    if (slack.count() > 0) p.timer_slack = slack;
}

// "p99.9" -> 0.999; nullopt when it is not a percentile between p50 and p99.9999.
std::optional<double> parse_percentile(const std::string& text) {
    if (text.size() < 3 || text[0] != 'p') return std::nullopt;
    double value = 0;
    std::size_t used = 0;
    try {
        value = std::stod(text.substr(1), &used);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (used != text.size() - 1 || !(value >= 50.0 && value <= 99.9999)) return std::nullopt;
    return value / 100.0;
}

// [explain]: over (a duration or a percentile), log_over, worst, trace and its settings.
void validate_explain(TomlValidator& check, const TomlValue& table, Config& config) {
    Config::Explain& e = config.explain;
    check.check_keys(table, "explain.", kExplainKeys);
    if (const std::string* over = check.string(table, "explain.", "over")) {
        if (const auto q = parse_percentile(*over)) {
            e.over_quantile = *q;
        } else {
            std::string why;
            const auto d = parse_duration(*over, &why);
            if (!d || d->count() <= 0 || *d > std::chrono::hours(1)) {
                check.error(*check.find(table, "over"), "explain.over",
                            "must be a duration from 1ns to 1h (\"500us\") or a percentile from "
                            "p50 to p99.9999 (\"p99.9\") (got \"" +
                                *over + "\")");
            } else {
                e.over = *d;
            }
        }
    }
    Nanos log_over{-1};
    check.duration(table, "explain.", "log_over", log_over, Nanos(1), std::chrono::hours(1));
    if (log_over.count() > 0) e.log_over = log_over;
    check.integer(table, "explain.", "worst", e.worst, 1, 1024);
    if (const TomlValue* trace = check.find(table, "trace")) {
        if (trace->is_boolean()) {
            e.trace =
                trace->as_boolean() ? Config::Explain::Trace::on : Config::Explain::Trace::off;
        } else if (trace->is_string() && trace->as_string().str == "required") {
            e.trace = Config::Explain::Trace::required;
        } else {
            check.error(*trace, "explain.trace",
                        "must be true, false or \"required\" (got " +
                            std::string(trace->is_string() ? "\"" + trace->as_string().str + "\""
                                                           : type_name(trace->type())) +
                            ")");
        }
    }
    check.integer(table, "explain.", "trace_buffer_kb", e.trace_buffer_kb, 64, 1'048'576);
    check.duration(table, "explain.", "trace_every", e.trace_every, Nanos(0),
                   std::chrono::hours(1));
    const bool keys_without_over = !e.enabled() && (check.find(table, "log_over") != nullptr ||
                                                    check.find(table, "trace") != nullptr);
    if (keys_without_over && check.find(table, "over") == nullptr)
        check.error(TomlValidator::line_of(table), "explain.over",
                    "missing: log_over and trace explain outliers, which over defines");
}

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 32) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

// A key that only means something beside another setting: an error anywhere else.
void only_with(TomlValidator& check, const TomlValue& table, const std::string& prefix,
               const char* key, bool allowed, const std::string& needs) {
    if (const TomlValue* v = check.find(table, key); v != nullptr && !allowed)
        check.error(*v, prefix + key, "only means something with " + needs);
}

// work_dist and its parameters, work_kind.
void validate_work(TomlValidator& check, const TomlValue& table, const std::string& prefix,
                   ProducerConfig& p) {
    check.choice(table, prefix, "work_dist", p.work_dist,
                 {{"fixed", WorkDist::fixed},
                  {"exponential", WorkDist::exponential},
                  {"lognormal", WorkDist::lognormal},
                  {"bimodal", WorkDist::bimodal}});
    check.choice(table, prefix, "work_kind", p.work_kind,
                 {{"cpu", WorkKind::cpu}, {"sleep", WorkKind::sleep}});
    const bool lognormal = p.work_dist == WorkDist::lognormal;
    const bool bimodal = p.work_dist == WorkDist::bimodal;
    only_with(check, table, prefix, "work_sigma", lognormal, "work_dist = \"lognormal\"");
    only_with(check, table, prefix, "work_p99", lognormal, "work_dist = \"lognormal\"");
    only_with(check, table, prefix, "work_slow", bimodal, "work_dist = \"bimodal\"");
    only_with(check, table, prefix, "work_slow_share", bimodal, "work_dist = \"bimodal\"");
    if (p.work_dist != WorkDist::fixed && p.work.count() == 0 &&
        check.find(table, "work_dist") != nullptr)
        check.error(
            *check.find(table, "work_dist"), prefix + "work_dist",
            std::string("needs a work above 0 (its ") + (bimodal ? "common time" : "mean") + ")");
    if (lognormal) {
        const TomlValue* sigma = check.find(table, "work_sigma");
        const TomlValue* p99 = check.find(table, "work_p99");
        if ((sigma == nullptr) == (p99 == nullptr)) {
            check.error(*check.find(table, "work_dist"), prefix + "work_dist",
                        "\"lognormal\" needs one of work_sigma (the spread of ln work) or "
                        "work_p99 (its 99th percentile)");
        } else if (sigma != nullptr) {
            check.number(table, prefix, "work_sigma", p.work_sigma, 0.01, 3.0);
        } else {
            check.duration(table, prefix, "work_p99", p.work_p99, Nanos(1),
                           std::chrono::seconds(10));
            // mean m and p99 q of a lognormal: ln q - ln m = z s - s^2 / 2, z = 2.3263.
            constexpr double kZ99 = 2.3263478740408408;
            const double ratio =
                std::log(static_cast<double>(p.work_p99.count()) /
                         static_cast<double>(std::max<std::int64_t>(p.work.count(), 1)));
            if (p.work.count() > 0 && (ratio <= 0 || ratio >= kZ99 * kZ99 / 2)) {
                check.error(*p99, prefix + "work_p99",
                            "must be above work and below 14.9 times it, for a lognormal of that "
                            "mean (got \"" +
                                format_duration(p.work_p99) + "\" with work \"" +
                                format_duration(p.work) + "\")");
            } else if (p.work.count() > 0) {
                p.work_sigma = kZ99 - std::sqrt(kZ99 * kZ99 - 2 * ratio);
            }
        }
    }
    if (bimodal) {
        if (check.find(table, "work_slow") == nullptr ||
            check.find(table, "work_slow_share") == nullptr)
            check.error(*check.find(table, "work_dist"), prefix + "work_dist",
                        "\"bimodal\" needs work_slow (the other time) and work_slow_share (the "
                        "share of events that take it, 0 to 1)");
        check.duration(table, prefix, "work_slow", p.work_slow, Nanos(0), std::chrono::seconds(1));
        check.number(table, prefix, "work_slow_share", p.work_slow_share, 0.0, 1.0);
    }
}

// arrival, burst and phase: how a paced eventfd producer's events arrive.
void validate_arrival(TomlValidator& check, const TomlValue& table, const std::string& prefix,
                      ProducerConfig& p) {
    if (check.choice(table, prefix, "arrival", p.arrival,
                     {{"paced", Arrival::paced},
                      {"poisson", Arrival::poisson},
                      {"burst", Arrival::burst}}) &&
        p.arrival != Arrival::paced && p.rate == 0)
        check.error(*check.find(table, "arrival"), prefix + "arrival",
                    "needs a rate above 0: a flat-out producer (rate = 0) has no arrivals");
    only_with(check, table, prefix, "burst", p.arrival == Arrival::burst, "arrival = \"burst\"");
    if (p.arrival == Arrival::burst) {
        if (check.find(table, "burst") == nullptr)
            check.error(*check.find(table, "arrival"), prefix + "arrival",
                        "\"burst\" needs burst, the events that come at once (2..1000000)");
        check.integer(table, prefix, "burst", p.burst, 2, 1'000'000);
    }
    check.choice(table, prefix, "phase", p.phase,
                 {{"spread", Phase::spread}, {"aligned", Phase::aligned}});
}

void validate_producer(TomlValidator& check, const TomlValue& table, std::size_t index,
                       ProducerConfig& p) {
    const std::string prefix = "producer[" + std::to_string(index) + "].";
    const auto header_line = TomlValidator::line_of(table);

    if (const std::string* name = check.string(table, prefix, "name")) {
        if (valid_name(*name)) {
            p.name = *name;
        } else {
            check.error(*check.find(table, "name"), prefix + "name",
                        "must be 1 to 32 characters of A-Z a-z 0-9 _ - (got \"" + *name + "\")");
        }
    } else if (check.find(table, "name") == nullptr) {
        check.error(header_line, prefix + "name", "missing: every producer needs a unique name");
    }

    bool kind_known = false;
    if (check.find(table, "kind") == nullptr) {
        check.error(header_line, prefix + "kind", "missing: must be eventfd|timerfd");
    } else {
        kind_known =
            check.choice(table, prefix, "kind", p.kind,
                         {{"eventfd", ProducerKind::eventfd}, {"timerfd", ProducerKind::timerfd}});
    }

    for (const auto& [key, value] : table.as_table()) {
        const bool is_eventfd_key = kEventfdKeys.contains(key);
        const bool is_timerfd_key = kTimerfdKeys.contains(key);
        if (kCommonProducerKeys.contains(key)) continue;
        if (!is_eventfd_key && !is_timerfd_key) {
            std::vector<std::string> known(kCommonProducerKeys.begin(), kCommonProducerKeys.end());
            known.insert(known.end(), kEventfdKeys.begin(), kEventfdKeys.end());
            known.insert(known.end(), kTimerfdKeys.begin(), kTimerfdKeys.end());
            check.error(value, prefix + key, "unknown key (known: " + join(known) + ")");
        } else if (kind_known && (p.kind == ProducerKind::eventfd) != is_eventfd_key) {
            check.error(value, prefix + key,
                        std::string("belongs to ") + (is_eventfd_key ? "eventfd" : "timerfd") +
                            " producers, and this one is kind = \"" + to_string(p.kind) + "\"");
        }
    }

    check.integer(table, prefix, "threads", p.threads, 1, 1024);
    check.duration(table, prefix, "work", p.work, Nanos(0), std::chrono::seconds(1));
    validate_work(check, table, prefix, p);
    if (check.find(table, "seed") != nullptr) {
        std::int64_t seed = 0;
        check.integer(table, prefix, "seed", seed, 0, std::numeric_limits<std::int64_t>::max());
        p.seed = static_cast<std::uint64_t>(seed);
    }
    validate_placement(check, table, prefix, p.placement);
    check.integer(table, prefix, "rate", p.rate, 0, 100'000'000);
    validate_arrival(check, table, prefix, p);
    check.choice(table, prefix, "fd_mode", p.fd_mode,
                 {{"per-event", FdMode::per_event},
                  {"persistent", FdMode::persistent},
                  {"semaphore", FdMode::semaphore}});
    check.integer(table, prefix, "max_in_flight", p.max_in_flight, 1, 1'000'000);
    if (check.choice(table, prefix, "fire", p.fire,
                     {{"write", FireMode::write}, {"create", FireMode::create}}) &&
        p.fire == FireMode::create && p.fd_mode != FdMode::per_event) {
        check.error(*check.find(table, "fire"), prefix + "fire",
                    "fire = \"create\" is for per-event producers; a persistent or semaphore fd "
                    "is created once");
        p.fire = FireMode::write;
    }
    check.integer(table, prefix, "timers", p.timers, 1, 65'536);
    check.duration(table, prefix, "initial", p.initial, Nanos(1), std::chrono::hours(24 * 365));
    check.duration(table, prefix, "interval", p.interval, Nanos(0), std::chrono::hours(24 * 365));
    check.choice(table, prefix, "clock", p.clock,
                 {{"monotonic", CLOCK_MONOTONIC},
                  {"realtime", CLOCK_REALTIME},
                  {"boottime", CLOCK_BOOTTIME}});
}

}  // namespace

Config validate_config(const TomlValue& root, const std::string& file) {
    TomlValidator check(file);
    Config config;
    config.source = file;
    check.check_keys(root, "", kTopKeys);

    if (const TomlValue* daemon = check.table(root, "daemon")) {
        check.check_keys(*daemon, "daemon.", kDaemonKeys);
        check.integer(*daemon, "daemon.", "consumers", config.daemon.consumers, 1, 1024);
        check.integer(*daemon, "daemon.", "max_events", config.daemon.max_events, 1, 4096);
        check.duration(*daemon, "daemon.", "stats_interval", config.daemon.stats_interval, Nanos(0),
                       std::chrono::hours(24));
        check.duration(*daemon, "daemon.", "shutdown_timeout", config.daemon.shutdown_timeout,
                       std::chrono::milliseconds(1), std::chrono::hours(1));
        check.duration(*daemon, "daemon.", "stall_after", config.daemon.stall_after, Nanos(0),
                       std::chrono::hours(1));
        if (config.daemon.stall_after.count() != 0 &&
            config.daemon.stall_after < std::chrono::milliseconds(10)) {
            check.error(*check.find(*daemon, "stall_after"), "daemon.stall_after",
                        "must be \"0s\" (off) or at least 10ms (got \"" +
                            format_duration(config.daemon.stall_after) + "\")");
            config.daemon.stall_after = std::chrono::seconds(1);
        }
        check.duration(*daemon, "daemon.", "warmup", config.daemon.warmup, Nanos(0),
                       std::chrono::hours(1));
        check.duration(*daemon, "daemon.", "spin", config.daemon.spin, Nanos(0),
                       std::chrono::milliseconds(100));
        validate_placement(check, *daemon, "daemon.", config.daemon.placement);
        if (check.find(*daemon, "cpu_dma_latency") != nullptr) {
            Nanos latency{-1};
            check.duration(*daemon, "daemon.", "cpu_dma_latency", latency, Nanos(0),
                           std::chrono::seconds(1));
            if (latency.count() >= 0) config.daemon.cpu_dma_latency = latency;
        }
        if (const TomlValue* v = check.find(*daemon, "mlockall")) {
            if (!v->is_boolean()) {
                check.error(*v, "daemon.mlockall",
                            std::string("expected a boolean, got ") + type_name(v->type()));
            } else {
                config.daemon.mlockall = v->as_boolean();
            }
        }
    }

    if (const TomlValue* explain = check.table(root, "explain"))
        validate_explain(check, *explain, config);

    if (const TomlValue* slo = check.table(root, "slo")) {
        std::set<std::string> keys(slo_latency_keys().begin(), slo_latency_keys().end());
        keys.insert(slo_count_keys().begin(), slo_count_keys().end());
        keys.insert("allow_non_stationary");
        check.check_keys(*slo, "slo.", keys);
        if (const TomlValue* v = check.find(*slo, "allow_non_stationary")) {
            if (!v->is_boolean()) {
                check.error(*v, "slo.allow_non_stationary",
                            std::string("expected a boolean, got ") + type_name(v->type()));
            } else {
                config.slo.allow_non_stationary = v->as_boolean();
            }
        }
        for (const auto& key : slo_latency_keys()) {
            Nanos limit{-1};
            check.duration(*slo, "slo.", key, limit, Nanos(0), std::chrono::hours(1));
            if (limit.count() >= 0) config.slo.latency[key] = limit;
        }
        for (const auto& key : slo_count_keys()) {
            std::int64_t limit = -1;
            check.integer(*slo, "slo.", key, limit, 0, 1'000'000'000'000'000'000);
            if (limit >= 0) config.slo.counts[key] = static_cast<std::uint64_t>(limit);
        }
    }

    if (const TomlValue* log = check.table(root, "log")) {
        check.check_keys(*log, "log.", kLogKeys);
        if (const std::string* level = check.string(*log, "log.", "level")) {
            if (std::find(kLevels.begin(), kLevels.end(), *level) == kLevels.end()) {
                check.error(*check.find(*log, "level"), "log.level",
                            "must be one of " + join(kLevels) + " (got \"" + *level + "\")");
            } else {
                config.log.level = *level;
            }
        }
        check.choice(*log, "log.", "format", config.log.format,
                     {{"json", LogFormat::json}, {"text", LogFormat::text}});
        const bool sink_ok = check.choice(*log, "log.", "sink", config.log.sink,
                                          {{"auto", LogSink::automatic},
                                           {"stderr", LogSink::stderr_sink},
                                           {"journald", LogSink::journald},
                                           {"file", LogSink::file}});
        if (const std::string* path = check.string(*log, "log.", "file")) config.log.file = *path;
        if (sink_ok && config.log.sink == LogSink::file && config.log.file.empty()) {
            check.error(*check.find(*log, "sink"), "log.file",
                        "sink = \"file\" needs a non-empty log.file path");
        }
    }

    if (const TomlValue* metrics = check.table(root, "metrics")) {
        check.check_keys(*metrics, "metrics.", kMetricsKeys);
        if (const std::string* path = check.string(*metrics, "metrics.", "textfile")) {
            if (!path->empty() && !path->ends_with(".prom")) {
                check.error(*check.find(*metrics, "textfile"), "metrics.textfile",
                            "must end in .prom, as node_exporter's textfile collector reads only "
                            "those (got \"" +
                                *path + "\")");
            } else if (const std::string why = unwritable_dir_of(*path); !why.empty()) {
                check.error(*check.find(*metrics, "textfile"), "metrics.textfile", why);
            } else {
                config.metrics.textfile = *path;
            }
        }
        if (const std::string* listen = check.string(*metrics, "metrics.", "listen")) {
            std::string why;
            if (listen->empty() || parse_listen(*listen, &why))
                config.metrics.listen = *listen;
            else
                check.error(*check.find(*metrics, "listen"), "metrics.listen", why);
        }
    }

    std::vector<Need> needs_of_producers;  // where each producer's table and max_in_flight are
    if (const TomlValue* producers = check.find(root, "producer")) {
        if (!producers->is_array()) {
            check.error(*producers, "producer",
                        std::string("expected an array of tables ([[producer]]), got ") +
                            type_name(producers->type()));
        } else {
            std::map<std::string, std::uint32_t> first_line;
            std::vector<Need>& needs = needs_of_producers;
            const auto& array = producers->as_array();
            for (std::size_t i = 0; i < array.size(); ++i) {
                const std::string key = "producer[" + std::to_string(i) + "]";
                if (!array[i].is_table()) {
                    check.error(array[i], key,
                                std::string("expected a table, got ") + type_name(array[i].type()));
                    continue;
                }
                ProducerConfig p;
                validate_producer(check, array[i], i, p);
                if (p.name.empty()) continue;
                const auto line = TomlValidator::line_of(array[i]);
                if (const auto it = first_line.find(p.name); it != first_line.end()) {
                    check.error(*check.find(array[i], "name"), key + ".name",
                                "duplicate producer name \"" + p.name + "\" (first used on line " +
                                    std::to_string(it->second) + ")");
                    continue;
                }
                first_line.emplace(p.name, line);
                needs.push_back(
                    {i, line,
                     check.find(array[i], "max_in_flight") != nullptr
                         ? TomlValidator::line_of(*check.find(array[i], "max_in_flight"))
                         : line});
                config.producers.push_back(std::move(p));
            }
        }
    }

    check_resources(check, config, needs_of_producers);
    if (auto issues = check.take(); !issues.empty()) throw ConfigError(std::move(issues));
    return config;
}

}  // namespace evfly::detail
