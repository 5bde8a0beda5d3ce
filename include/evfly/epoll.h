// Epoll: one epoll instance, owned.
//
// Registrations carry a 64-bit token chosen by the caller (evfly packs a slot index and a
// generation into it), never a bare fd number or pointer. Setup (construction) throws
// std::system_error; the per-event operations return 0 or an errno value, because on the event
// path a failure is logged, counted and survived rather than thrown.
//
// Threading: every method is safe to call from any thread at once (the kernel serialises them).
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <span>

#include "evfly/fd.h"

namespace evfly {

// Edge-triggered, one-shot: the registration is disabled after it reports once, so exactly one
// consumer owns the fd until it calls rearm() (or removes it).
inline constexpr std::uint32_t kOneShotEvents = EPOLLIN | EPOLLET | EPOLLONESHOT;

class Epoll {
  public:
    Epoll();  // throws std::system_error("epoll_create1")

    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

    [[nodiscard]] int add(int fd, std::uint32_t events, std::uint64_t token) const noexcept;
    // Re-enables a one-shot registration; the kernel re-checks readiness, so an event that came in
    // while the registration was disabled is reported now rather than lost.
    [[nodiscard]] int rearm(int fd, std::uint64_t token) const noexcept;
    [[nodiscard]] int remove(int fd) const noexcept;
    // Blocks up to `timeout_ms` (-1: forever). Returns the number of events, or -errno.
    [[nodiscard]] int wait(std::span<epoll_event> events, int timeout_ms) const noexcept;

  private:
    Fd fd_;
};

}  // namespace evfly
