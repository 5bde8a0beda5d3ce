#include "support.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <thread>

#include "process.h"

namespace evfly::test {

nlohmann::json run_config(TempDir& dir, const std::string& name, const std::string& config,
                          const std::string& run_for) {
    const std::string summary = dir.path() + "/" + name + ".json";
    const auto r = run_evflyd(
        {"-c", dir.write(name + ".toml", config), "--run-for", run_for, "--summary", summary}, {},
        std::chrono::seconds(60));
    EXPECT_EQ(r.code, 0) << r.err;
    return summary_of(summary);
}

nlohmann::json summary_of(const std::string& path) {
    return nlohmann::json::parse(evfly::test::read_file(path));
}

nlohmann::json producer(const nlohmann::json& summary, const std::string& name) {
    for (const auto& p : summary["producers"]) {
        if (p["name"] == name) return p;
    }
    ADD_FAILURE() << "no producer " << name;
    return {};
}

void expect_clean(const nlohmann::json& s) {
    EXPECT_EQ(s["totals"]["lost"], 0);
    // Every value written was read, by a consumer or by the stop (drained_at_stop).
    EXPECT_EQ(s["totals"]["value_written"].get<std::uint64_t>(),
              s["totals"]["value_read"].get<std::uint64_t>() +
                  s["totals"]["drained_at_stop"].get<std::uint64_t>());
    EXPECT_EQ(s["totals"]["consumer_errors"], 0);
    EXPECT_EQ(s["drained"], true);
    // No fd leaked. At most as many at exit as at start: under ThreadSanitizer the start-up count
    // can include an fd the sanitizer runtime holds for a moment (seen with a busy debug logger).
    EXPECT_LE(s["resources"]["fds_at_exit"].get<int>(), s["resources"]["fds_at_start"].get<int>());
}

std::vector<nlohmann::json> log_lines(const Process& p) {
    std::vector<nlohmann::json> out;
    for (const auto& line : lines(p.err())) {
        if (line.front() != '{') continue;
        out.push_back(nlohmann::json::parse(line));
    }
    return out;
}

std::size_t count_logged(const Process& p, const std::string& msg) {
    std::size_t n = 0;
    for (const auto& line : log_lines(p)) n += line["msg"] == msg ? 1U : 0U;
    return n;
}

bool wait_logged(const Process& p, const std::string& msg, std::size_t count,
                 std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (count_logged(p, msg) >= count) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
}

NotifySocket::NotifySocket(const std::string& path) : path_(path) {
    sock_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (sock_ < 0 || ::bind(sock_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw std::runtime_error("cannot bind " + path);
    timeval tv{0, 100'000};
    ::setsockopt(sock_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

NotifySocket::~NotifySocket() { ::close(sock_); }

std::vector<NotifySocket::Message> NotifySocket::until_stopping(
    std::chrono::seconds timeout) const {
    std::vector<Message> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        char buf[1024];
        const ssize_t n = ::recv(sock_, buf, sizeof buf, 0);
        if (n <= 0) continue;
        out.push_back(
            {std::chrono::steady_clock::now(), std::string(buf, static_cast<std::size_t>(n))});
        if (out.back().text.find("STOPPING=1") != std::string::npos) break;
    }
    return out;
}

}  // namespace evfly::test
