// Bad input, table-driven: hand-written broken configs and command lines. Each must give the
// documented exit code and a message that names the file, line and key (or the option), within
// a second, and start nothing: no "started" line, no summary written.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::Process;
using evfly::test::SpawnOptions;
using evfly::test::TempDir;

namespace {

constexpr int kExitUsage = 64;
constexpr int kExitConfig = 78;

struct BadConfig {
    const char* name;
    std::string text;
    int line;          // the line the message must name; 0: the file as a whole
    const char* key;   // the key it must name; "" when the problem is not one key's
    const char* says;  // a fragment of the reason
};

const std::string kProducer = "\n[[producer]]\nname = \"p\"\nkind = \"eventfd\"\n";

std::vector<BadConfig> bad_configs() {
    return {
        {"wrong_type", "[daemon]\nconsumers = \"four\"\n", 2, "daemon.consumers", "integer"},
        {"consumers_zero", "[daemon]\nconsumers = 0\n", 2, "daemon.consumers", "between 1"},
        {"consumers_too_many", "[daemon]\nconsumers = 1025\n", 2, "daemon.consumers", "1024"},
        {"max_events_zero", "[daemon]\nmax_events = 0\n", 2, "daemon.max_events", "between"},
        {"max_events_too_big", "[daemon]\nmax_events = 4097\n", 2, "daemon.max_events", "4096"},
        {"duration_as_integer", "[daemon]\nstats_interval = 10\n", 2, "daemon.stats_interval",
         "string"},
        {"duration_without_unit", "[daemon]\nstats_interval = \"10\"\n", 2, "daemon.stats_interval",
         "unit"},
        {"duration_bad_unit", "[daemon]\nstats_interval = \"10 parsecs\"\n", 2,
         "daemon.stats_interval", ""},
        {"duration_out_of_range", "[daemon]\nstats_interval = \"25h\"\n", 2,
         "daemon.stats_interval", "between"},
        {"duration_zero_not_allowed", "[daemon]\nshutdown_timeout = \"0s\"\n", 2,
         "daemon.shutdown_timeout", "between"},
        {"duration_negative", "[daemon]\nshutdown_timeout = \"-1s\"\n", 2,
         "daemon.shutdown_timeout", ""},
        {"duration_overflow", "[daemon]\nshutdown_timeout = \"99999999999999999999h\"\n", 2,
         "daemon.shutdown_timeout", ""},
        {"bad_level", "[log]\nlevel = \"verbose\"\n", 2, "log.level", "one of"},
        {"bad_format", "[log]\nformat = \"xml\"\n", 2, "log.format", "json"},
        {"bad_sink", "[log]\nsink = \"syslog\"\n", 2, "log.sink", "journald"},
        {"file_sink_without_file", "[log]\nsink = \"file\"\n", 2, "log.file", "log.file"},
        {"metrics_not_prom", "[metrics]\ntextfile = \"/tmp/x.txt\"\n", 2, "metrics.textfile",
         ".prom"},
        {"metrics_in_missing_dir", "[metrics]\ntextfile = \"/nonexistent-evfly-dir/x.prom\"\n", 2,
         "metrics.textfile", "is not usable"},
        {"unknown_key", "[daemon]\nconsumer = 4\n", 2, "daemon.consumer", "unknown key"},
        {"unknown_table", "[server]\nport = 1\n", 1, "server", "unknown key"},
        {"table_as_value", "daemon = 5\n", 1, "daemon", "table"},
        {"producer_not_array", "producer = 5\n", 1, "producer", "array of tables"},
        {"producer_unknown_key", kProducer + "colour = \"red\"\n", 5, "producer[0].colour",
         "unknown key"},
        {"producer_without_name", "[[producer]]\nkind = \"eventfd\"\n", 1, "producer[0].name",
         "missing"},
        {"producer_without_kind", "[[producer]]\nname = \"p\"\n", 1, "producer[0].kind", "missing"},
        {"producer_bad_kind", "[[producer]]\nname = \"p\"\nkind = \"pipe\"\n", 3,
         "producer[0].kind", "eventfd"},
        {"name_with_space", "[[producer]]\nname = \"my p\"\nkind = \"eventfd\"\n", 2,
         "producer[0].name", "characters"},
        {"name_too_long",
         "[[producer]]\nname = \"" + std::string(33, 'n') + "\"\nkind = \"eventfd\"\n", 2,
         "producer[0].name", "1 to 32"},
        {"duplicate_names", kProducer + kProducer, 7, "producer[1].name", "duplicate"},
        {"eventfd_with_timer_key", kProducer + "timers = 2\n", 5, "producer[0].timers", "timerfd"},
        {"timerfd_with_eventfd_key", "[[producer]]\nname = \"t\"\nkind = \"timerfd\"\nrate = 5\n",
         4, "producer[0].rate", "eventfd"},
        {"threads_zero", kProducer + "threads = 0\n", 5, "producer[0].threads", "between"},
        {"threads_too_many", kProducer + "threads = 1025\n", 5, "producer[0].threads", "1024"},
        {"rate_negative", kProducer + "rate = -1\n", 5, "producer[0].rate", "between"},
        {"rate_too_high", kProducer + "rate = 100000001\n", 5, "producer[0].rate", "between"},
        {"rate_int64_max", kProducer + "rate = 9223372036854775807\n", 5, "producer[0].rate",
         "between"},
        {"integer_past_64_bits", kProducer + "rate = 18446744073709551616\n", 5, "producer[0].rate",
         "64-bit limit"},
        {"slots_beyond_the_table", kProducer + "threads = 1024\nmax_in_flight = 1000000\n", 6,
         "producer[0].max_in_flight", "slots"},
        {"timer_fds_beyond_the_fd_limit",
         "[[producer]]\nname = \"t\"\nkind = \"timerfd\"\nthreads = 200\ntimers = 65536\n", 1,
         "producer[0]", "RLIMIT_NOFILE"},
        {"max_in_flight_zero", kProducer + "max_in_flight = 0\n", 5, "producer[0].max_in_flight",
         "between"},
        {"fd_mode_unknown", kProducer + "fd_mode = \"pooled\"\n", 5, "producer[0].fd_mode",
         "persistent"},
        {"work_too_long", kProducer + "work = \"2s\"\n", 5, "producer[0].work", "between"},
        {"timers_too_many", "[[producer]]\nname = \"t\"\nkind = \"timerfd\"\ntimers = 65537\n", 4,
         "producer[0].timers", "between"},
        {"interval_negative",
         "[[producer]]\nname = \"t\"\nkind = \"timerfd\"\ninterval = \"-5ms\"\n", 4,
         "producer[0].interval", ""},
        {"clock_unknown", "[[producer]]\nname = \"t\"\nkind = \"timerfd\"\nclock = \"tai\"\n", 4,
         "producer[0].clock", "monotonic"},
        {"toml_syntax_unterminated", "[daemon]\nconsumers = 4\n[log]\nlevel = \"info\n", 4, "",
         "syntax"},
        {"toml_duplicate_key", "[daemon]\nconsumers = 4\nconsumers = 5\n", 3, "", "syntax"},
        {"empty_file", "", 1, "", "empty"},
        {"whitespace_only", "  \n\t\n\r\n", 1, "", "whitespace"},
        {"not_utf8", "[daemon]\n# caf\xe9\nconsumers = 4\n", 2, "", "UTF-8"},
        {"utf8_bom_then_bad_key", "\xef\xbb\xbf[daemon]\nconsumers = 0\n", 2, "daemon.consumers",
         "between"},
        {"crlf_then_bad_key", "[daemon]\r\nmax_events = 64\r\nconsumers = 0\r\n", 3,
         "daemon.consumers", "between"},
        {"stall_after_as_integer", "[daemon]\nstall_after = 1\n", 2, "daemon.stall_after",
         "string"},
        {"stall_after_too_short", "[daemon]\nstall_after = \"5ms\"\n", 2, "daemon.stall_after",
         "at least 10ms"},
        {"stall_after_too_long", "[daemon]\nstall_after = \"2h\"\n", 2, "daemon.stall_after",
         "between"},
        {"warmup_negative", "[daemon]\nwarmup = \"-1s\"\n", 2, "daemon.warmup", ""},
        {"warmup_without_unit", "[daemon]\nwarmup = \"3\"\n", 2, "daemon.warmup", "unit"},
        {"warmup_too_long", "[daemon]\nwarmup = \"61m\"\n", 2, "daemon.warmup", "between"},
        {"slo_not_a_table", "slo = 3\n", 1, "slo", "table"},
        {"slo_unknown_key", "[slo]\neventfd_p98 = \"1ms\"\n", 2, "slo.eventfd_p98", "unknown key"},
        {"slo_latency_as_integer", "[slo]\neventfd_p99 = 200\n", 2, "slo.eventfd_p99", "string"},
        {"slo_latency_bad_unit", "[slo]\ntimerfd_p99 = \"200 parsecs\"\n", 2, "slo.timerfd_p99",
         ""},
        {"slo_latency_too_long", "[slo]\ntimerfd_max = \"2h\"\n", 2, "slo.timerfd_max", "between"},
        {"slo_count_negative", "[slo]\nmax_lost = -1\n", 2, "slo.max_lost", "between"},
        {"slo_count_as_string", "[slo]\nmax_skipped = \"0\"\n", 2, "slo.max_skipped", "integer"},
        {"slo_count_past_64_bits", "[slo]\nmax_stalls = 18446744073709551616\n", 2,
         "slo.max_stalls", "64-bit limit"},
    };
}

struct Outcome {
    int code = -1;
    std::string err;
    std::chrono::milliseconds took{0};
    bool summary_written = false;
};

// Runs evflyd as a daemon would start (not --check-config), so "starts nothing" is tested.
Outcome start_with(const std::vector<std::string>& args, const SpawnOptions& spawn = {}) {
    TempDir out;
    const std::string summary = out.path() + "/summary.json";
    std::vector<std::string> all{"--summary", summary};
    all.insert(all.end(), args.begin(), args.end());
    const auto begin = std::chrono::steady_clock::now();
    Process p(all, spawn);
    Outcome o;
    o.code = p.wait(10s).value_or(-1);
    o.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - begin);
    o.err = p.err();
    o.summary_written = std::filesystem::exists(summary);
    return o;
}

void expect_refused(const Outcome& o, int code) {
    EXPECT_EQ(o.code, code) << o.err;
    EXPECT_LT(o.took, 1s);
    EXPECT_FALSE(o.summary_written);
    EXPECT_EQ(o.err.find("\"started\""), std::string::npos) << o.err;
    EXPECT_EQ(o.err.find("started"), std::string::npos) << o.err;
}

class BadConfigFile : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigFile, IsRefusedWithFileLineAndKey) {
    const BadConfig& c = GetParam();
    TempDir dir;
    const std::string path = dir.write("bad.toml", c.text);
    std::string where = path + ":" + std::to_string(c.line) + ": ";
    if (*c.key != '\0') where += std::string("key '") + c.key + "': ";
    for (const bool check_only : {true, false}) {
        SCOPED_TRACE(check_only ? "--check-config" : "start");
        std::vector<std::string> args{"-c", path};
        if (check_only) args.push_back("--check-config");
        const Outcome o = start_with(args);
        expect_refused(o, kExitConfig);
        EXPECT_NE(o.err.find(where), std::string::npos) << "want '" << where << "' in:\n" << o.err;
        EXPECT_NE(o.err.find(c.says), std::string::npos) << o.err;
    }
}

INSTANTIATE_TEST_SUITE_P(Table, BadConfigFile, ::testing::ValuesIn(bad_configs()),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// Files that cannot be a config at all: the message names the file and the reason.
TEST(BadConfigPath, DirectoryFifoMissingHugeSymlinkLoopAndUnreadable) {
    TempDir dir;
    const std::string fifo = dir.path() + "/fifo.toml";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::string huge = dir.path() + "/huge.toml";
    {
        std::ofstream out(huge);
        const std::string comment = "# " + std::string(1022, 'x') + "\n";
        for (int i = 0; i < 10 * 1024; ++i) out << comment;  // 10 MiB
    }
    const std::string loop_a = dir.path() + "/loop_a.toml";
    const std::string loop_b = dir.path() + "/loop_b.toml";
    std::filesystem::create_directory_symlink(loop_b, loop_a);
    std::filesystem::create_directory_symlink(loop_a, loop_b);
    const struct {
        std::string path;
        const char* says;
    } cases[] = {
        {dir.path(), "is a directory"},
        {fifo, "not a regular file"},  // and it must not wait for a writer
        {dir.path() + "/missing.toml", "No such file"},
        {huge, "at most 1048576 bytes"},
        {loop_a, "symbolic links"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.path);
        const Outcome o = start_with({"-c", c.path});
        expect_refused(o, kExitConfig);
        EXPECT_NE(o.err.find(c.path + ": "), std::string::npos) << o.err;
        EXPECT_NE(o.err.find(c.says), std::string::npos) << o.err;
    }
}

TEST(BadConfigPath, UnreadableByAnUnprivilegedUser) {
    // A world-traversable directory with a config only its owner may read, and evflyd run as
    // someone else: nobody (65534) when the suite runs as root, else the file is made 000.
    TempDir dir;
    std::filesystem::permissions(dir.path(), std::filesystem::perms(0755));
    const std::string path = dir.write("private.toml", "[daemon]\nconsumers = 2\n");
    SpawnOptions spawn;
    if (::geteuid() == 0) {
        ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
        // The binary under test may sit where nobody cannot reach it: run a copy from here.
        spawn.program = dir.path() + "/evflyd";
        std::filesystem::copy_file(EVFLYD_PATH, spawn.program);
        std::filesystem::permissions(spawn.program, std::filesystem::perms(0755));
        spawn.uid = 65534;
    } else {
        ASSERT_EQ(::chmod(path.c_str(), 0), 0);
    }
    const Outcome o = start_with({"-c", path}, spawn);
    expect_refused(o, kExitConfig);
    EXPECT_NE(o.err.find(path + ": cannot open: Permission denied"), std::string::npos) << o.err;
}

// A summary that cannot be written is known at the start, not after an hour's run: exit 73
// (EX_CANTCREAT) at once, nothing started.
TEST(BadSummaryPath, IsRefusedAtTheStart) {
    for (const std::string& path :
         {std::string("/nonexistent-evfly-dir/s.json"), std::string("/proc/version/s.json")}) {
        SCOPED_TRACE(path);
        const auto begin = std::chrono::steady_clock::now();
        Process p({"--summary", path, "--run-for", "1h"});
        EXPECT_EQ(p.wait(10s).value_or(-1), 73) << p.err();
        EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s);
        EXPECT_NE(p.err().find("evflyd: cannot write the summary to " + path + ": "),
                  std::string::npos)
            << p.err();
        EXPECT_EQ(p.err().find("started"), std::string::npos) << p.err();
    }
}

// ...and a summary that cannot be written at the end (its directory went away) is a failure.
TEST(BadSummaryPath, LostAtTheEndIsANonZeroExit) {
    TempDir dir;
    const std::string sub = dir.path() + "/out";
    std::filesystem::create_directory(sub);
    Process p({"--summary", sub + "/s.json", "--run-for", "800ms"});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    std::filesystem::remove_all(sub);
    EXPECT_EQ(p.wait(10s).value_or(-1), 73) << p.err();
    EXPECT_NE(p.err().find("cannot write summary"), std::string::npos) << p.err();
}

struct BadCommandLine {
    const char* name;
    std::vector<std::string> args;
    const char* says;  // names the option at fault
};

class BadArguments : public ::testing::TestWithParam<BadCommandLine> {};

TEST_P(BadArguments, AreRefusedWithUsage) {
    const BadCommandLine& c = GetParam();
    const Outcome o = start_with(c.args);
    expect_refused(o, kExitUsage);
    EXPECT_NE(o.err.find(c.says), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("--help"), std::string::npos) << o.err;
    EXPECT_EQ(evfly::test::lines(o.err).size(), 1u) << o.err;  // one line says why
}

INSTANTIATE_TEST_SUITE_P(
    Table, BadArguments,
    ::testing::Values(BadCommandLine{"unknown_option", {"--bogus"}, "--bogus"},
                      BadCommandLine{"run_for_not_a_duration", {"--run-for", "soon"}, "soon"},
                      BadCommandLine{"run_for_negative", {"--run-for", "-1s"}, "-1s"},
                      BadCommandLine{"log_level_unknown", {"--log-level", "verbose"}, "verbose"},
                      BadCommandLine{"log_format_unknown", {"--log-format", "xml"}, "xml"},
                      BadCommandLine{"config_without_path", {"-c"}, "--config"},
                      BadCommandLine{"stray_argument", {"extra"}, "extra"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
