// fd_mode = "per-event": a fresh eventfd for every event, both halves of its protocol.
//
// Producer: take a free slot, create the eventfd, register it (EPOLLIN | EPOLLET | EPOLLONESHOT)
// under the slot's token, stamp the fire, write. With fire = "create" the eventfd is born
// holding its value and registering it is the fire: 4 syscalls in its life instead of 5.
// Consumer: read, record, serve, close, bump the generation, hand the slot back.
//
// The hand-off: the producer stores the due stamp and the fire CPU, then the write stamp with
// release, before the fd can be read; the consumer loads the write stamp first, with acquire,
// and everything stored before it (the fd and the due stamp) is then visible. EPOLLONESHOT makes
// the consumer that receives the event the slot's only user until it closes the fd; nothing else
// closes per-event fds.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <climits>

#include "consumer_thread.h"
#include "evfly/log.h"
#include "producer_thread.h"

namespace evfly::detail {
namespace {

constexpr std::int64_t kAddBackoffNs = 5'000'000;  // after a failed epoll_ctl ADD

}  // namespace

void ProducerThread::run_per_event(const std::stop_token& stop) {
    start_schedule();
    const std::uint64_t value = shared_.hooks.eventfd_value;
    // fire = "create": the eventfd is born holding its value (eventfd(2) takes an unsigned int),
    // and registering it is the fire: create, register, read, close.
    const bool create = config_.fire == FireMode::create && value <= UINT_MAX;
    const NewFd new_fd{.initial = static_cast<unsigned int>(create ? value : 0),
                       .flags = EFD_CLOEXEC | EFD_NONBLOCK};
    while (!stop.stop_requested()) {
        const std::int64_t due_or_stop = wait_due(stop);
        if (due_or_stop < 0) break;
        std::int64_t due = due_or_stop;
        const std::int64_t acquired = acquire_slot(stop);
        if (acquired < 0) break;
        const auto index = static_cast<std::uint32_t>(acquired);
        const int fd = create_fd(stop, new_fd);
        if (fd < 0) {
            free_.push_back(index);
            break;
        }
        Slot& slot = shared_.slots[index];
        const std::uint64_t generation = slot.generation.load(std::memory_order_relaxed);
        // Before the write stamp's release (in fire()), whichever comes first: the consumer
        // finds the fd through it.
        slot.fd.store(fd, std::memory_order_relaxed);
        // Count and stamp before the fd can be read: for "write" that is the write(), for
        // "create" the registration (an fd registered readable is reported at once). A consumer
        // may count the value before the call returns, and written must never trail read.
        const auto fire = [&] {
            fired.add();
            value_written.add(value);
            const std::int64_t now = steady_ns();
            if (schedule_.flat_out()) {
                due = now;  // no schedule: due when written
            } else {
                count_fire(due, now);
            }
            // Latency counts from the due time, however long the wait for a slot or an fd took;
            // the write stamp goes last, with release, and the consumer loads it first.
            slot.stamp.store(due, std::memory_order_relaxed);
            slot.fire_cpu.store(current_cpu(), std::memory_order_relaxed);
            slot.written.store(now, std::memory_order_release);
        };
        const auto unfire = [&] {
            fired.sub(1);
            value_written.sub(value);
            slot.written.store(0, std::memory_order_relaxed);
        };
        if (create) fire();
        if (const int err = register_fd(index, fd); err != 0) {
            // ENOSPC (max_user_watches) or ENOMEM: like fd exhaustion, back off and try again;
            // every failure is counted, and each episode logged once.
            if (create) unfire();
            ::close(fd);
            free_.push_back(index);
            errors.add();
            const std::int64_t now = steady_ns();
            if (add_failures_.fail(now))
                log::emit(log::Level::warn, "epoll_ctl ADD failed; retrying with back-off",
                          {{"producer", config_.name}, {"error", errno_text(err)}});
            sleep_until(stop, now + kAddBackoffNs);
            continue;
        }
        if (add_failures_.active()) {
            if (const std::uint64_t failed = add_failures_.succeed(steady_ns()); failed != 0)
                log::emit(log::Level::info, "epoll_ctl ADD works again",
                          {{"producer", config_.name}, {"failed_attempts", failed}});
        }
        if (create) continue;
        fire();
        // A fresh counter is 0, so this write cannot meet a full counter; an error here is
        // unexpected and leaves the fd registered and unfired, so retire it ourselves.
        if (::write(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) {
            const int err = errno;
            unfire();
            errors.add();
            log::emit(log::Level::err, "eventfd write failed",
                      {{"producer", config_.name}, {"fd", fd}, {"error", errno_text(err)}});
            (void)shared_.epoll.remove(fd);
            ::close(fd);
            slot.fd.store(-1, std::memory_order_relaxed);
            slot.generation.store(generation + 1, std::memory_order_release);
            free_.push_back(index);
        }
    }
    close_schedule();
    drain();
}

void ConsumerThread::handle_per_event(Slot& slot, std::uint32_t index) {
    // EPOLLONESHOT: this consumer is the only one that received this registration, and nothing
    // else closes per-event fds, so the slot is ours until we release it. The write stamp first,
    // with acquire (the producer stored it last, with release): the fd, the due stamp and the
    // fire CPU read after it are those of the same fire.
    const std::int64_t written = slot.written.load(std::memory_order_acquire);
    const int fd = slot.fd.load(std::memory_order_relaxed);
    const std::int64_t due = slot.stamp.load(std::memory_order_relaxed);
    const int fire_cpu = slot.fire_cpu.load(std::memory_order_relaxed);
    assert(fd >= 0 && "a per-event registration is consumed once (EPOLLONESHOT)");
    std::uint64_t value = 0;
    if (::read(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) {
        read_failed("eventfd", fd, errno);
        value = 0;
    }
    const std::int64_t now = steady_ns();
    slot.written.store(0, std::memory_order_relaxed);  // nothing of this slot in flight now
    SlotPool* owner = slot.owner.load(std::memory_order_relaxed);
    slot.value_read.add(value);
    const Handler& handler = owner->handler();
    const int cpu = record_eventfd(due, written, now, fire_cpu, handler);
    serve(handler, fd, value, now - due, cpu, fire_cpu);
    // close() is the detach, with no EPOLL_CTL_DEL first (one syscall less per event, measured in
    // tests/bench): this is the only descriptor of the eventfd (CLOEXEC, never dup'd, evflyd never
    // forks), so closing it releases the file and the kernel drops the registration with it.
    // Even if a copy of the descriptor existed, EPOLLONESHOT has already disarmed the
    // registration, and epoll keys registrations by file as well as number, so a new eventfd
    // that reuses the number is a separate registration.
    slot.fd.store(-1, std::memory_order_relaxed);
    ::close(fd);
    slot.generation.store(slot.generation.load(std::memory_order_relaxed) + 1,
                          std::memory_order_release);
    released_.emplace_back(owner, index);
    // With a modelled handler cost, hand the fd back now rather than after the whole batch.
    if (!handler.work.none()) flush_released();
}

}  // namespace evfly::detail
