#include "evfly/fd.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return -1;
    int count = 0;
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    return count - 1;  // the directory stream itself holds one
}

}  // namespace evfly
