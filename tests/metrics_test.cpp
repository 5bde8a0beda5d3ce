#include "evfly/metrics.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/temp_dir.h"

namespace {

evfly::Report sample_report() {
    evfly::Report r;
    r.consumers = 3;
    evfly::ProducerReport p;
    p.name = "notify";
    p.fired = 7;
    p.value_written = 9;
    p.value_read = 8;
    r.producers.push_back(p);
    evfly::ProducerReport t;
    t.name = "tick";
    t.kind = evfly::ProducerKind::timerfd;
    t.fired = t.value_written = t.value_read = t.expirations = 5;
    t.overruns = 2;
    r.producers.push_back(t);
    for (const std::uint64_t ns : {3'000u, 40'000u, 40'000u, 2'000'000u}) r.eventfd_latency.add(ns);
    r.timerfd_latency.add(20'000'000'000);  // 20 s: above the last bound
    return r;
}

bool has_line(const std::string& text, const std::string& line) {
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (l == line) return true;
    return false;
}

}  // namespace

TEST(Metrics, CountersPerProducerAndTheContractNames) {
    evfly::MetricsExtras extras;
    extras.log_dropped = 4;
    extras.reloads_failed = 1;
    const std::string text = evfly::prometheus_text(sample_report(), extras);
    for (const char* l : {
             "evfly_events_total{producer=\"notify\",kind=\"eventfd\"} 7",
             "evfly_values_written_total{producer=\"notify\",kind=\"eventfd\"} 9",
             "evfly_values_read_total{producer=\"notify\",kind=\"eventfd\"} 8",
             "evfly_overruns_total{producer=\"tick\",kind=\"timerfd\"} 2",
             "evfly_consumers 3",
             "evfly_log_dropped_total 4",
             "evfly_reloads_total{result=\"ok\"} 0",
             "evfly_reloads_total{result=\"failed\"} 1",
             "# TYPE evfly_latency_seconds histogram",
         })
        EXPECT_TRUE(has_line(text, l)) << l << "\n" << text;
}

TEST(Metrics, HistogramBucketsAreCumulativeAndEndAtTheCount) {
    const std::string text = evfly::prometheus_text(sample_report(), {});
    // 3 µs, 40 µs, 40 µs, 2 ms.
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_bucket{kind=\"eventfd\",le=\"2.5e-06\"} 0"));
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_bucket{kind=\"eventfd\",le=\"5e-06\"} 1"));
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_bucket{kind=\"eventfd\",le=\"5e-05\"} 3"));
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_bucket{kind=\"eventfd\",le=\"0.001\"} 3"));
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_bucket{kind=\"eventfd\",le=\"0.0025\"} 4"));
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_bucket{kind=\"eventfd\",le=\"+Inf\"} 4"));
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_count{kind=\"eventfd\"} 4"));
    // The 20 s lateness is above every finite bound.
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_bucket{kind=\"timerfd\",le=\"10\"} 0"));
    EXPECT_TRUE(has_line(text, "evfly_latency_seconds_bucket{kind=\"timerfd\",le=\"+Inf\"} 1"));
    // Sum within the histogram's 0.4 %: 2.083 ms.
    const std::string sum_prefix = "evfly_latency_seconds_sum{kind=\"eventfd\"} ";
    const auto at = text.find(sum_prefix);
    ASSERT_NE(at, std::string::npos);
    EXPECT_NEAR(std::stod(text.substr(at + sum_prefix.size())), 0.002083, 0.002083 * 0.004);
}

TEST(Metrics, TextfileIsReplacedWhole) {
    const evfly::test::TempDir temp;
    const std::filesystem::path dir = temp.path();
    const std::string path = (dir / "evfly.prom").string();
    evfly::write_textfile(path, "first\n");
    evfly::write_textfile(path, "second\n");
    std::ifstream in(path);
    std::stringstream content;
    content << in.rdbuf();
    EXPECT_EQ(content.str(), "second\n");
    // Nothing left behind but the file itself.
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
    EXPECT_THROW(evfly::write_textfile((dir / "missing" / "evfly.prom").string(), "x"),
                 std::system_error);
}

TEST(Metrics, TextfileIsWorldReadableWhateverTheUmask) {
    const evfly::test::TempDir temp;
    const std::string path = temp.path() + "/evfly.prom";
    const mode_t before = ::umask(077);  // the shipped unit's UMask=0077
    evfly::write_textfile(path, "x 1\n");
    ::umask(before);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
}
