// A pool-size sweep on the real evflyd: stages through live reloads, the hopeless ones cut
// short, the recommendation and the table; a target no stage meets exits with the SLO code and
// says why. These measure time: they run alone.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::run_evflyd;
using evfly::test::summary_of;
using evfly::test::TempDir;
using nlohmann::json;

namespace {

// 400/s of 8 ms sleeping work: 3.2 consumers' worth. One, two and three cannot keep up; four
// can (utilisation about 0.8).
constexpr const char* kLoad = R"(
[daemon]
consumers = 2
stats_interval = "0s"
warmup = "500ms"
[log]
sink = "stderr"
[[producer]]
name = "load"
kind = "eventfd"
rate = 400
work = "8ms"
work_kind = "sleep"
)";

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

TEST(Sweep, RecommendsTheFewestConsumersThatKeepUpAndMeetTheTarget) {
    TempDir dir;
    const std::string summary = dir.path() + "/sweep.json";
    const auto r = run_evflyd({"-c", dir.write("load.toml", kLoad), "--sweep", "consumers=1..5",
                               "--stage", "2s", "--target", "p99=100ms", "--summary", summary},
                              {}, 120s);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    const json s = summary_of(summary);
    const json& sweep = s["sweep"];
    EXPECT_EQ(sweep["parameter"], "consumers");
    EXPECT_EQ(sweep["values"], json::array({1, 2, 3, 4, 5}));
    EXPECT_EQ(sweep["targets"], json::array({"p99 <= 100ms"}));
    ASSERT_EQ(sweep["stages"].size(), 5u) << sweep.dump(1);
    for (std::size_t i = 0; i < 3; ++i) {
        const json& stage = sweep["stages"][i];
        EXPECT_EQ(stage["value"], i + 1);
        EXPECT_TRUE(stage["model"]["saturated"].get<bool>()) << stage.dump(1);
        EXPECT_FALSE(stage["meets"].get<bool>());
        // Hopeless: cut short, not waited out.
        EXPECT_NE(stage["stopped_early"].get<std::string>().find("hopeless"), std::string::npos)
            << stage.dump(1);
    }
    const json& four = sweep["stages"][3];
    EXPECT_FALSE(four["model"]["saturated"].get<bool>()) << four.dump(1);
    EXPECT_NEAR(four["model"]["utilisation"].get<double>(), 0.82, 0.15);
    EXPECT_EQ(four["model"]["name"], "D/D/c");
    EXPECT_TRUE(four["meets"].get<bool>()) << four.dump(1);
    EXPECT_NEAR(four["values_per_s"].get<double>(), 400.0, 40.0);
    EXPECT_GE(four["seconds"].get<double>(), 2.0);
    EXPECT_FALSE(four["latency_ns"]["ci95"]["p99"][1].is_null());
    EXPECT_GT(four["cpu_s"].get<double>(), 0.0);
    EXPECT_EQ(sweep["recommended"], 4) << sweep["reason"];
    EXPECT_NE(sweep["reason"].get<std::string>().find("smallest consumers"), std::string::npos);
    // Through the reload machinery, one reload per stage after the first; the summary's
    // consumers are the last stage's.
    EXPECT_EQ(s["reloads"]["ok"], 4);
    EXPECT_EQ(count(r.err, "\"msg\":\"config reloaded\""), 4u) << r.err;
    EXPECT_EQ(count(r.err, "\"msg\":\"sweep stage done\""), 5u);
    EXPECT_EQ(s["consumers"], 5);
    // The table, on stdout.
    EXPECT_NE(r.out.find("sweep of consumers, stages of 2s, target p99 <= 100ms"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("recommended: 4 consumers"), std::string::npos) << r.out;
    EXPECT_EQ(count(r.out, "stopped early"), 3u) << r.out;
}

TEST(Sweep, ATargetNoStageMeetsExitsWithTheSloCodeAndSaysWhy) {
    TempDir dir;
    const std::string summary = dir.path() + "/sweep.json";
    const auto r = run_evflyd({"-c", dir.write("load.toml", kLoad), "--sweep", "consumers=4,5",
                               "--stage", "1s", "--target", "p99=1us", "--summary", summary},
                              {}, 60s);
    EXPECT_EQ(r.code, 79) << r.err;
    EXPECT_NE(r.err.find("evflyd: sweep: no stage meets p99 <= 1us"), std::string::npos) << r.err;
    const json s = summary_of(summary);
    EXPECT_TRUE(s["sweep"]["recommended"].is_null());
    EXPECT_EQ(s["sweep"]["stages"].size(), 2u);
    EXPECT_NE(r.out.find("recommended: none"), std::string::npos) << r.out;
}

// Without --target the [slo] latency limits are the target.
TEST(Sweep, TheSloIsTheDefaultTarget) {
    TempDir dir;
    const std::string summary = dir.path() + "/sweep.json";
    const auto r = run_evflyd(
        {"-c", dir.write("slo.toml", std::string(kLoad) + "[slo]\neventfd_p99 = \"1us\"\n"),
         "--sweep", "consumers=5", "--stage", "1s", "--summary", summary},
        {}, 60s);
    EXPECT_EQ(r.code, 79) << r.err;
    const json s = summary_of(summary);
    EXPECT_EQ(s["sweep"]["targets"], json::array({"eventfd_p99 <= 1us"}));
}
