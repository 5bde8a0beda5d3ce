// Bad input, table-driven: hand-written broken configs and command lines. Each must give the
// documented exit code and a message that names the file, line and key (or the option), within
// a second, and start nothing: no "started" line, no summary written.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "../common/bad_configs.h"
#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::Process;
using evfly::test::SpawnOptions;
using evfly::test::TempDir;

using evfly::test::bad_configs;
using evfly::test::BadConfig;

namespace {

constexpr int kExitUsage = 64;
constexpr int kExitConfig = 78;

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

// Every case is parsed by the unit tests (ConfigTable in config_test.cpp); against the binary,
// at start and with --check-config, a representative handful: a type, a range, an unknown key, a
// duplicate, TOML syntax, bytes that are not UTF-8, a resource check and an [slo] key.
std::vector<BadConfig> handful() {
    std::vector<BadConfig> out;
    for (const auto& c : bad_configs()) {
        for (const char* name :
             {"wrong_type", "consumers_too_many", "unknown_key", "duplicate_names",
              "toml_syntax_unterminated", "not_utf8", "slots_beyond_the_table",
              "metrics_in_missing_dir", "slo_count_negative", "empty_file"}) {
            if (std::string(c.name) == name) out.push_back(c);
        }
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Table, BadConfigFile, ::testing::ValuesIn(handful()),
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
        spawn = evfly::test::as_nobody(dir);
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
