// The only translation unit that includes toml11.
#include "evfly/config.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <toml.hpp>

#include "evfly/fd.h"
#include "sched_policy.h"
#include "utf8.h"

namespace evfly {
namespace {

using Value = toml::value;
using OrderedValue = toml::basic_value<toml::discard_comments, std::map, std::vector>;

const std::set<std::string> kTopKeys{"daemon", "log", "metrics", "slo", "producer"};
const std::set<std::string> kDaemonKeys{
    "consumers", "max_events",  "stats_interval", "shutdown_timeout", "stall_after",
    "warmup",    "spin",        "cpus",           "policy",           "priority",
    "nice",      "timer_slack", "mlockall",       "cpu_dma_latency"};
const std::set<std::string> kLogKeys{"level", "format", "sink", "file"};
const std::set<std::string> kMetricsKeys{"textfile"};
const std::set<std::string> kCommonProducerKeys{
    "name", "kind", "threads", "work", "cpus", "policy", "priority", "nice", "timer_slack"};
const std::set<std::string> kEventfdKeys{"rate", "fd_mode", "max_in_flight", "fire"};
const std::set<std::string> kTimerfdKeys{"timers", "initial", "interval", "clock"};
const std::vector<std::string> kLevels{"trace", "debug",    "info", "warn",
                                       "error", "critical", "off"};

const char* type_name(toml::value_t t) {
    switch (t) {
        case toml::value_t::boolean:
            return "a boolean";
        case toml::value_t::integer:
            return "an integer";
        case toml::value_t::floating:
            return "a float";
        case toml::value_t::string:
            return "a string";
        case toml::value_t::offset_datetime:
        case toml::value_t::local_datetime:
        case toml::value_t::local_date:
        case toml::value_t::local_time:
            return "a date/time";
        case toml::value_t::array:
            return "an array";
        case toml::value_t::table:
            return "a table";
        default:
            return "nothing";
    }
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : "|") + item;
    return out;
}

// Collects every problem; never throws until finish().
class Validator {
  public:
    explicit Validator(std::string file) : file_(std::move(file)) {}

    void error(std::uint32_t line, std::string key, std::string message) {
        issues_.push_back({file_, line, std::move(key), std::move(message)});
    }
    void error(const Value& v, std::string key, std::string message) {
        error(line_of(v), std::move(key), std::move(message));
    }
    static std::uint32_t line_of(const Value& v) {
        return static_cast<std::uint32_t>(v.location().line());
    }

    void check_keys(const Value& table, const std::string& prefix,
                    const std::set<std::string>& allowed) {
        for (const auto& [key, value] : table.as_table()) {
            if (!allowed.contains(key)) {
                std::vector<std::string> known(allowed.begin(), allowed.end());
                error(value, prefix + key, "unknown key (known: " + join(known) + ")");
            }
        }
    }

    const Value* find(const Value& table, const std::string& key) {
        const auto& t = table.as_table();
        const auto it = t.find(key);
        return it == t.end() ? nullptr : &it->second;
    }

    template <typename T>
    void integer(const Value& table, const std::string& prefix, const std::string& key, T& out,
                 std::int64_t min, std::int64_t max) {
        const Value* v = find(table, key);
        if (v == nullptr) return;
        if (!v->is_integer()) {
            error(*v, prefix + key,
                  std::string("expected an integer, got ") + type_name(v->type()));
            return;
        }
        // toml11 stores integers as int64; range-check before narrowing so nothing wraps.
        const std::int64_t n = v->as_integer();
        if (n < min || n > max) {
            // toml11 3.7 turns a literal beyond 64 bits into INT64_MAX/MIN without a word, so
            // do not echo those back as if they were what the file says.
            const bool at_limit = n == std::numeric_limits<std::int64_t>::max() ||
                                  n == std::numeric_limits<std::int64_t>::min();
            error(*v, prefix + key,
                  "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                      (at_limit ? " (got a number at or beyond the 64-bit limit)"
                                : " (got " + std::to_string(n) + ")"));
            return;
        }
        out = static_cast<T>(n);
    }

    const std::string* string(const Value& table, const std::string& prefix,
                              const std::string& key) {
        const Value* v = find(table, key);
        if (v == nullptr) return nullptr;
        if (!v->is_string()) {
            error(*v, prefix + key, std::string("expected a string, got ") + type_name(v->type()));
            return nullptr;
        }
        return &v->as_string().str;
    }

    // Returns true when the key was present and valid.
    template <typename E>
    bool choice(const Value& table, const std::string& prefix, const std::string& key, E& out,
                const std::vector<std::pair<std::string, E>>& options) {
        const std::string* s = string(table, prefix, key);
        if (s == nullptr) return false;
        std::vector<std::string> names;
        for (const auto& [name, value] : options) {
            if (*s == name) {
                out = value;
                return true;
            }
            names.push_back(name);
        }
        error(*find(table, key), prefix + key,
              "must be one of " + join(names) + " (got \"" + *s + "\")");
        return false;
    }

    void duration(const Value& table, const std::string& prefix, const std::string& key, Nanos& out,
                  Nanos min, Nanos max) {
        const std::string* s = string(table, prefix, key);
        if (s == nullptr) return;
        std::string why;
        const auto d = parse_duration(*s, &why);
        if (!d) {
            error(*find(table, key), prefix + key, why);
        } else if (*d < min || *d > max) {
            error(*find(table, key), prefix + key,
                  "must be between " + format_duration(min) + " and " + format_duration(max) +
                      " (got \"" + *s + "\")");
        } else {
            out = *d;
        }
    }

    const Value* table(const Value& parent, const std::string& key) {
        const Value* v = find(parent, key);
        if (v == nullptr) return nullptr;
        if (!v->is_table()) {
            error(*v, key, std::string("expected a table, got ") + type_name(v->type()));
            return nullptr;
        }
        return v;
    }

    std::vector<ConfigIssue> take() {
        std::stable_sort(
            issues_.begin(), issues_.end(),
            [](const ConfigIssue& a, const ConfigIssue& b) { return a.line < b.line; });
        return std::move(issues_);
    }

  private:
    std::string file_;
    std::vector<ConfigIssue> issues_;
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

// cpus, policy, priority, nice and timer_slack of [daemon] or a [[producer]].
void validate_placement(Validator& check, const Value& table, const std::string& prefix,
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
    for (const auto& known : detail::kSchedPolicies)
        policies.emplace_back(known.name, known.policy);
    if (check.choice(table, prefix, "policy", policy, policies)) p.policy = policy;
    const bool realtime = p.policy == SchedPolicy::fifo || p.policy == SchedPolicy::rr;
    if (const Value* v = check.find(table, "priority")) {
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
    if (const Value* v = check.find(table, "nice")) {
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

bool valid_name(const std::string& name) {
    if (name.empty() || name.size() > 32) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

void validate_producer(Validator& check, const Value& table, std::size_t index, ProducerConfig& p) {
    const std::string prefix = "producer[" + std::to_string(index) + "].";
    const auto header_line = Validator::line_of(table);

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
    validate_placement(check, table, prefix, p.placement);
    check.integer(table, prefix, "rate", p.rate, 0, 100'000'000);
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

struct Need {
    std::size_t index;             // producer[index]
    std::uint32_t line;            // its table
    std::uint32_t in_flight_line;  // its max_in_flight key (or the table)
};

// What the engine will need of the host, checked before anything starts: the slots of every
// fd that may be in flight (at most kMaxSlots), and the fds that timers and persistent producers
// hold for as long as they run (at most the hard RLIMIT_NOFILE, to which evflyd raises its own).
void check_resources(Validator& check, const Config& config, const std::vector<Need>& needs) {
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

Config validate(const Value& root, const std::string& file) {
    Validator check(file);
    Config config;
    config.source = file;
    check.check_keys(root, "", kTopKeys);

    if (const Value* daemon = check.table(root, "daemon")) {
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
        if (const Value* v = check.find(*daemon, "mlockall")) {
            if (!v->is_boolean()) {
                check.error(*v, "daemon.mlockall",
                            std::string("expected a boolean, got ") + type_name(v->type()));
            } else {
                config.daemon.mlockall = v->as_boolean();
            }
        }
    }

    if (const Value* slo = check.table(root, "slo")) {
        std::set<std::string> keys(slo_latency_keys().begin(), slo_latency_keys().end());
        keys.insert(slo_count_keys().begin(), slo_count_keys().end());
        check.check_keys(*slo, "slo.", keys);
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

    if (const Value* log = check.table(root, "log")) {
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

    if (const Value* metrics = check.table(root, "metrics")) {
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
    }

    std::vector<Need> needs_of_producers;  // where each producer's table and max_in_flight are
    if (const Value* producers = check.find(root, "producer")) {
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
                const auto line = Validator::line_of(array[i]);
                if (const auto it = first_line.find(p.name); it != first_line.end()) {
                    check.error(*check.find(array[i], "name"), key + ".name",
                                "duplicate producer name \"" + p.name + "\" (first used on line " +
                                    std::to_string(it->second) + ")");
                    continue;
                }
                first_line.emplace(p.name, line);
                needs.push_back({i, line,
                                 check.find(array[i], "max_in_flight") != nullptr
                                     ? Validator::line_of(*check.find(array[i], "max_in_flight"))
                                     : line});
                config.producers.push_back(std::move(p));
            }
        }
    }

    check_resources(check, config, needs_of_producers);
    if (auto issues = check.take(); !issues.empty()) throw ConfigError(std::move(issues));
    return config;
}

ConfigIssue file_issue(const std::string& file, std::string message) {
    return ConfigIssue{file, 0, "", std::move(message)};
}

}  // namespace

std::string ConfigIssue::to_string() const {
    std::string out = file;
    if (line != 0) out += ":" + std::to_string(line);
    out += ": ";
    if (!key.empty()) out += "key '" + key + "': ";
    return out + message;
}

namespace {
std::string summarize(const std::vector<ConfigIssue>& issues) {
    std::string out;
    for (const auto& issue : issues) out += (out.empty() ? "" : "\n") + issue.to_string();
    return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : std::runtime_error(summarize(issues)), issues_(std::move(issues)) {}

namespace {

// The offset of the first byte that is not part of well-formed UTF-8, or npos. TOML files must
// be UTF-8, and toml11 3.7 reads past the end of its buffer on a multi-byte sequence cut short
// by the end of the input (found by tests/fuzz), so nothing else reaches it.
std::size_t first_invalid_utf8(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t len = detail::utf8_sequence_length(text, i);
        if (len == 0) return i;
        i += len;
    }
    return std::string_view::npos;
}

}  // namespace

Config parse_config(const std::string& text, const std::string& name) {
    // An empty file is far more often a truncated write (a full disk, an interrupted deploy)
    // than a wish to run nothing, and reloading one would remove every producer.
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        throw ConfigError({ConfigIssue{
            name, 1, "",
            text.empty() ? "is empty; a config with no producer says so with at least a table "
                           "header, e.g. [daemon]"
                         : "holds only whitespace; a config with no producer says so with at "
                           "least a table header, e.g. [daemon]"}});
    }
    if (const std::size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
        const auto before = std::string_view(text).substr(0, bad);
        const auto line =
            static_cast<std::uint32_t>(1 + std::count(before.begin(), before.end(), '\n'));
        const std::size_t column =
            bad - (before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1) + 1;
        char byte[8];
        std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[bad]));
        throw ConfigError(
            {ConfigIssue{name, line, "",
                         std::string("not UTF-8: byte ") + byte + " at column " +
                             std::to_string(column) + " (a TOML file must be UTF-8)"}});
    }
    Value root;
    try {
        std::istringstream stream(text);
        root = toml::parse(stream, name);
    } catch (const toml::syntax_error& e) {
        // toml11's own message spans several lines with a source excerpt; keep its first line
        // (the reason) and take the line number from the location it reports.
        std::string what = e.what();
        std::string reason = what.substr(0, what.find('\n'));
        if (reason.rfind("[error] ", 0) == 0) reason.erase(0, 8);
        const auto line = static_cast<std::uint32_t>(e.location().line());
        throw ConfigError({ConfigIssue{name, line, "", "TOML syntax error: " + reason}});
    } catch (const std::exception& e) {
        throw ConfigError({file_issue(name, std::string("cannot parse: ") + e.what())});
    }
    return validate(root, name);
}

Config load_config(const std::filesystem::path& path) {
    const std::string name = path.string();
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
    Fd fd(::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd)
        throw ConfigError({file_issue(name, std::string("cannot open: ") + errno_text(errno))});
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw ConfigError({file_issue(name, std::string("cannot stat: ") + errno_text(errno))});
    }
    if (S_ISDIR(st.st_mode)) throw ConfigError({file_issue(name, "is a directory, not a file")});
    if (!S_ISREG(st.st_mode)) throw ConfigError({file_issue(name, "is not a regular file")});
    if (static_cast<std::size_t>(st.st_size) > kMaxConfigBytes) {
        throw ConfigError({file_issue(name, "is " + std::to_string(st.st_size) +
                                                " bytes; a config may be at most " +
                                                std::to_string(kMaxConfigBytes) + " bytes")});
    }
    std::string text;
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw ConfigError({file_issue(name, std::string("cannot read: ") + errno_text(errno))});
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > kMaxConfigBytes) {
            throw ConfigError({file_issue(
                name, "grew past " + std::to_string(kMaxConfigBytes) + " bytes while being read")});
        }
    }
    return parse_config(text, name);
}

const std::string& embedded_default_config() {
    static const std::string text =
        R"(# evfly's embedded default: the classic eventfd/timerfd + epoll demo.
[daemon]
consumers = 4
max_events = 64
stats_interval = "10s"
shutdown_timeout = "5s"

[log]
level = "info"
format = "json"
sink = "auto"

[[producer]]
name = "notify"
kind = "eventfd"
threads = 2
rate = 1
fd_mode = "per-event"
max_in_flight = 1024
work = "0us"

[[producer]]
name = "tick"
kind = "timerfd"
threads = 2
timers = 1
initial = "1s"
interval = "3s"
clock = "monotonic"
)";
    return text;
}

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
    static const std::vector<std::string> keys{"max_lost",   "max_skipped",  "max_late",
                                               "max_stalls", "max_overruns", "max_clock_jumps"};
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
    top["metrics"] = OrderedValue::table_type{{"textfile", config.metrics.textfile}};
    if (!config.slo.empty()) {
        OrderedValue::table_type slo;
        for (const auto& [key, limit] : config.slo.latency)
            slo.emplace(key, format_duration(limit));
        for (const auto& [key, limit] : config.slo.counts)
            slo.emplace(key, static_cast<std::int64_t>(limit));
        top["slo"] = slo;
    }
    OrderedValue::array_type producers;
    for (const auto& p : config.producers) {
        OrderedValue::table_type t{{"name", p.name},
                                   {"kind", to_string(p.kind)},
                                   {"threads", p.threads},
                                   {"work", format_duration(p.work)}};
        add_placement(t, p.placement);
        if (p.kind == ProducerKind::eventfd) {
            t.emplace("rate", static_cast<std::int64_t>(p.rate));
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
