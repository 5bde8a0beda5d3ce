// Stationarity on the real evflyd: a run whose handler cost doubles halfway (a reload) is
// flagged, and the SLO gate does not pass it unless told to; a steady run is not flagged. These
// measure time: they run alone.
#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::Process;
using evfly::test::summary_of;
using evfly::test::TempDir;
using nlohmann::json;

namespace {

std::string config(const std::string& work, const std::string& slo) {
    return "[daemon]\nconsumers = 2\nstats_interval = \"250ms\"\n[log]\nsink = \"stderr\"\n"
           "[[producer]]\nname = \"p\"\nkind = \"eventfd\"\nrate = 200\nwork = \"" +
           work + "\"\nwork_kind = \"sleep\"\n" + slo;
}

struct Outcome {
    int code = -1;
    json summary;
    std::string err;
};

// Runs 6 s; with `then_work`, reloads to it after 3 s.
Outcome run(TempDir& dir, const std::string& slo, const std::string& then_work = "") {
    const std::string path = dir.write("s.toml", config("1ms", slo));
    const std::string summary = dir.path() + "/s.json";
    Process p({"-c", path, "--summary", summary});
    EXPECT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    std::this_thread::sleep_for(3s);
    if (!then_work.empty()) {
        dir.write("s.toml", config(then_work, slo));
        p.signal(SIGHUP);
        EXPECT_TRUE(evfly::test::wait_logged(p, "config reloaded")) << p.err();
    }
    std::this_thread::sleep_for(3s);
    p.signal(SIGTERM);
    Outcome r;
    r.code = p.wait(30s).value_or(-1);
    r.err = p.err();
    r.summary = summary_of(summary);
    return r;
}

}  // namespace

TEST(Stationarity, AHandlerCostThatDoublesHalfwayIsFlaggedAndGated) {
    TempDir dir;
    const Outcome drifting = run(dir, "[slo]\nmax_lost = 0\n", "2ms");
    const json& st = drifting.summary["stationarity"];
    ASSERT_TRUE(st["checked"].get<bool>()) << st.dump(1);
    EXPECT_FALSE(st["stationary"].get<bool>()) << st.dump(1);
    bool service_drifted = false;
    for (const json& s : st["series"])
        if (s["name"] == "service_mean") {
            service_drifted = s["drifted"].get<bool>();
            EXPECT_NEAR(s["ratio"].get<double>(), 1.9, 0.4) << s.dump();
        }
    EXPECT_TRUE(service_drifted) << st.dump(1);
    EXPECT_EQ(drifting.code, 79) << drifting.err;
    EXPECT_NE(drifting.err.find("evflyd: SLO violated: stationarity: service_mean drifted"),
              std::string::npos)
        << drifting.err;
    ASSERT_FALSE(drifting.summary["slo"]["violations"].empty());
    EXPECT_EQ(drifting.summary["slo"]["violations"][0]["key"], "stationarity");

    const Outcome allowed = run(dir, "[slo]\nmax_lost = 0\nallow_non_stationary = true\n", "2ms");
    EXPECT_FALSE(allowed.summary["stationarity"]["stationary"].get<bool>());
    EXPECT_EQ(allowed.code, 0) << allowed.err;
}

TEST(Stationarity, ASteadyRunPassesTheGate) {
    TempDir dir;
    const Outcome steady = run(dir, "[slo]\nmax_lost = 0\n");
    const json& st = steady.summary["stationarity"];
    ASSERT_TRUE(st["checked"].get<bool>()) << st.dump(1);
    EXPECT_TRUE(st["stationary"].get<bool>()) << st.dump(1);
    EXPECT_GE(st["intervals"].get<int>(), 16);
    EXPECT_EQ(steady.code, 0) << steady.err;
}
