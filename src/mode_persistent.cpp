// fd_mode = "persistent": one eventfd per producer thread for its whole life, both halves of its
// protocol: the fire loop (shared with the semaphore mode, whose stamps are in
// mode_semaphore.cpp) and the consumer's read. The stamp protocol itself is in
// mode_persistent.h.
//
// Producer: for each fire, stamp it if it is the oldest unread one, count it, then write; a full
// counter (EAGAIN) is waited out, never dropped. Consumer: take the stamp, read the whole counter
// (one read drains it), record, serve, re-arm. Consumer and retire() both hold the slot's mutex,
// so a retired fd is never read or re-armed after it is closed.
#include "mode_persistent.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "consumer_thread.h"
#include "evfly/log.h"
#include "producer_thread.h"

namespace evfly::detail {
namespace {

constexpr std::int64_t kFullCounterRetryNs = 100'000;

}  // namespace

void ProducerThread::run_persistent(const std::stop_token& stop, bool semaphore) {
    const std::uint32_t index = slots_[0];
    Slot& slot = shared_.slots[index];
    const int fd = create_fd(
        stop, NewFd{.flags = EFD_CLOEXEC | EFD_NONBLOCK | (semaphore ? EFD_SEMAPHORE : 0)});
    if (fd >= 0) {
        if (const int err = register_fd(index, fd); err != 0) {
            ::close(fd);
            started_once();
            throw std::system_error(err, std::generic_category(), "epoll_ctl ADD");
        }
    }
    started_once();
    if (fd < 0) return;

    start_schedule();
    // A semaphore fd is read one unit at a time: each fire is one unit (and one stamp).
    const std::uint64_t value = semaphore ? 1 : shared_.hooks.eventfd_value;
    while (!stop.stop_requested()) {
        const std::int64_t due_or_stop = wait_due(stop);
        if (due_or_stop < 0) break;
        std::int64_t due = due_or_stop;
        const std::int64_t now = steady_ns();
        if (schedule_.flat_out()) {
            due = now;
        } else {
            count_fire(due, now);
        }
        if (semaphore) {
            push_unit(slot, FireStamp{due, now, current_cpu()});
        } else {
            persistent::stamp_fire(slot, due, now, current_cpu());
        }
        fired.add();
        value_written.add(value);
        while (::write(fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) {
            const int err = errno;
            if (err != EAGAIN) {
                fired.sub(1);
                value_written.sub(value);
                errors.add();
                log::emit(log::Level::err, "eventfd write failed",
                          {{"producer", config_.name}, {"fd", fd}, {"error", errno_text(err)}});
                break;
            }
            // The counter is full: the value was not added. Wait for a consumer to drain it.
            write_retries.add();
            if (!sleep_until(stop, steady_ns() + kFullCounterRetryNs)) {
                fired.sub(1);
                value_written.sub(value);
                break;
            }
        }
    }
    close_schedule();
    retire(slot);
}

bool ConsumerThread::handle_persistent(Slot& slot, std::uint32_t index, std::uint64_t generation) {
    std::lock_guard lock(slot.mutex);
    if (!same_generation(slot.generation.load(std::memory_order_acquire), generation)) {
        return false;  // retired by its producer after epoll reported it; already accounted
    }
    const int fd = slot.fd.load(std::memory_order_relaxed);
    int err = 0;
    const persistent::Taken taken = persistent::take_and_read(slot, [fd, &err] {
        std::uint64_t value = 0;
        if (::read(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value)) return value;
        err = errno;
        return std::uint64_t{0};
    });
    if (taken.value != 0) {
        slot.value_read.add(taken.value);
        const std::int64_t now = steady_ns();
        const Handler& handler = slot.owner.load(std::memory_order_relaxed)->handler();
        const std::int64_t latency = taken.due != 0 ? now - taken.due : 0;
        int cpu = -1;
        if (taken.due != 0)
            cpu = record_eventfd(taken.due, taken.written, now, taken.fire_cpu, handler);
        serve(handler, fd, taken.value, latency, cpu, taken.fire_cpu);
    } else if (err != EAGAIN) {
        read_failed("eventfd", fd, err);
    }
    rearm(fd, make_token(index, generation));
    return true;
}

}  // namespace evfly::detail
