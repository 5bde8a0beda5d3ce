// evfly-plot on a real summary: a valid PNG of the size asked for, and clear failures.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "process.h"

using evfly::test::TempDir;

namespace {

const std::string kPlot = std::string(EVFLY_SOURCE_DIR) + "/src/evfly-plot";

std::uint32_t big_endian(const std::string& bytes, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
    return v;
}

int run(const std::string& command) {
    const int status = std::system((command + " 2>/dev/null").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(Plot, DrawsAPngOfTheAskedSizeFromARealSummary) {
    TempDir dir;
    const std::string config = dir.write("run.toml", R"(
[daemon]
consumers = 2
stats_interval = "200ms"
[log]
sink = "stderr"
[[producer]]
name = "events"
kind = "eventfd"
rate = 1000
[[producer]]
name = "tick"
kind = "timerfd"
initial = "2ms"
interval = "2ms"
)");
    const std::string summary = dir.path() + "/run.json";
    const auto r = evfly::test::run_evflyd({"-c", config, "--run-for", "1s", "--summary", summary});
    ASSERT_EQ(r.code, 0) << r.err;
    const std::string png = dir.path() + "/run.png";
    ASSERT_EQ(run(kPlot + " " + summary + " -o " + png + " --size 900x700"), 0);
    const std::string bytes = evfly::test::read_file(png);
    ASSERT_GT(bytes.size(), 10'000u);  // four panels with lines, not an empty canvas
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_EQ(bytes.substr(12, 4), "IHDR");
    EXPECT_EQ(big_endian(bytes, 16), 900u);
    EXPECT_EQ(big_endian(bytes, 20), 700u);
    // The default name and size.
    ASSERT_EQ(run(kPlot + " " + summary), 0);
    const std::string fallback = evfly::test::read_file(dir.path() + "/run.png");
    EXPECT_EQ(big_endian(fallback, 16), 1200u);
    EXPECT_EQ(big_endian(fallback, 20), 900u);
}

TEST(Plot, RefusesWhatIsNotASummary) {
    TempDir dir;
    const std::string bogus = dir.write("bogus.json", "{\"hello\": 1}\n");
    EXPECT_EQ(run(kPlot + " " + bogus + " -o " + dir.path() + "/x.png"), 65);
    EXPECT_EQ(run(kPlot + " " + dir.path() + "/missing.json"), 65);
    EXPECT_EQ(run(kPlot + " " + bogus + " --size 12"), 64);
    EXPECT_EQ(run(kPlot), 64);
}
