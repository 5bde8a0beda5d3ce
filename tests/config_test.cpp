#include "evfly/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "common/bad_configs.h"
#include "common/temp_dir.h"

using evfly::Config;
using evfly::ConfigError;
using evfly::parse_config;

namespace {

// Parses `text` expecting failure; returns the issues.
std::vector<evfly::ConfigIssue> issues_of(const std::string& text) {
    try {
        parse_config(text, "test.toml");
    } catch (const ConfigError& e) {
        return e.issues();
    }
    ADD_FAILURE() << "accepted:\n" << text;
    return {};
}

void expect_one(const std::string& text, std::uint32_t line, const std::string& key,
                const std::string& fragment) {
    const auto issues = issues_of(text);
    ASSERT_EQ(issues.size(), 1u) << (issues.empty() ? "" : issues[0].to_string());
    const auto& issue = issues[0];
    EXPECT_EQ(issue.file, "test.toml");
    EXPECT_EQ(issue.line, line) << issue.to_string();
    EXPECT_EQ(issue.key, key) << issue.to_string();
    EXPECT_NE(issue.message.find(fragment), std::string::npos) << issue.to_string();
    const std::string text_form = issue.to_string();
    EXPECT_EQ(text_form.rfind("test.toml:" + std::to_string(line) + ": key '" + key + "'", 0), 0u)
        << text_form;
}

const std::string kProducer = "[[producer]]\nname = \"p\"\nkind = \"eventfd\"\n";
const std::string kTimer = "[[producer]]\nname = \"t\"\nkind = \"timerfd\"\n";

}  // namespace

TEST(Config, EmbeddedDefaultIsTheClassicDemo) {
    const Config c = parse_config(evfly::embedded_default_config(), evfly::kEmbeddedName);
    EXPECT_EQ(c.daemon.consumers, 4u);
    ASSERT_EQ(c.producers.size(), 2u);
    EXPECT_EQ(c.producers[0].kind, evfly::ProducerKind::eventfd);
    EXPECT_EQ(c.producers[0].threads, 2u);
    EXPECT_EQ(c.producers[0].rate, 1u);
    EXPECT_EQ(c.producers[0].fd_mode, evfly::FdMode::per_event);
    EXPECT_EQ(c.producers[1].kind, evfly::ProducerKind::timerfd);
    EXPECT_EQ(c.producers[1].threads, 2u);
    EXPECT_EQ(c.producers[1].initial, std::chrono::seconds(1));
    EXPECT_EQ(c.producers[1].interval, std::chrono::seconds(3));
}

TEST(Config, EmptyOrWhitespaceOnlyFileIsRefused) {
    for (const char* text : {"", " \n\t\r\n"}) {
        const auto issues = issues_of(text);
        ASSERT_EQ(issues.size(), 1u);
        EXPECT_EQ(issues[0].line, 1u);
        EXPECT_NE(issues[0].message.find("[daemon]"), std::string::npos);
    }
}

TEST(Config, AHeaderAloneMeansAllDefaultsAndNoProducers) {
    const Config c = parse_config("# nothing to run\n[daemon]\n", "bare.toml");
    EXPECT_EQ(c.daemon.consumers, 4u);
    EXPECT_EQ(c.daemon.max_events, 64u);
    EXPECT_EQ(c.daemon.stats_interval, std::chrono::seconds(10));
    EXPECT_TRUE(c.producers.empty());
}

TEST(Config, PrintedConfigParsesBackToTheSameConfig) {
    const Config c = parse_config(
        evfly::embedded_default_config() +
            "[[producer]]\nname = \"x\"\nkind = \"eventfd\"\nfd_mode = \"persistent\"\n"
            "rate = 0\nwork = \"1500us\"\n",
        "a.toml");
    const std::string printed = evfly::to_toml(c);
    const Config again = parse_config(printed, "printed.toml");
    EXPECT_EQ(evfly::to_toml(again), printed);
    ASSERT_EQ(again.producers.size(), 3u);
    EXPECT_EQ(again.producers[2].work, std::chrono::microseconds(1500));
    EXPECT_EQ(again.producers[2].fd_mode, evfly::FdMode::persistent);
}

TEST(Config, CanaryWarmupAndSloKeysParseAndPrintBack) {
    const Config c = parse_config(
        "[daemon]\nstall_after = \"250ms\"\nwarmup = \"2s\"\n[slo]\neventfd_p99 = "
        "\"200us\"\ntimerfd_max = \"5ms\"\nmax_lost = 0\nmax_skipped = 3\n"
        "allow_non_stationary = true\n",
        "slo.toml");
    EXPECT_EQ(c.daemon.stall_after, std::chrono::milliseconds(250));
    EXPECT_EQ(c.daemon.warmup, std::chrono::seconds(2));
    EXPECT_EQ(c.slo.latency.at("eventfd_p99"), std::chrono::microseconds(200));
    EXPECT_EQ(c.slo.latency.at("timerfd_max"), std::chrono::milliseconds(5));
    EXPECT_EQ(c.slo.counts.at("max_lost"), 0u);
    EXPECT_EQ(c.slo.counts.at("max_skipped"), 3u);
    EXPECT_TRUE(c.slo.allow_non_stationary);
    const Config again = parse_config(evfly::to_toml(c), "printed.toml");
    EXPECT_EQ(again.daemon, c.daemon);
    EXPECT_EQ(again.slo, c.slo);
    // The defaults: a canary after 1 s, no warm-up, no gate.
    const Config bare = parse_config("[daemon]\n", "bare.toml");
    EXPECT_EQ(bare.daemon.stall_after, std::chrono::seconds(1));
    EXPECT_EQ(bare.daemon.warmup.count(), 0);
    EXPECT_TRUE(bare.slo.empty());
    EXPECT_FALSE(bare.slo.allow_non_stationary);
}

TEST(Config, SpinAndFireParseAndPrintBack) {
    const Config c = parse_config(
        "[daemon]\nspin = \"50us\"\n[[producer]]\nname = \"p\"\nkind = \"eventfd\"\nfire = "
        "\"create\"\n",
        "spin.toml");
    EXPECT_EQ(c.daemon.spin, std::chrono::microseconds(50));
    EXPECT_EQ(c.producers[0].fire, evfly::FireMode::create);
    const Config again = parse_config(evfly::to_toml(c), "printed.toml");
    EXPECT_EQ(again.daemon, c.daemon);
    EXPECT_EQ(again.producers, c.producers);
}

TEST(ConfigErrors, SyntaxErrorNamesTheLine) {
    const auto issues = issues_of("[daemon]\nconsumers = 4\nmax_events = = 3\n");
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_EQ(issues[0].line, 3u) << issues[0].to_string();
    EXPECT_NE(issues[0].message.find("syntax"), std::string::npos);
}

TEST(ConfigErrors, DuplicateKeyIsRefused) {
    const auto issues = issues_of("[daemon]\nconsumers = 4\nconsumers = 5\n");
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_NE(issues[0].to_string().find("test.toml"), std::string::npos);
}

TEST(ConfigErrors, UnknownKey) {
    expect_one("[daemon]\nconsumer = 4\n", 2, "daemon.consumer", "unknown key");
}

TEST(ConfigErrors, UnknownTable) {
    expect_one("[deamon]\nconsumers = 4\n", 1, "deamon", "unknown key");
}

TEST(ConfigErrors, WrongType) {
    expect_one("[daemon]\nconsumers = \"4\"\n", 2, "daemon.consumers",
               "expected an integer, got a string");
    expect_one("daemon = 3\n", 1, "daemon", "expected a table");
    expect_one("[log]\nlevel = 3\n", 2, "log.level", "expected a string");
}

TEST(ConfigErrors, OutOfRange) {
    expect_one("[daemon]\nconsumers = 0\n", 2, "daemon.consumers", "between 1 and 1024");
    expect_one("[daemon]\nconsumers = 1025\n", 2, "daemon.consumers", "got 1025");
    expect_one(kProducer + "threads = -1\n", 4, "producer[0].threads", "between 1 and 1024");
}

TEST(ConfigErrors, SixtyFourBitValuesAreNotTruncated) {
    // 2^32 + 4 would wrap to 4 in a 32-bit field.
    expect_one("[daemon]\nconsumers = 4294967300\n", 2, "daemon.consumers", "got 4294967300");
    expect_one(kProducer + "rate = 9223372036854775807\n", 4, "producer[0].rate", "between 0 and");
    const auto issues = issues_of("[daemon]\nconsumers = 9223372036854775808\n");  // over int64
    ASSERT_FALSE(issues.empty());
    EXPECT_EQ(issues[0].line, 2u);
}

TEST(ConfigErrors, BadDuration) {
    expect_one("[daemon]\nstats_interval = \"10\"\n", 2, "daemon.stats_interval", "missing unit");
    expect_one("[daemon]\nshutdown_timeout = \"5 sec\"\n", 2, "daemon.shutdown_timeout",
               "bad duration");
    expect_one("[daemon]\nshutdown_timeout = \"0s\"\n", 2, "daemon.shutdown_timeout",
               "between 1ms and 1h");
    expect_one(kTimer + "initial = \"0s\"\n", 4, "producer[0].initial", "between 1ns");
    expect_one("[daemon]\nstats_interval = 10\n", 2, "daemon.stats_interval", "expected a string");
}

TEST(ConfigErrors, BadEnumValue) {
    expect_one("[log]\nlevel = \"verbose\"\n", 2, "log.level", "trace|debug|info");
    expect_one("[log]\nformat = \"xml\"\n", 2, "log.format", "json|text");
    expect_one(kProducer + "fd_mode = \"pooled\"\n", 4, "producer[0].fd_mode",
               "per-event|persistent");
    expect_one(kTimer + "clock = \"tai\"\n", 4, "producer[0].clock", "monotonic|realtime|boottime");
    expect_one("[[producer]]\nname = \"p\"\nkind = \"pipe\"\n", 3, "producer[0].kind",
               "eventfd|timerfd");
}

TEST(ConfigErrors, KeyOfTheOtherProducerKind) {
    expect_one(kTimer + "rate = 5\n", 4, "producer[0].rate", "belongs to eventfd producers");
    expect_one(kProducer + "interval = \"1s\"\n", 4, "producer[0].interval",
               "belongs to timerfd producers");
}

TEST(ConfigErrors, DuplicateProducerNames) {
    expect_one(kProducer + kProducer, 5, "producer[1].name",
               "duplicate producer name \"p\" (first used on line 1)");
}

TEST(ConfigErrors, MissingOrBadName) {
    expect_one("[[producer]]\nkind = \"eventfd\"\n", 1, "producer[0].name", "missing");
    expect_one("[[producer]]\nname = \"a b\"\nkind = \"eventfd\"\n", 2, "producer[0].name",
               "A-Z a-z 0-9");
}

TEST(ConfigErrors, FileSinkNeedsAPath) {
    expect_one("[log]\nsink = \"file\"\n", 2, "log.file", "needs a non-empty log.file");
}

TEST(ConfigErrors, MetricsTextfileMustBeAPromFile) {
    expect_one("\n[metrics]\ntextfile = \"/var/lib/node/evfly.txt\"\n", 3, "metrics.textfile",
               "must end in .prom");
    expect_one("[metrics]\npath = \"x.prom\"\n", 2, "metrics.path", "unknown key");
    EXPECT_EQ(
        parse_config("[metrics]\ntextfile = \"/tmp/evfly.prom\"\n", "t.toml").metrics.textfile,
        "/tmp/evfly.prom");
}

// The file is written where it is configured; a directory that is not there fails the check
// (--check-config, the start, a reload), not the first write.
TEST(ConfigErrors, MetricsTextfileDirectoryMustExist) {
    expect_one("[metrics]\ntextfile = \"/nonexistent-evfly-dir/evfly.prom\"\n", 2,
               "metrics.textfile", "directory /nonexistent-evfly-dir is not usable");
    expect_one("[metrics]\ntextfile = \"/etc/hostname/evfly.prom\"\n", 2, "metrics.textfile",
               "/etc/hostname is not a directory");
}

TEST(ConfigErrors, EveryErrorIsReportedNotOnlyTheFirst) {
    const auto issues = issues_of(
        "[daemon]\nconsumers = 0\nmax_events = \"x\"\nbogus = 1\n[log]\nlevel = \"loud\"\n" +
        kTimer + "rate = 1\n");
    ASSERT_EQ(issues.size(), 5u);
    std::vector<std::uint32_t> lines;
    for (const auto& i : issues) lines.push_back(i.line);
    EXPECT_EQ(lines, (std::vector<std::uint32_t>{2, 3, 4, 6, 10}));
}

class ConfigFiles : public ::testing::Test {
  protected:
    void SetUp() override { dir_ = temp_.path(); }
    std::string message_for(const std::string& path) {
        try {
            evfly::load_config(path);
        } catch (const ConfigError& e) {
            return e.what();
        }
        return "accepted";
    }
    evfly::test::TempDir temp_;
    std::string dir_;
};

TEST_F(ConfigFiles, MissingFile) {
    EXPECT_EQ(message_for(dir_ + "/nope.toml"),
              dir_ + "/nope.toml: cannot open: No such file or directory");
}

TEST_F(ConfigFiles, DirectoryIsRefused) {
    EXPECT_EQ(message_for(dir_), dir_ + ": is a directory, not a file");
}

TEST_F(ConfigFiles, FifoIsRefusedWithoutBlocking) {
    const std::string fifo = dir_ + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(message_for(fifo), fifo + ": is not a regular file");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST_F(ConfigFiles, OversizedFileIsRefused) {
    const std::string big = dir_ + "/big.toml";
    std::ofstream(big) << std::string(evfly::kMaxConfigBytes + 1, '#');
    EXPECT_NE(message_for(big).find("a config may be at most"), std::string::npos);
}

TEST_F(ConfigFiles, ErrorsNameTheFilePath) {
    const std::string path = dir_ + "/bad.toml";
    std::ofstream(path) << "[daemon]\nconsumers = 0\n";
    EXPECT_EQ(message_for(path),
              path + ":2: key 'daemon.consumers': must be between 1 and 1024 (got 0)");
}

// Every broken config of the shared table, parsed: refused, with an issue naming its line, key
// and reason (the integration tests start the binary on a handful of them).
class ConfigTable : public ::testing::TestWithParam<evfly::test::BadConfig> {};

TEST_P(ConfigTable, IsRefusedNamingLineAndKey) {
    const auto& c = GetParam();
    try {
        (void)parse_config(c.text, "bad.toml");
        ADD_FAILURE() << "accepted:\n" << c.text;
    } catch (const ConfigError& e) {
        bool named = false;
        for (const auto& issue : e.issues()) {
            EXPECT_EQ(issue.file, "bad.toml");
            named =
                named || (issue.line == static_cast<std::uint32_t>(c.line) && issue.key == c.key &&
                          issue.message.find(c.says) != std::string::npos);
        }
        EXPECT_TRUE(named) << "want line " << c.line << ", key '" << c.key << "', '" << c.says
                           << "' in:\n"
                           << e.what();
    }
}

INSTANTIATE_TEST_SUITE_P(Shared, ConfigTable, ::testing::ValuesIn(evfly::test::bad_configs()),
                         [](const auto& test) { return std::string(test.param.name); });

TEST(Config, ExplainReadsADurationOrAPercentileAndPrintsBack) {
    const Config fixed = parse_config(
        "[explain]\nover = \"500us\"\nlog_over = \"2ms\"\nworst = 8\ntrace = \"required\"\n",
        "x.toml");
    EXPECT_EQ(fixed.explain.over, std::chrono::microseconds(500));
    EXPECT_FALSE(fixed.explain.over_quantile);
    EXPECT_EQ(fixed.explain.log_over, std::chrono::milliseconds(2));
    EXPECT_EQ(fixed.explain.worst, 8u);
    EXPECT_EQ(fixed.explain.trace, Config::Explain::Trace::required);
    const Config quantile = parse_config("[explain]\nover = \"p99.9\"\ntrace = true\n", "x.toml");
    ASSERT_TRUE(quantile.explain.over_quantile);
    EXPECT_DOUBLE_EQ(*quantile.explain.over_quantile, 0.999);
    EXPECT_EQ(quantile.explain.trace, Config::Explain::Trace::on);
    EXPECT_EQ(evfly::format_over(quantile.explain), "p99.9");
    for (const Config* c : {&fixed, &quantile}) {
        const std::string printed = evfly::to_toml(*c);
        EXPECT_EQ(parse_config(printed, "printed.toml").explain, c->explain) << printed;
    }
    // Off unless over is set: nothing printed.
    EXPECT_EQ(evfly::to_toml(parse_config("[daemon]\n", "x.toml")).find("[explain]"),
              std::string::npos);
}
