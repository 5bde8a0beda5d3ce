// Test support: start the real evflyd binary, capture what it prints, signal it, wait for it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "../common/proc.h"
#include "../common/temp_dir.h"

namespace evfly::test {

struct SpawnOptions {
    std::vector<std::string> env;         // extra NAME=value entries
    std::optional<unsigned long> nofile;  // RLIMIT_NOFILE (soft and hard) for the child
    // RLIMIT_NPROC (soft and hard): threads of the child's user; root ignores it, so pair it
    // with `uid`.
    std::optional<unsigned long> nproc;
    bool clear_notify_env = true;  // drop NOTIFY_SOCKET/WATCHDOG_* inherited from us
    std::optional<uid_t> uid;      // run as this user (and group of the same number)
    std::string program;           // another evflyd binary than the one under test
};

class Process {
  public:
    Process(const std::vector<std::string>& args, const SpawnOptions& options = {});
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    void signal(int sig) const;
    // Waits for exit; returns the exit code, 128+signal if killed, or nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(60));
    [[nodiscard]] std::string out() const;  // stdout so far
    [[nodiscard]] std::string err() const;  // stderr so far

  private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    std::string dir_;
};

// Runs evflyd with `args` to completion.
struct Result {
    int code = -1;
    std::string out;
    std::string err;
};
Result run_evflyd(const std::vector<std::string>& args, const SpawnOptions& options = {},
                  std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Options that run a copy of the evflyd under test from `dir`, as nobody (uid 65534), with `dir`
// open to everyone: root is not held by the limits and permissions some tests need, and the
// binary under test may sit where nobody cannot reach it.
SpawnOptions as_nobody(const TempDir& dir);

std::string read_file(const std::string& path);
// How many lines of `text` contain `needle`.
std::size_t count_lines_with(const std::string& text, const std::string& needle);
std::vector<std::string> lines(const std::string& text);
// Sum of voluntary context switches of the threads of `pid` whose name starts with `prefix`.
long long thread_ctx_switches(pid_t pid, const std::string& prefix);
int thread_count(pid_t pid, const std::string& prefix);
// CPU time (user + system, seconds) of the threads of `pid` whose name starts with `prefix`.
double thread_cpu_seconds(pid_t pid, const std::string& prefix);
// Kernel thread ids (sorted) of the threads of `pid` whose name starts with `prefix`.
std::vector<std::string> thread_ids(pid_t pid, const std::string& prefix = "");

}  // namespace evfly::test
