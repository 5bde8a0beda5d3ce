// evflyd: the command line, the exit codes, and the order in which the process comes up and
// goes down. The only translation unit that includes CLI11.
#include <fcntl.h>
#include <sysexits.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/daemon.h"
#include "evfly/duration.h"
#include "evfly/fd.h"
#include "evfly/log.h"
#include "evfly/summary.h"
#include "evfly/sweep.h"
#include "evfly/system.h"

namespace {

constexpr int kExitOk = EX_OK;                 // 0
constexpr int kExitUsage = EX_USAGE;           // 64
constexpr int kExitSoftware = EX_SOFTWARE;     // 70
constexpr int kExitOsError = EX_OSERR;         // 71
constexpr int kExitCantCreate = EX_CANTCREAT;  // 73: the summary cannot be written
constexpr int kExitConfig = EX_CONFIG;         // 78
constexpr int kExitSloViolated = 79;           // the run ended, and an [slo] limit was not met

struct Options {
    std::string config_path;
    bool check_config = false;
    bool print_config = false;
    std::string run_for;
    std::string summary_path;
    std::string log_level;
    std::string log_format;
    std::string sweep;
    std::string stage;
    std::vector<std::string> targets;
};

evfly::Config load(const Options& options) {
    if (!options.config_path.empty()) return evfly::load_config(options.config_path);
    std::error_code ec;
    if (std::filesystem::exists(evfly::kDefaultConfigPath, ec))
        return evfly::load_config(evfly::kDefaultConfigPath);
    return evfly::parse_config(evfly::embedded_default_config(), evfly::kEmbeddedName);
}

// The command line's --log-level and --log-format win over the file, at start and on reload.
void apply_overrides(const Options& options, evfly::Config& config) {
    if (!options.log_level.empty()) config.log.level = options.log_level;
    if (!options.log_format.empty())
        config.log.format =
            options.log_format == "text" ? evfly::LogFormat::text : evfly::LogFormat::json;
}

// Why a summary cannot be written at `path`, or "" when it can: tried at start with a file of
// the name it will be written through, so a run of an hour does not end in a lost summary.
std::string summary_unwritable(const std::string& path) {
    if (path == "-") return {};
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST) return {};  // a leftover of an earlier run: replaced at the end
        return evfly::errno_text(errno);
    }
    ::close(fd);
    ::unlink(tmp.c_str());
    return {};
}

bool write_summary(const std::string& path, const std::string& json) {
    if (path == "-") {
        std::cout << json << std::flush;
        return static_cast<bool>(std::cout);
    }
    // Write beside the target and rename, so a reader never sees half a summary.
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << json;
        out.flush();
        if (!out) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

int run(int argc, char** argv) {
    CLI::App app{
        "evflyd: eventfd/timerfd + epoll worker-pool daemon; measures how fast this host "
        "delivers events and timer expirations to a pool of consumer threads."};
    app.set_version_flag("--version", std::string("evflyd ") + EVFLY_VERSION);
    Options options;
    app.add_option("-c,--config", options.config_path,
                   std::string("config file (default: ") + evfly::kDefaultConfigPath +
                       " if present, else the embedded default)");
    app.add_flag("--check-config", options.check_config,
                 "validate the config, print every error, exit 0 or 78");
    app.add_flag("--print-config", options.print_config,
                 "print the effective config as TOML and exit");
    app.add_option("--run-for", options.run_for,
                   "run this long (e.g. 10s), then stop as on SIGTERM")
        ->check([](const std::string& text) {
            std::string why;
            return evfly::parse_duration(text, &why) ? std::string() : why;
        });
    app.add_option("--summary", options.summary_path,
                   "write the final summary JSON here at exit ('-': stdout)");
    app.add_option("--sweep", options.sweep,
                   "run one stage per value (consumers=1..8, consumers=2,4,8, threads=1..4), "
                   "print a table, recommend a value, and stop");
    app.add_option("--stage", options.stage,
                   "a sweep stage's measured time (default 10s) or sample count (e.g. 20000)");
    app.add_option("--target", options.targets,
                   "a bound a sweep stage must meet, e.g. p99=2ms (default: the [slo] latency "
                   "limits); may be given more than once");
    app.add_option("--log-level", options.log_level, "override log.level")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    app.add_option("--log-format", options.log_format, "override log.format")
        ->check(CLI::IsMember({"json", "text"}));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
        std::string what = e.what();
        std::replace(what.begin(), what.end(), '\n', ' ');
        std::fprintf(stderr, "evflyd: %s (see --help)\n", what.c_str());
        return kExitUsage;
    }

    std::optional<evfly::SweepPlan> sweep;
    {
        std::string why;
        const auto usage = [&why](const std::string& option) {
            std::fprintf(stderr, "evflyd: %s %s (see --help)\n", option.c_str(), why.c_str());
            return kExitUsage;
        };
        if (!options.sweep.empty()) {
            sweep = evfly::parse_sweep(options.sweep, &why);
            if (!sweep) return usage("--sweep");
            if (!options.run_for.empty()) {
                why = "cannot go with --run-for: a sweep stops after its last stage";
                return usage("--sweep");
            }
            if (!options.stage.empty() && !evfly::parse_stage(options.stage, *sweep, &why))
                return usage("--stage");
            for (const std::string& text : options.targets) {
                const auto target = evfly::parse_target(text, &why);
                if (!target) return usage("--target");
                sweep->targets.push_back(*target);
            }
        } else if (!options.stage.empty() || !options.targets.empty()) {
            why = "needs --sweep";
            return usage(options.stage.empty() ? "--target" : "--stage");
        }
    }

    evfly::Config config;
    try {
        config = load(options);
    } catch (const evfly::ConfigError& e) {
        for (const auto& issue : e.issues())
            std::fprintf(stderr, "evflyd: %s\n", issue.to_string().c_str());
        std::fprintf(stderr, "evflyd: %zu error%s in the config\n", e.issues().size(),
                     e.issues().size() == 1 ? "" : "s");
        return kExitConfig;
    }
    apply_overrides(options, config);
    if (sweep) {
        evfly::impose(*sweep, sweep->values.front(), config);
        if (sweep->targets.empty()) sweep->targets = evfly::targets_of(config.slo);
    }

    if (options.check_config) {
        std::printf("%s: OK\n", config.source.c_str());
        return kExitOk;
    }
    if (options.print_config) {
        std::cout << "# effective config of evflyd " << EVFLY_VERSION << " from " << config.source
                  << "\n"
                  << evfly::to_toml(config);
        return kExitOk;
    }

    if (!options.summary_path.empty()) {
        if (const std::string why = summary_unwritable(options.summary_path); !why.empty()) {
            std::fprintf(stderr, "evflyd: cannot write the summary to %s: %s\n",
                         options.summary_path.c_str(), why.c_str());
            return kExitCantCreate;
        }
    }

    // Before any thread exists (the logger's included): threads inherit the mask, and signals
    // are then only ever taken from the supervisor's signalfd.
    evfly::block_all_signals();
    evfly::set_thread_stack_size();
    const std::uint64_t fd_limit = evfly::raise_fd_limit();
    try {
        evfly::log::setup(config.log);
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "evflyd: %s\n", e.what());
        return kExitOsError;
    }
    evfly::log::set_thread_name("supervisor");
    evfly::log::emit(evfly::log::Level::debug, "fd limit", {{"nofile", fd_limit}});

    evfly::Resources resources;
    resources.fds_at_start = evfly::count_open_fds();
    evfly::RunOptions run_options;
    if (!options.run_for.empty()) run_options.run_for = evfly::parse_duration(options.run_for);
    run_options.sweep = sweep;
    run_options.reload = [&options] {
        evfly::Config next = load(options);
        apply_overrides(options, next);
        return next;
    };

    int status = kExitOk;
    // What the process says on stderr at its end, written after the log has been flushed and
    // closed, each line in one write: the log's own thread may be writing to stderr until then,
    // and the two used to interleave mid-line.
    std::vector<std::string> last_words;
    std::optional<evfly::RunResult> result;
    try {
        result = evfly::run_daemon(config, run_options);
    } catch (const std::system_error& e) {
        evfly::log::emit(evfly::log::Level::critical, "cannot start", {{"error", e.what()}});
        last_words.push_back(std::string("evflyd: cannot start: ") + e.what() + "\n");
        status = kExitOsError;
    } catch (const std::exception& e) {
        evfly::log::emit(evfly::log::Level::critical, "internal error", {{"error", e.what()}});
        last_words.push_back(std::string("evflyd: internal error: ") + e.what() + "\n");
        status = kExitSoftware;
    }
    if (result && !options.summary_path.empty()) {
        const evfly::Resources usage = evfly::sample_resources();
        resources.cpu_user_s = usage.cpu_user_s;
        resources.cpu_sys_s = usage.cpu_sys_s;
        resources.max_rss_kib = usage.max_rss_kib;
        resources.voluntary_ctx_switches = usage.voluntary_ctx_switches;
        resources.involuntary_ctx_switches = usage.involuntary_ctx_switches;
        resources.fds_at_exit = evfly::count_open_fds();
        if (!write_summary(options.summary_path,
                           evfly::summary_json(*result, resources, evfly::log::dropped()))) {
            evfly::log::emit(evfly::log::Level::err, "cannot write summary",
                             {{"path", options.summary_path}});
            last_words.push_back("evflyd: cannot write summary to " + options.summary_path + "\n");
            if (status == kExitOk) status = kExitCantCreate;
        }
    }
    std::string table;
    if (result && result->sweep) {
        table = evfly::sweep_table(*result->sweep);
        if (!result->sweep->plan.targets.empty() && !result->sweep->recommended) {
            last_words.push_back("evflyd: sweep: " + result->sweep->reason + "\n");
            if (status == kExitOk) status = kExitSloViolated;
        }
    }
    if (result && !result->slo.passed()) {
        std::string line = "evflyd: SLO violated:";
        for (const auto& v : result->slo.violations)
            line += v.note.empty() ? " " + v.key + "=" + std::to_string(v.actual) + v.unit +
                                         " (limit " + std::to_string(v.limit) + v.unit + ")"
                                   : " " + v.key + ": " + v.note;
        last_words.push_back(line + "\n");
        if (status == kExitOk) status = kExitSloViolated;
    }
    evfly::log::shutdown();
    // The sweep's table goes to stdout, unless the summary went there.
    if (!table.empty()) std::fputs(table.c_str(), options.summary_path == "-" ? stderr : stdout);
    for (const std::string& line : last_words) std::fputs(line.c_str(), stderr);
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "evflyd: internal error: %s\n", e.what());
        return kExitSoftware;
    }
}
