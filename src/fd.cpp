#include "evfly/fd.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace evfly {

void Fd::reset(int fd) noexcept {
    if (fd_ >= 0) {
        // close() on Linux releases the descriptor even when it reports EINTR, so retrying
        // could close a number another thread has just been given.
        ::close(fd_);
    }
    fd_ = fd;
}

void throw_errno(const char* what) {
    throw std::system_error(errno, std::generic_category(), what);
}

const char* errno_text(int err) noexcept {
    const char* text = ::strerrordesc_np(err);
    return text != nullptr ? text : "unknown error";
}

int count_open_fds() {
    // The iterator's own descriptor is open while it runs and is counted, at start and at exit
    // alike.
    std::error_code ec;
    std::filesystem::directory_iterator it("/proc/self/fd", ec);
    if (ec) return -1;
    int count = 0;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
        if (ec) return -1;
        ++count;
    }
    return count;
}

}  // namespace evfly
