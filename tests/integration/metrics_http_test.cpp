// The /metrics endpoint of the real evflyd ([metrics] listen): what it serves and refuses, what
// hostile clients cannot do to it, reloads and the stop. These run alone: they hold ports and
// open a thousand connections.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "process.h"
#include "support.h"

using namespace std::chrono_literals;
using evfly::test::body_of;
using evfly::test::connect_to;
using evfly::test::free_port;
using evfly::test::get;
using evfly::test::http;
using evfly::test::Process;
using evfly::test::status_of;
using evfly::test::TempDir;

namespace {

// The value of the first sample line of `metric` in `text` (-1 when absent).
double sample(const std::string& text, const std::string& metric) {
    std::size_t at = 0;
    while ((at = text.find(metric, at)) != std::string::npos) {
        if ((at == 0 || text[at - 1] == '\n') &&
            (text[at + metric.size()] == '{' || text[at + metric.size()] == ' ')) {
            const auto end = text.find('\n', at);
            const std::string line = text.substr(at, end - at);
            return std::atof(line.c_str() + line.rfind(' ') + 1);
        }
        at += metric.size();
    }
    return -1;
}

std::string config(int port, const std::string& extra = "") {
    return "[daemon]\nconsumers = 2\nstats_interval = \"0s\"\n[log]\nsink = \"stderr\"\n"
           "[metrics]\nlisten = \"127.0.0.1:" +
           std::to_string(port) + "\"\n" + extra +
           "[[producer]]\nname = \"steady\"\nkind = \"eventfd\"\nrate = 500\n";
}

constexpr const char* kRefused =
    "metrics endpoint refused a request; more are counted, not logged, until 10 s pass without "
    "one";
constexpr const char* kUnanswered =
    "metrics scrape unanswered (503); more are counted, not logged, until 10 s pass without one";

long open_fds(int pid) {
    return static_cast<long>(
        std::distance(std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"),
                      std::filesystem::directory_iterator()));
}

// The fds open once the connections just served are closed: civetweb shuts a connection down
// for writing, which ends the client's read, and closes it a moment later.
long settled_fds(int pid, long at_most) {
    long n = open_fds(pid);
    for (int i = 0; i < 50 && n > at_most; ++i) {
        std::this_thread::sleep_for(20ms);
        n = open_fds(pid);
    }
    return n;
}

std::string fd_list(int pid) {
    std::string out;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
        std::error_code ec;
        out += std::filesystem::read_symlink(e.path(), ec).string() + " ";
    }
    return out;
}

// What the hostile clients may add to evflyd's RSS: 16 MiB; a sanitizer's own bookkeeping (ASan's
// quarantine of freed memory, TSan's shadow) grows with the traffic, 25 MiB measured under ASan.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr long kRssBoundKib = 64 * 1024;
#else
constexpr long kRssBoundKib = 16 * 1024;
#endif

long rss_kib(int pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
}

}  // namespace

// GET /metrics: the exposition text, computed at the scrape (no stats interval here), which
// promtool accepts; / links to it; every other path 404, every other method 405.
TEST(MetricsHttp, ServesTheMetricsFreshAndNothingElse) {
    TempDir dir;
    const int port = free_port();
    const std::string summary = dir.path() + "/s.json";
    Process p({"-c", dir.write("m.toml", config(port)), "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    const std::string first = get(port, "/metrics");
    ASSERT_EQ(status_of(first), 200) << first.substr(0, 300);
    EXPECT_NE(first.find("\r\nContent-Type: text/plain; version=0.0.4"), std::string::npos);
    const double events_then = sample(body_of(first), "evfly_events_total");
    EXPECT_GE(events_then, 0);
    std::this_thread::sleep_for(400ms);
    const std::string second = get(port, "/metrics");
    EXPECT_GT(sample(body_of(second), "evfly_events_total"), events_then + 100);
    if (std::system("command -v promtool >/dev/null") == 0) {
        const std::string file = dir.write("scrape.prom", body_of(second));
        EXPECT_EQ(std::system(("promtool check metrics < " + file).c_str()), 0);
    } else {
        std::fprintf(stderr, "promtool is not installed: the text is not checked by it\n");
    }
    const std::string index = get(port, "/");
    EXPECT_EQ(status_of(index), 200);
    EXPECT_NE(index.find("href=\"/metrics\""), std::string::npos);
    EXPECT_EQ(status_of(get(port, "/metrics", "HEAD")), 200);
    EXPECT_EQ(body_of(get(port, "/metrics", "HEAD")), "");
    for (const char* path : {"/metric", "/metrics/x", "/favicon.ico", "/../etc/passwd",
                             "/%2e%2e/%2e%2e/etc/passwd", "/metrics?x=../../etc"})
        EXPECT_EQ(status_of(get(port, path)),
                  path == std::string("/metrics?x=../../etc") ? 200 : 404)
            << path;
    for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
        const std::string r = get(port, "/metrics", method);
        EXPECT_EQ(status_of(r), 405) << method << ": " << r.substr(0, 200);
        EXPECT_NE(r.find("Allow: GET, HEAD"), std::string::npos) << method;
    }
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    evfly::test::expect_clean(evfly::test::summary_of(summary));
}

// Idle connections, an oversized header and a thousand connections at once: the endpoint still
// answers, no value is lost, and the RSS grows by less than 16 MiB (measured: about 1 MiB).
TEST(MetricsHttp, HostileClientsHoldNothing) {
    TempDir dir;
    const int port = free_port();
    const std::string summary = dir.path() + "/s.json";
    Process p({"-c", dir.write("m.toml", config(port)), "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    ASSERT_EQ(status_of(get(port, "/metrics")), 200);
    const long rss_before = rss_kib(p.pid());

    // Twice as many silent clients as worker threads: each is dropped after the request
    // timeout, so a scrape behind them waits two timeouts at most, and the events go on.
    std::vector<int> silent;
    for (int i = 0; i < 8; ++i) silent.push_back(connect_to(port));
    std::this_thread::sleep_for(100ms);
    const auto asked = std::chrono::steady_clock::now();
    const std::string during = http(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", 10s);
    EXPECT_EQ(status_of(during), 200);
    EXPECT_LT(std::chrono::steady_clock::now() - asked, 6s);
    for (const int fd : silent) ::close(fd);

    // A 1 MiB header: refused, the connection closed.
    const std::string big =
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n";
    const int big_status = status_of(http(port, big));
    EXPECT_TRUE(big_status == 0 || big_status >= 400) << big_status;

    // A thousand at once (non-blocking connects: the listen queue is bounded, so most wait for
    // the kernel), each sending a request once connected, all gone after a second.
    std::vector<pollfd> crowd;
    for (int i = 0; i < 1000; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(static_cast<std::uint16_t>(port));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        (void)::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
        crowd.push_back({fd, POLLOUT, 0});
    }
    const auto crowd_until = std::chrono::steady_clock::now() + 1s;
    std::size_t sent_requests = 0;
    while (std::chrono::steady_clock::now() < crowd_until) {
        if (::poll(crowd.data(), crowd.size(), 100) <= 0) continue;
        for (pollfd& c : crowd) {
            if ((c.revents & POLLOUT) == 0 || c.events == 0) continue;
            const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
            if (::send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) > 0) ++sent_requests;
            c.events = 0;
        }
    }
    for (const pollfd& c : crowd) ::close(c.fd);
    EXPECT_GT(sent_requests, 0u);
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(status_of(get(port, "/metrics")), 200);
    const long rss_after = rss_kib(p.pid());
    EXPECT_LT(rss_after - rss_before, kRssBoundKib) << rss_before << " -> " << rss_after;
    std::fprintf(stderr, "RSS %ld -> %ld KiB\n", rss_before, rss_after);

    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    evfly::test::expect_clean(evfly::test::summary_of(summary));
    // Over a thousand refusals in one episode: one line.
    EXPECT_EQ(evfly::test::count_logged(p, kRefused), 1u) << p.err();
}

// Each kind of failure is logged once per episode, with its detail, and the scrape that ends the
// episode (10 s without one) logs how many there were; the events go on meanwhile.
TEST(MetricsHttp, EveryFailureIsLoggedOncePerEpisode) {
    TempDir dir;
    const int port = free_port();
    const std::string summary = dir.path() + "/s.json";
    evfly::test::SpawnOptions spawn;
    spawn.env = {"EVFLY_TEST_SLOW_SCRAPES=3"};  // the first three renders begin 1.5 s late
    Process p({"-c", dir.write("m.toml", config(port)), "--summary", summary}, spawn);
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();

    // A supervisor too busy to answer: 503 after the 1 s timeout, three times, then answers.
    int unanswered = 0;
    for (int i = 0; i < 3; ++i) unanswered += status_of(get(port, "/metrics")) == 503 ? 1 : 0;
    EXPECT_EQ(unanswered, 3);
    // Each 503 came 1 s into a 1.5 s render; the last of them ends half a second after it.
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(status_of(get(port, "/metrics")), 200);

    // Refusals of every sort: by evfly's handler (404, 405) and by civetweb's parser (malformed,
    // too large, silent until the timeout).
    int refused = 0;
    for (int round = 0; round < 2; ++round) {
        refused += status_of(get(port, "/../etc/passwd")) == 404 ? 1 : 0;
        refused += status_of(get(port, "/metrics", "POST")) == 405 ? 1 : 0;
        refused += status_of(http(port, "NONSENSE\r\n\r\n")) == 400 ? 1 : 0;
        const std::string big =
            "GET /metrics HTTP/1.1\r\nX: " + std::string(16384, 'a') + "\r\n\r\n";
        refused += status_of(http(port, big)) != 200 ? 1 : 0;
        const int silent = connect_to(port);
        std::this_thread::sleep_for(1500ms);  // dropped after 1 s
        ::close(silent);
        ++refused;
    }
    EXPECT_EQ(refused, 10);
    EXPECT_EQ(evfly::test::count_logged(p, kUnanswered), 1u) << p.err();
    EXPECT_EQ(evfly::test::count_logged(p, kRefused), 1u) << p.err();
    for (const auto& line : evfly::test::log_lines(p)) {
        if (line["msg"] == kRefused) {
            EXPECT_EQ(line["level"], "warn");
            EXPECT_EQ(line["client"], "127.0.0.1");
            EXPECT_EQ(line["error"], "404 GET /../etc/passwd");
        }
        if (line["msg"] == kUnanswered) {
            EXPECT_EQ(line["level"], "warn");
        }
    }

    // Quiet for the episode's gap: the next scrape ends both episodes, with their counts.
    std::this_thread::sleep_for(10500ms);
    EXPECT_EQ(status_of(get(port, "/metrics")), 200);
    ASSERT_TRUE(evfly::test::wait_logged(p, "metrics endpoint refusals ended")) << p.err();
    ASSERT_TRUE(evfly::test::wait_logged(p, "metrics scrapes answered again")) << p.err();
    for (const auto& line : evfly::test::log_lines(p)) {
        if (line["msg"] == "metrics endpoint refusals ended") {
            EXPECT_EQ(line["refused"], 10);
        }
        if (line["msg"] == "metrics scrapes answered again") {
            EXPECT_EQ(line["unanswered"], 3);
        }
    }
    p.signal(SIGTERM);
    ASSERT_EQ(p.wait(20s), 0) << p.err();
    evfly::test::expect_clean(evfly::test::summary_of(summary));
}

// A reload moves the endpoint (the old port closes, the new one answers), one to a port in use is
// refused with everything kept, scrapes during reloads and the stop get an answer or a refused
// connection, never a hang, and the run stays clean.
TEST(MetricsHttp, ReloadsMoveItAllOrNothingAndTheStopIsClean) {
    TempDir dir;
    const int first = free_port();
    const std::string path = dir.write("m.toml", config(first));
    const std::string summary = dir.path() + "/s.json";
    Process p({"-c", path, "--summary", summary});
    ASSERT_TRUE(evfly::test::wait_logged(p, "started")) << p.err();
    ASSERT_EQ(status_of(get(first, "/metrics")), 200);
    const long fds_before = open_fds(p.pid());
    const std::string list_before = fd_list(p.pid());

    int second = free_port();
    while (second == first) second = free_port();
    dir.write("m.toml", config(second));
    std::atomic<bool> scraping{true};
    std::atomic<int> answered{0};
    std::thread scraper([&] {
        while (scraping) {
            const int s = status_of(get(first, "/metrics", "GET"));
            if (s == 200) ++answered;
        }
    });
    p.signal(SIGHUP);
    ASSERT_TRUE(evfly::test::wait_logged(p, "config reloaded")) << p.err();
    scraping = false;
    scraper.join();
    // The old endpoint's socket is gone with it; the new one's replaces it. At most one more:
    // a connection civetweb 1.15 accepts while it stops can stay open (seen about once in a
    // dozen runs of this test, with scrapes hammering the old address during the move).
    EXPECT_LE(settled_fds(p.pid(), fds_before), fds_before + 1) << list_before << "\n"
                                                                << fd_list(p.pid());
    EXPECT_EQ(status_of(get(second, "/metrics")), 200);
    EXPECT_EQ(get(first, "/metrics"), "");  // refused: nothing listens there now

    // A port in use: refused, the endpoint stays where it was.
    const int holder = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(holder, 1), 0);
    socklen_t len = sizeof sa;
    ::getsockname(holder, reinterpret_cast<sockaddr*>(&sa), &len);
    dir.write("m.toml", config(ntohs(sa.sin_port)));
    p.signal(SIGHUP);
    ASSERT_TRUE(evfly::test::wait_logged(p, "reload failed")) << p.err();
    EXPECT_NE(p.err().find("Address already in use"), std::string::npos);
    EXPECT_EQ(status_of(get(second, "/metrics")), 200);
    ::close(holder);

    // A refused reload keeps nothing either.
    EXPECT_LE(settled_fds(p.pid(), fds_before), fds_before + 1) << list_before << "\n"
                                                                << fd_list(p.pid());
    // Scrapes through the stop.
    std::atomic<bool> stopping{true};
    std::thread late([&] {
        while (stopping) {
            const int s = status_of(get(second, "/metrics"));
            EXPECT_TRUE(s == 0 || s == 200 || s == 503) << s;
        }
    });
    std::this_thread::sleep_for(100ms);
    p.signal(SIGTERM);
    const auto code = p.wait(20s);
    stopping = false;
    late.join();
    ASSERT_EQ(code, 0) << p.err();
    // Not expect_clean: a connection civetweb accepts while it stops, at the exit, may still be
    // open when the summary counts the fds (seen 4 times in 10 under this hammering; never
    // across reloads, checked above).
    const nlohmann::json s = evfly::test::summary_of(summary);
    EXPECT_EQ(s["totals"]["lost"], 0);
    EXPECT_TRUE(s["drained"].get<bool>());
    EXPECT_EQ(s["totals"]["consumer_errors"], 0);
    EXPECT_EQ(s["reloads"]["ok"], 1);
    EXPECT_EQ(s["reloads"]["failed"], 1);
}

// An address it cannot have: exit 71 at the start, naming the key.
TEST(MetricsHttp, AnAddressInUseOrNotHereExits71NamingTheKey) {
    TempDir dir;
    const int holder = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(holder, 1), 0);
    socklen_t len = sizeof sa;
    ::getsockname(holder, reinterpret_cast<sockaddr*>(&sa), &len);
    const auto in_use = evfly::test::run_evflyd(
        {"-c", dir.write("busy.toml", config(ntohs(sa.sin_port))), "--run-for", "1s"});
    ::close(holder);
    EXPECT_EQ(in_use.code, 71);
    EXPECT_NE(in_use.err.find("evflyd: cannot start: metrics.listen 127.0.0.1:"), std::string::npos)
        << in_use.err;
    EXPECT_NE(in_use.err.find("Address already in use"), std::string::npos);
    // 192.0.2.1 (TEST-NET-1) is on no interface here.
    const auto not_here = evfly::test::run_evflyd(
        {"-c",
         dir.write("nothere.toml",
                   "[metrics]\nlisten = \"192.0.2.1:9464\"\n[[producer]]\nname = \"p\"\n"
                   "kind = \"eventfd\"\n"),
         "--run-for", "1s"});
    EXPECT_EQ(not_here.code, 71);
    EXPECT_NE(not_here.err.find("metrics.listen 192.0.2.1:9464"), std::string::npos)
        << not_here.err;
}
