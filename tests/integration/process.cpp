#include "process.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace evfly::test {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

Process::Process(const std::vector<std::string>& args, const SpawnOptions& options) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "evfly-proc-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string entry = *e;
        if (options.clear_notify_env &&
            (entry.starts_with("NOTIFY_SOCKET=") || entry.starts_with("WATCHDOG_") ||
             entry.starts_with("JOURNAL_STREAM="))) {
            continue;
        }
        env.push_back(entry);
    }
    env.insert(env.end(), options.env.begin(), options.env.end());
    std::vector<char*> argv;
    const std::string program = options.program.empty() ? EVFLYD_PATH : options.program;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const std::string out_path = dir_ + "/stdout";
    const std::string err_path = dir_ + "/stderr";

    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        // Child: only async-signal-safe calls from here on.
        const int in = ::open("/dev/null", O_RDONLY);
        const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(err, 2);
        ::close(in);
        ::close(out);
        ::close(err);
        // Nothing else of ours leaks into the child: close everything above stderr.
        ::close_range(3, ~0U, 0);
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (options.nofile) {
            const rlimit limit{*options.nofile, *options.nofile};
            ::setrlimit(RLIMIT_NOFILE, &limit);
        }
        if (options.nproc) {
            const rlimit limit{*options.nproc, *options.nproc};
            ::setrlimit(RLIMIT_NPROC, &limit);
        }
        if (options.uid) {
            const auto gid = static_cast<gid_t>(*options.uid);
            if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(*options.uid) != 0)
                ::_exit(126);
        }
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
}

Process::~Process() {
    if (!reaped_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

void Process::signal(int sig) const { ::kill(pid_, sig); }

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!reaped_) {
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::nullopt;
}

std::string Process::out() const { return read_file(dir_ + "/stdout"); }
std::string Process::err() const { return read_file(dir_ + "/stderr"); }

Result run_evflyd(const std::vector<std::string>& args, const SpawnOptions& options,
                  std::chrono::milliseconds timeout) {
    Process p(args, options);
    const auto code = p.wait(timeout);
    Result r;
    r.code = code.value_or(-1);
    r.out = p.out();
    r.err = p.err();
    return r;
}

namespace {
template <typename F>
void for_threads(pid_t pid, const std::string& prefix, F&& f) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/task/";
    for (const auto& [tid, name] : threads_of(pid, prefix)) f(dir + tid);
}
}  // namespace

long long thread_ctx_switches(pid_t pid, const std::string& prefix) {
    long long total = 0;
    for_threads(pid, prefix, [&](const std::string& task) {
        for (const auto& line : lines(read_file(task + "/status"))) {
            if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
                total += std::stoll(line.substr(24));
        }
    });
    return total;
}

double thread_cpu_seconds(pid_t pid, const std::string& prefix) {
    double total = 0;
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    for_threads(pid, prefix, [&](const std::string& task) {
        // Fields 14 and 15 (utime, stime) follow the ")" that ends the thread's name.
        const std::string stat = read_file(task + "/stat");
        std::istringstream rest(stat.substr(stat.rfind(')') + 2));
        std::string field;
        for (int i = 3; i <= 13 && rest >> field; ++i) {
        }
        long long utime = 0, stime = 0;
        rest >> utime >> stime;
        total += static_cast<double>(utime + stime) / ticks;
    });
    return total;
}

std::vector<std::string> thread_ids(pid_t pid, const std::string& prefix) {
    std::vector<std::string> ids;
    for_threads(pid, prefix, [&](const std::string& task) {
        ids.push_back(std::filesystem::path(task).filename().string());
    });
    std::sort(ids.begin(), ids.end());
    return ids;
}

int thread_count(pid_t pid, const std::string& prefix) {
    int count = 0;
    for_threads(pid, prefix, [&](const std::string&) { ++count; });
    return count;
}

SpawnOptions as_nobody(const TempDir& dir) {
    std::filesystem::permissions(dir.path(), std::filesystem::perms(0777));
    SpawnOptions spawn;
    spawn.program = dir.path() + "/evflyd";
    std::filesystem::copy_file(EVFLYD_PATH, spawn.program);
    std::filesystem::permissions(spawn.program, std::filesystem::perms(0755));
    spawn.uid = 65534;
    return spawn;
}

std::size_t count_lines_with(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (const auto& line : lines(text))
        if (line.find(needle) != std::string::npos) ++n;
    return n;
}

}  // namespace evfly::test
