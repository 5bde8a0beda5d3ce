// A real Prometheus (Debian's prometheus 2.42) scraping the real evflyd's /metrics every second:
// evfly_events_total rises in its API, and histogram_quantile over evfly_latency_seconds agrees
// with the summary's p99 within the histogram's bucket. Runs alone: it times scrapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::body_of;
using evfly::test::free_port;
using evfly::test::get;
using evfly::test::Process;
using evfly::test::TempDir;
using nlohmann::json;

namespace {

constexpr const char* kPrometheus = "/usr/bin/prometheus";

std::string url_encoded(const std::string& text) {
    std::string out;
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~') {
            out += ch;
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

// The API's answer to an instant query: its vector's first value, or nullopt.
std::optional<double> query(int port, const std::string& promql) {
    const std::string answer = body_of(get(port, "/api/v1/query?query=" + url_encoded(promql)));
    const json j = json::parse(answer, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return std::nullopt;
    const json& result = j["data"]["result"];
    if (!result.is_array() || result.empty()) return std::nullopt;
    return std::stod(result[0]["value"][1].get<std::string>());
}

evfly::test::SpawnOptions prometheus_spawn() {
    evfly::test::SpawnOptions spawn;
    spawn.program = kPrometheus;
    return spawn;
}

}  // namespace

TEST(Prometheus, ARealServerScrapesTheEndpoint) {
    if (!std::filesystem::exists(kPrometheus))
        GTEST_SKIP() << kPrometheus << " is not installed (apt-get install prometheus): no real "
                     << "server to scrape evflyd";
    TempDir dir;
    const int metrics_port = free_port();
    int api_port = free_port();
    while (api_port == metrics_port) api_port = free_port();
    const std::string summary = dir.path() + "/s.json";
    Process evflyd({"-c",
                    dir.write("e.toml",
                              "[daemon]\nconsumers = 2\nstats_interval = \"0s\"\n[log]\nsink = "
                              "\"stderr\"\n[metrics]\nlisten = \"127.0.0.1:" +
                                  std::to_string(metrics_port) +
                                  "\"\n[[producer]]\nname = \"steady\"\nkind = \"eventfd\"\n"
                                  "rate = 1000\n"),
                    "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(evflyd, "started")) << evflyd.err();
    const std::string config =
        dir.write("prometheus.yml",
                  "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                  "scrape_configs:\n  - job_name: evfly\n    static_configs:\n"
                  "      - targets: ['127.0.0.1:" +
                      std::to_string(metrics_port) + "']\n");
    Process prometheus(
        {"--config.file=" + config, "--storage.tsdb.path=" + dir.path() + "/data",
         "--web.listen-address=127.0.0.1:" + std::to_string(api_port), "--log.level=warn"},
        prometheus_spawn());
    // Ready, then up: the target was scraped.
    const auto asked = std::chrono::steady_clock::now();
    std::optional<double> up;
    for (int i = 0; i < 150 && (!up || *up != 1.0); ++i) {
        std::this_thread::sleep_for(200ms);
        up = query(api_port, "up{job=\"evfly\"}");
    }
    ASSERT_TRUE(up && *up == 1.0) << "prometheus never scraped evflyd: " << prometheus.err();
    std::fprintf(stderr, "prometheus scraped evflyd after %.1f s\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count());
    std::this_thread::sleep_for(2s);
    const auto first = query(api_port, "sum(evfly_events_total)");
    std::this_thread::sleep_for(3s);
    const auto later = query(api_port, "sum(evfly_events_total)");
    ASSERT_TRUE(first && later);
    EXPECT_GT(*later, *first + 1000) << *first << " -> " << *later;
    const auto rate = query(api_port, "sum(rate(evfly_events_total[5s]))");
    ASSERT_TRUE(rate);
    EXPECT_NEAR(*rate, 1000.0, 300.0);

    // The p99 of everything scraped so far, against the summary's (the run ends right after).
    std::this_thread::sleep_for(1500ms);
    const std::string text = body_of(get(metrics_port, "/metrics"));
    // Asked before the stop: once the target is gone its series go stale.
    const auto p99 =
        query(api_port, "histogram_quantile(0.99, evfly_latency_seconds_bucket{kind=\"eventfd\"})");
    evflyd.signal(SIGTERM);
    ASSERT_EQ(evflyd.wait(20s), 0) << evflyd.err();
    prometheus.signal(SIGTERM);
    if (!prometheus.wait(3s)) {
        prometheus.signal(SIGKILL);
        prometheus.wait(5s);
    }
    ASSERT_TRUE(p99);
    const json s = evfly::test::summary_of(summary);
    const double summary_p99 = s["latency_ns"]["eventfd"]["p99"].get<double>() / 1e9;
    // The bucket bounds around the summary's p99, from the exposition's le labels.
    std::vector<double> bounds;
    for (std::size_t at = text.find("evfly_latency_seconds_bucket{kind=\"eventfd\",le=\"");
         at != std::string::npos;
         at = text.find("evfly_latency_seconds_bucket{kind=\"eventfd\",le=\"", at + 1)) {
        const std::size_t from = text.find("le=\"", at) + 4;
        const std::string le = text.substr(from, text.find('"', from) - from);
        if (le != "+Inf") bounds.push_back(std::stod(le));
    }
    ASSERT_FALSE(bounds.empty());
    double lower = 0;
    double upper = bounds.back();
    for (const double b : bounds) {
        if (b < summary_p99) lower = b;
        if (b >= summary_p99) {
            upper = b;
            break;
        }
    }
    // One bucket either way: the run went on a moment after the last scrape.
    const auto below = std::find(bounds.begin(), bounds.end(), lower);
    const double wider_lower = below != bounds.begin() && lower > 0 ? *(below - 1) : 0.0;
    const auto above = std::find(bounds.begin(), bounds.end(), upper);
    const double wider_upper = above + 1 != bounds.end() ? *(above + 1) : upper;
    EXPECT_GE(*p99, wider_lower) << "summary p99 " << summary_p99 << " in (" << lower << ", "
                                 << upper << "]";
    EXPECT_LE(*p99, wider_upper) << "summary p99 " << summary_p99 << " in (" << lower << ", "
                                 << upper << "]";
    std::fprintf(stderr,
                 "histogram_quantile(0.99, evfly_latency_seconds_bucket{kind=\"eventfd\"}) = %g s; "
                 "summary p99 %g s, in the bucket (%g, %g]\n",
                 *p99, summary_p99, lower, upper);
}
