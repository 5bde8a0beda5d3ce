#include "placement.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "evfly/fd.h"
#include "sched_policy.h"

namespace evfly::detail {
namespace {

std::string failure(const std::string& key, const std::string& call, int err) {
    std::string why = "key '" + key + "': " + call + ": " + errno_text(err);
    if (err == EPERM)
        why +=
            " (real-time policies, negative nice and other CPUs need CAP_SYS_NICE or "
            "LimitRTPRIO=; see the README's drop-in)";
    return why;
}

}  // namespace

pid_t current_tid() noexcept { return static_cast<pid_t>(::gettid()); }

PlacementDefaults PlacementDefaults::of_this_process() {
    PlacementDefaults d;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0) {
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
            if (CPU_ISSET(static_cast<std::size_t>(cpu), &set)) d.cpus.push_back(cpu);
    }
    d.policy = ::sched_getscheduler(0);
    if (d.policy < 0) d.policy = SCHED_OTHER;
    sched_param param{};
    if (::sched_getparam(0, &param) == 0) d.priority = param.sched_priority;
    errno = 0;
    const int nice = ::getpriority(PRIO_PROCESS, 0);
    if (errno == 0) d.nice = nice;
    const int slack = ::prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    if (slack > 0) d.timer_slack_ns = static_cast<std::uint64_t>(slack);
    return d;
}

std::string apply_placement(const Placement& p, const PlacementDefaults& defaults, pid_t tid,
                            std::uint32_t index, const std::string& prefix) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (!p.cpus.empty()) {
        CPU_SET(static_cast<std::size_t>(p.cpus[index % p.cpus.size()]), &set);
    } else {
        for (const int cpu : defaults.cpus) CPU_SET(static_cast<std::size_t>(cpu), &set);
    }
    if (::sched_setaffinity(tid, sizeof set, &set) != 0)
        return failure(prefix + "cpus", "sched_setaffinity", errno);
    const int policy = p.policy ? sched_policy_of(*p.policy).number : defaults.policy;
    sched_param param{};
    param.sched_priority = p.policy ? p.priority : defaults.priority;
    if (::sched_setscheduler(tid, policy, &param) != 0)
        return failure(prefix + (p.policy && p.priority != 0 ? "priority" : "policy"),
                       "sched_setscheduler", errno);
    if (policy != SCHED_FIFO && policy != SCHED_RR) {
        const int nice = p.nice ? *p.nice : defaults.nice;
        if (::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) != 0)
            return failure(prefix + "nice", "setpriority", errno);
    }
    const std::uint64_t slack = p.timer_slack ? static_cast<std::uint64_t>(p.timer_slack->count())
                                              : defaults.timer_slack_ns;
    if (tid == 0 || tid == current_tid()) {
        if (::prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0) != 0)
            return failure(prefix + "timer_slack", "prctl(PR_SET_TIMERSLACK)", errno);
    } else {
        std::ofstream out("/proc/" + std::to_string(tid) + "/timerslack_ns");
        out << slack;
        out.flush();
        if (!out) return failure(prefix + "timer_slack", "write timerslack_ns", EIO);
    }
    return {};
}

std::string PlacementTxn::place(pid_t tid, std::uint32_t index, const Placement& next,
                                const Placement& previous, const std::string& prefix) {
    if (tid == 0) return {};
    undo_.push_back({tid, index, previous, prefix});
    return apply_placement(next, defaults_, tid, index, prefix);
}

void PlacementTxn::started(pid_t tid, std::uint32_t index, const Placement& previous,
                           const std::string& prefix) {
    if (tid != 0) undo_.push_back({tid, index, previous, prefix});
}

std::string PlacementTxn::rollback() {
    std::string why;
    for (auto u = undo_.rbegin(); u != undo_.rend(); ++u) {
        if (std::string failed =
                apply_placement(u->previous, defaults_, u->tid, u->index, u->prefix);
            !failed.empty() && why.empty())
            why = std::move(failed);
    }
    undo_.clear();
    return why;
}

std::string apply_mlockall(bool on) {
    if (on ? ::mlockall(MCL_CURRENT | MCL_FUTURE) == 0 : ::munlockall() == 0) return {};
    const int err = errno;
    std::string why = std::string("key 'daemon.mlockall': ") + (on ? "mlockall" : "munlockall") +
                      ": " + errno_text(err);
    if (err == EPERM || err == ENOMEM)
        why += " (needs CAP_IPC_LOCK or a LimitMEMLOCK= above the daemon's size)";
    return why;
}

std::string CpuWakeLatency::set(std::optional<Nanos> latency) {
    if (!latency) {
        fd_ = Fd();  // closing the fd withdraws the request
        return {};
    }
    static constexpr const char* kPath = "/dev/cpu_dma_latency";
    const auto fail = [](const char* what, int err) {
        std::string why = std::string("key 'daemon.cpu_dma_latency': ") + what + " " + kPath +
                          ": " + errno_text(err);
        if (err == EPERM || err == EACCES)
            why += " (needs root, or under systemd DeviceAllow=/dev/cpu_dma_latency w)";
        return why;
    };
    // A new request is opened first and kept only once written, so a failure changes nothing;
    // a request in force takes the new value in place.
    Fd opened;
    if (!fd_) {
        opened = Fd(::open(kPath, O_WRONLY | O_CLOEXEC));
        if (!opened) return fail("open", errno);
    }
    const auto us = static_cast<std::int32_t>(latency->count() / 1000);
    const int fd = fd_ ? fd_.get() : opened.get();
    if (::write(fd, &us, sizeof us) != static_cast<ssize_t>(sizeof us)) return fail("write", errno);
    if (opened) fd_ = std::move(opened);
    return {};
}

std::string describe(const Placement& p) {
    if (p.empty()) return "inherited";
    std::string out;
    const auto add = [&out](const std::string& part) { out += (out.empty() ? "" : " ") + part; };
    if (!p.cpus.empty()) add("cpus=" + format_cpu_list(p.cpus));
    if (p.policy) add(std::string("policy=") + to_string(*p.policy));
    if (p.policy == SchedPolicy::fifo || p.policy == SchedPolicy::rr)
        add("priority=" + std::to_string(p.priority));
    if (p.nice) add("nice=" + std::to_string(*p.nice));
    if (p.timer_slack) add("timer_slack=" + format_duration(*p.timer_slack));
    return out;
}

std::vector<ThreadState> observe_threads() noexcept try {
    std::vector<ThreadState> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
        ThreadState t;
        t.tid = std::atoi(entry.path().filename().c_str());
        std::ifstream comm(entry.path() / "comm");
        std::getline(comm, t.name);
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        std::getline(stat, line);
        // Field 39 (processor), counted after the ")" that ends the name (field 2). A file that
        // cannot be read (the process is out of fds) leaves the field unknown (-1).
        if (const auto paren = line.rfind(')');
            paren != std::string::npos && paren + 2 <= line.size()) {
            std::istringstream rest(line.substr(paren + 2));
            std::string field;
            for (int i = 3; i <= 39 && rest >> field; ++i)
                if (i == 39) t.cpu = std::atoi(field.c_str());
        }
        std::ifstream status(entry.path() / "status");
        while (std::getline(status, line))
            if (line.rfind("Cpus_allowed_list:", 0) == 0 && line.size() > 18)
                t.cpus_allowed =
                    line.substr(std::min(line.find_first_not_of(" \t", 18), line.size()));
        const int policy = ::sched_getscheduler(t.tid);
        t.policy = sched_policy_of(policy).name;
        sched_param param{};
        if (::sched_getparam(t.tid, &param) == 0) t.priority = param.sched_priority;
        errno = 0;
        const int nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(t.tid));
        if (errno == 0) t.nice = nice;
        std::ifstream slack("/proc/" + std::to_string(t.tid) + "/timerslack_ns");
        slack >> t.timer_slack_ns;
        out.push_back(std::move(t));
    }
    return out;
} catch (...) {
    return {};  // a report without the threads rather than no report
}

}  // namespace evfly::detail
