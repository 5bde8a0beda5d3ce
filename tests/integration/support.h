// Test support shared by the integration tests: reading the summary, the checks every clean run
// must pass, and a stand-in for systemd's notify socket.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace evfly::test {

nlohmann::json summary_of(const std::string& path);
// The summary's entry for producer `name` (a test failure if there is none).
nlohmann::json producer(const nlohmann::json& summary, const std::string& name);
// Nothing lost, nothing left unread, no consumer error, no fd leaked.
void expect_clean(const nlohmann::json& s);

class Process;
class TempDir;

// Writes `config` as NAME.toml in `dir`, runs evflyd on it for `run_for` (a duration), expects a
// clean exit and returns its summary.
nlohmann::json run_config(TempDir& dir, const std::string& name, const std::string& config,
                          const std::string& run_for);

// The JSON log lines on the process's stderr so far (other lines skipped).
std::vector<nlohmann::json> log_lines(const Process& p);
// How many of them have `msg` as their message.
std::size_t count_logged(const Process& p, const std::string& msg);
// Waits until `msg` has been logged `count` times; false after `timeout`.
bool wait_logged(const Process& p, const std::string& msg, std::size_t count = 1,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A fake systemd notify socket: what evflyd sends with sd_notify, as it arrives.
class NotifySocket {
  public:
    explicit NotifySocket(const std::string& path);
    ~NotifySocket();
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
    [[nodiscard]] std::string env() const { return "NOTIFY_SOCKET=" + path_; }

    struct Message {
        std::chrono::steady_clock::time_point at;
        std::string text;
    };
    // Every message until one contains STOPPING=1, or `timeout`.
    [[nodiscard]] std::vector<Message> until_stopping(
        std::chrono::seconds timeout = std::chrono::seconds(20)) const;

  private:
    std::string path_;
    int sock_ = -1;
};

}  // namespace evfly::test
