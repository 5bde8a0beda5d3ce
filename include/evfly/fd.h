// Fd: the single owner of a file descriptor.
//
// An Fd closes its descriptor exactly once, in its destructor or in reset(). It is move-only, so a
// descriptor can never be closed twice by two copies. It does not detach the descriptor from an
// epoll instance: callers remove registrations first (see Epoll::remove), then let the Fd go.
#pragma once

#include <utility>

namespace evfly {

class Fd {
  public:
    Fd() noexcept = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    ~Fd() { reset(); }

    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }

    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    explicit operator bool() const noexcept { return valid(); }

    // Gives up ownership without closing.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    // Closes the current descriptor (if any) and takes ownership of `fd`.
    void reset(int fd = -1) noexcept;

  private:
    int fd_ = -1;
};

// Throws std::system_error naming `what` (a syscall) with the current errno.
[[noreturn]] void throw_errno(const char* what);

// A description of errno value `err`, safe from any thread (unlike strerror).
const char* errno_text(int err) noexcept;

// The number of open descriptors of this process (entries of /proc/self/fd).
int count_open_fds();

}  // namespace evfly
