#include "evfly/epoll.h"

#include <cerrno>

namespace evfly {
namespace {
int ctl(int epfd, int op, int fd, std::uint32_t events, std::uint64_t token) noexcept {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = token;
    return ::epoll_ctl(epfd, op, fd, &ev) == 0 ? 0 : errno;
}
}  // namespace

Epoll::Epoll() : fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!fd_) throw_errno("epoll_create1");
}

int Epoll::add(int fd, std::uint32_t events, std::uint64_t token) const noexcept {
    return ctl(fd_.get(), EPOLL_CTL_ADD, fd, events, token);
}

int Epoll::rearm(int fd, std::uint64_t token) const noexcept {
    return ctl(fd_.get(), EPOLL_CTL_MOD, fd, kOneShotEvents, token);
}

int Epoll::remove(int fd) const noexcept {
    // A non-null event pointer keeps pre-2.6.9 semantics out of the question.
    epoll_event ev{};
    return ::epoll_ctl(fd_.get(), EPOLL_CTL_DEL, fd, &ev) == 0 ? 0 : errno;
}

int Epoll::wait(std::span<epoll_event> events, int timeout_ms) const noexcept {
    const int n =
        ::epoll_wait(fd_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
    return n >= 0 ? n : -errno;
}

}  // namespace evfly
