#include <sys/resource.h>

#include <csignal>

#include "evfly/daemon.h"
#include "evfly/fd.h"

namespace evfly {

void block_all_signals() {
    sigset_t all;
    ::sigfillset(&all);
    // Faults raised by the CPU cannot be deferred; leave them to their default action (and to
    // the sanitizers' handlers).
    for (const int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT})
        ::sigdelset(&all, sig);
    if (const int err = ::pthread_sigmask(SIG_BLOCK, &all, nullptr); err != 0) {
        throw std::system_error(err, std::generic_category(), "pthread_sigmask");
    }
}

std::uint64_t raise_fd_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) throw_errno("getrlimit(RLIMIT_NOFILE)");
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        // Under a seccomp filter that denies setrlimit (systemd's @resources), keep what we have:
        // the unit sets LimitNOFILE= for us.
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    return static_cast<std::uint64_t>(limit.rlim_cur);
}

}  // namespace evfly
