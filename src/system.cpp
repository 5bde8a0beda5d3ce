// The process-wide setup of evflyd (system.h).
#include "evfly/system.h"

#include <pthread.h>
#include <sys/resource.h>

#include <csignal>
#include <cstddef>
#include <system_error>

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

void set_thread_stack_size() {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    // evflyd's threads keep little on their stacks (batches and buffers live on the heap), so
    // each gets 256 KiB instead of RLIMIT_STACK's usual 8 MiB: under daemon.mlockall every page
    // of a stack is locked and faulted in when its thread starts. The sanitizers' instrumented
    // frames need more, so their builds keep the default.
    constexpr std::size_t kStack = std::size_t{256} * 1024;
    pthread_attr_t attr;
    if (::pthread_attr_init(&attr) != 0) return;
    if (::pthread_attr_setstacksize(&attr, kStack) == 0) (void)::pthread_setattr_default_np(&attr);
    ::pthread_attr_destroy(&attr);
#endif
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
