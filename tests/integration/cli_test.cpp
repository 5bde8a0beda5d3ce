// The command line and the config checks of the real evflyd binary.
#include <gtest/gtest.h>

#include "process.h"

using evfly::test::run_evflyd;
using evfly::test::TempDir;

TEST(Cli, HelpAndVersionExitZero) {
    const auto help = run_evflyd({"--help"});
    EXPECT_EQ(help.code, 0);
    for (const char* option :
         {"--config", "--check-config", "--print-config", "--run-for", "--summary", "--log-level",
          "--log-format", "--version", "--sweep", "--stage", "--target"}) {
        EXPECT_NE(help.out.find(option), std::string::npos) << option;
    }
    const auto version = run_evflyd({"--version"});
    EXPECT_EQ(version.code, 0);
    EXPECT_NE(version.out.find("evflyd 0."), std::string::npos) << version.out;
}

TEST(Cli, EveryCommandLineErrorExits64WithOneLine) {
    const std::vector<std::vector<std::string>> bad = {
        {"--bogus"},
        {"--run-for", "5"},
        {"--run-for", "-1s"},
        {"--run-for"},
        {"--log-level", "loud"},
        {"--log-format", "xml"},
        {"stray-argument"},
        {"-c"},
    };
    for (const auto& args : bad) {
        const auto r = run_evflyd(args);
        EXPECT_EQ(r.code, 64) << args[0];
        EXPECT_EQ(evfly::test::lines(r.err).size(), 1u) << r.err;
        EXPECT_EQ(r.err.rfind("evflyd: ", 0), 0u) << r.err;
    }
}

// A sweep's options: each malformed one exits 64 naming the option and what is wrong, before any
// config is read.
TEST(Cli, BadSweepOptionsExit64NamingTheOptionAndWhy) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
        {{"--sweep", "rate=1..4"}, "--sweep 'rate': only consumers and threads can be swept"},
        {{"--sweep", "consumers=0..4"}, "--sweep '0..4': a range is FIRST..LAST"},
        {{"--sweep", "consumers=2,2"}, "listed twice"},
        {{"--sweep", "consumers=1..2", "--run-for", "5s"}, "--sweep cannot go with --run-for"},
        {{"--sweep", "consumers=1..2", "--stage", "5x"}, "--stage '5x': a stage is a duration"},
        {{"--sweep", "consumers=1..2", "--stage", "10"}, "at least 100"},
        {{"--sweep", "consumers=1..2", "--target", "p98=1ms"}, "--target 'p98=1ms': expected"},
        {{"--sweep", "consumers=1..2", "--target", "p99=soon"}, "positive duration"},
        {{"--stage", "5s"}, "--stage needs --sweep"},
        {{"--target", "p99=1ms"}, "--target needs --sweep"},
    };
    for (const auto& [args, expect] : bad) {
        const auto r = run_evflyd(args);
        EXPECT_EQ(r.code, 64) << args[0] << " " << args[1];
        EXPECT_EQ(evfly::test::lines(r.err).size(), 1u) << r.err;
        EXPECT_NE(r.err.find("evflyd: " + (expect[0] == '-' ? expect : "")), std::string::npos)
            << r.err;
        EXPECT_NE(r.err.find(expect), std::string::npos) << r.err;
    }
}

TEST(Cli, CheckConfigAcceptsAGoodFileAndStartsNothing) {
    TempDir dir;
    const auto path = dir.write("ok.toml", "[daemon]\nconsumers = 2\n");
    const auto r = run_evflyd({"--check-config", "-c", path});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("OK"), std::string::npos);
    EXPECT_EQ(r.err.find("started"), std::string::npos);
}

TEST(Cli, BadConfigExits78NamingFileLineAndKeyForEveryError) {
    TempDir dir;
    const auto path = dir.write(
        "bad.toml",
        "[daemon]\nconsumers = 0\n\n[[producer]]\nname = \"t\"\nkind = \"timerfd\"\nrate = 3\n");
    for (const auto& args : {std::vector<std::string>{"--check-config", "-c", path},
                             std::vector<std::string>{"-c", path, "--run-for", "1s"}}) {
        const auto r = run_evflyd(args);
        EXPECT_EQ(r.code, 78);
        EXPECT_NE(
            r.err.find(path + ":2: key 'daemon.consumers': must be between 1 and 1024 (got 0)"),
            std::string::npos)
            << r.err;
        EXPECT_NE(r.err.find(path + ":7: key 'producer[0].rate': belongs to eventfd producers"),
                  std::string::npos)
            << r.err;
        EXPECT_NE(r.err.find("2 errors"), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("started"), std::string::npos);
    }
}

TEST(Cli, DirectoryAndFifoAreRefusedQuickly) {
    TempDir dir;
    const auto dir_result = run_evflyd({"-c", dir.path()}, {}, std::chrono::seconds(5));
    EXPECT_EQ(dir_result.code, 78);
    EXPECT_NE(dir_result.err.find("is a directory"), std::string::npos);
    const std::string fifo = dir.path() + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const auto fifo_result =
        run_evflyd({"--check-config", "-c", fifo}, {}, std::chrono::seconds(5));
    EXPECT_EQ(fifo_result.code, 78);
    EXPECT_NE(fifo_result.err.find("not a regular file"), std::string::npos);
}

TEST(Cli, PrintConfigIsAcceptedBackByCheckConfig) {
    TempDir dir;
    const auto printed = run_evflyd({"--print-config"});
    ASSERT_EQ(printed.code, 0) << printed.err;
    EXPECT_NE(printed.out.find("[[producer]]"), std::string::npos);
    EXPECT_NE(printed.out.find("max_in_flight = 1024"), std::string::npos);
    const auto path = dir.write("printed.toml", printed.out);
    const auto check = run_evflyd({"--check-config", "-c", path});
    EXPECT_EQ(check.code, 0) << check.err;
    // And printing the printed config changes nothing but the source line.
    const auto again = run_evflyd({"--print-config", "-c", path});
    EXPECT_EQ(again.out.substr(again.out.find('\n')), printed.out.substr(printed.out.find('\n')));
}
