#include "evfly/log.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "log_format.h"

namespace {

std::string render(evfly::LogFormat format, const std::string& payload,
                   evfly::log::Level level = evfly::log::Level::info) {
    const spdlog::details::log_msg msg(spdlog::source_loc{}, "evflyd",
                                       static_cast<spdlog::level::level_enum>(level),
                                       spdlog::string_view_t(payload.data(), payload.size()));
    spdlog::memory_buf_t buf;
    evfly::log::make_formatter(format)->format(msg, buf);
    return {buf.data(), buf.size()};
}

}  // namespace

TEST(LogJson, CarriesTheContractFields) {
    const std::string line =
        render(evfly::LogFormat::json, evfly::log::encode("event", {{"producer", "notify"},
                                                                    {"fd", 7},
                                                                    {"value", std::uint64_t{3}},
                                                                    {"latency_us", 12.5},
                                                                    {"ok", true}}));
    ASSERT_EQ(line.back(), '\n');
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["msg"], "event");
    EXPECT_EQ(j["level"], "info");
    EXPECT_TRUE(j["thread"].is_string());
    EXPECT_EQ(j["producer"], "notify");
    EXPECT_EQ(j["fd"], 7);
    EXPECT_EQ(j["value"], 3);
    EXPECT_DOUBLE_EQ(j["latency_us"].get<double>(), 12.5);
    EXPECT_EQ(j["ok"], true);
    // RFC 3339, UTC, microseconds: 2026-11-22T22:05:27.123456Z
    const std::string ts = j["ts"];
    ASSERT_EQ(ts.size(), 27u) << ts;
    EXPECT_EQ(ts[10], 'T');
    EXPECT_EQ(ts[19], '.');
    EXPECT_EQ(ts.back(), 'Z');
}

TEST(LogJson, EveryMessageBecomesValidJson) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255);
    for (int round = 0; round < 2000; ++round) {
        std::string text;
        const int n = round % 40;
        for (int i = 0; i < n; ++i) text += static_cast<char>(byte(rng));
        const std::string line =
            render(evfly::LogFormat::json, evfly::log::encode(text, {{"error", text}}));
        ASSERT_NO_THROW({
            const auto j = nlohmann::json::parse(line);
            EXPECT_TRUE(j["msg"].is_string());
            EXPECT_TRUE(j["error"].is_string());
        }) << line;
        ASSERT_EQ(line.find('\n'), line.size() - 1);
    }
}

TEST(LogJson, EscapesQuotesControlsAndKeepsValidUtf8) {
    std::string out;
    evfly::log::json_escape("a\"b\\c\n\x01 é €", out);
    EXPECT_EQ(out, "a\\\"b\\\\c\\n\\u0001 é €");
    out.clear();
    evfly::log::json_escape("\xff\xc3", out);  // invalid, truncated
    EXPECT_EQ(out, "\\ufffd\\ufffd");
    out.clear();
    evfly::log::json_escape("\xed\xa0\x80", out);  // a UTF-16 surrogate is not UTF-8
    EXPECT_EQ(out, "\\ufffd\\ufffd\\ufffd");
}

TEST(LogText, IsOneReadableLine) {
    const std::string line = render(
        evfly::LogFormat::text,
        evfly::log::encode("stats", {{"events_per_s", 10.0}, {"config", "/etc/evfly/a b.toml"}}),
        evfly::log::Level::warn);
    EXPECT_NE(line.find(" warn ["), std::string::npos) << line;
    EXPECT_NE(line.find("] stats events_per_s=10.000 config=\"/etc/evfly/a b.toml\"\n"),
              std::string::npos)
        << line;
}

// journalctl -u evfly prints MESSAGE: it must carry the numbers, not a bare "stats".
TEST(LogJournal, MessageIsTheReadableLineAndEveryFieldStaysAField) {
    const auto items =
        evfly::log::journal_entry(evfly::log::Level::info, "supervisor",
                                  evfly::log::encode("stats", {{"events_per_s", 10.0},
                                                               {"eventfd_p99_us", 42.5},
                                                               {"behind", "paced:backlog=3"},
                                                               {"config", "/etc/evfly/a b.toml"}}));
    const auto has = [&](const std::string& item) {
        return std::find(items.begin(), items.end(), item) != items.end();
    };
    EXPECT_TRUE(
        has("MESSAGE=stats events_per_s=10.000 eventfd_p99_us=42.500 "
            "behind=\"paced:backlog=3\" config=\"/etc/evfly/a b.toml\""))
        << ::testing::PrintToString(items);
    EXPECT_TRUE(has("PRIORITY=6"));
    EXPECT_TRUE(has("SYSLOG_IDENTIFIER=evflyd"));
    EXPECT_TRUE(has("EVFLY_THREAD=supervisor"));
    EXPECT_TRUE(has("EVFLY_EVENTS_PER_S=10.000"));
    EXPECT_TRUE(has("EVFLY_EVENTFD_P99_US=42.500"));
    EXPECT_TRUE(has("EVFLY_CONFIG=/etc/evfly/a b.toml"));
}

TEST(LogEncode, SeparatorsInsideValuesCannotForgeFields) {
    const std::string line =
        render(evfly::LogFormat::json,
               evfly::log::encode("m", {{"error", std::string("x\x1f") + "fd\x1ens9"}}));
    const auto j = nlohmann::json::parse(line);
    EXPECT_FALSE(j.contains("fd"));
    EXPECT_EQ(j["error"], "x?fd?ns9");
}

TEST(LogLevels, RoundTripConfigNames) {
    for (const char* name : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
        EXPECT_STREQ(evfly::log::level_name(evfly::log::parse_level(name)), name);
    }
}
