// fd_mode = "semaphore": one EFD_SEMAPHORE eventfd per producer thread, each read one unit, so
// the consumers share one fd's units like a work queue. Both halves of its protocol; the
// producer's fire loop is the persistent one (mode_persistent.cpp).
//
// Producer: each fire is one unit, its stamps pushed on a FIFO before the write. Consumer: read
// one unit and re-arm at once (the next unit goes to another consumer), take the oldest stamps
// from the FIFO and a copy of what the handler needs, all under the slot's mutex; then serve the
// unit with the slot unlocked, from those copies only: a reload may retire the producer and free
// it as soon as the lock is let go.
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "consumer_thread.h"
#include "producer_thread.h"

namespace evfly::detail {

void ProducerThread::push_unit(Slot& slot, const FireStamp& unit) {
    MutexLock lock(units_mutex_);
    units_.push_back(unit);
    if (units_.size() == 1) {  // the oldest unread unit: what the canary looks at
        slot.written.store(unit.written, std::memory_order_relaxed);
        slot.stamp.store(unit.due, std::memory_order_release);
    }
}

bool ProducerThread::take_unit(Slot& slot, FireStamp& unit) {
    MutexLock lock(units_mutex_);
    if (units_.empty()) return false;
    unit = units_.front();
    units_.pop_front();
    if (units_.empty()) {
        slot.stamp.store(0, std::memory_order_relaxed);
    } else {
        slot.written.store(units_.front().written, std::memory_order_relaxed);
        slot.stamp.store(units_.front().due, std::memory_order_release);
    }
    return true;
}

void ProducerThread::drain_units(Slot& slot, int fd) {
    // Each read takes one unit: read them all.
    std::uint64_t count = 0;
    while (::read(fd, &count, sizeof count) == static_cast<ssize_t>(sizeof count))
        value_drained.add(count);
    MutexLock units(units_mutex_);
    units_.clear();
    slot.stamp.store(0, std::memory_order_relaxed);
}

bool ConsumerThread::handle_semaphore(Slot& slot, std::uint32_t index, std::uint64_t generation) {
    // One unit per read, and the fd re-armed before the unit is handled: the next unit goes to
    // another consumer at once, so the consumers share one fd's units like a work queue.
    FireStamp unit;
    Handler handler;
    int fd = -1;
    {
        std::lock_guard lock(slot.mutex);
        if (!same_generation(slot.generation.load(std::memory_order_acquire), generation)) {
            return false;  // retired by its producer after epoll reported it
        }
        fd = slot.fd.load(std::memory_order_relaxed);
        bool got = false;
        std::uint64_t one = 0;
        if (::read(fd, &one, sizeof one) == static_cast<ssize_t>(sizeof one)) {
            slot.value_read.add(one);
            SlotPool& owner = *slot.owner.load(std::memory_order_relaxed);
            got = owner.take_unit(slot, unit);
            // A copy: once the lock is let go, a reload may retire the producer and free it.
            handler = owner.handler();
        } else if (errno != EAGAIN) {
            read_failed("eventfd", fd, errno);
        }
        rearm(fd, make_token(index, generation));
        if (!got) return true;
    }
    // Nothing of the slot or its producer from here on: the unit and the handler are copies.
    const std::int64_t now = steady_ns();
    const int cpu = record_eventfd(unit.due, unit.written, now, unit.cpu, handler);
    serve(handler, fd, 1, now - unit.due, cpu, unit.cpu);
    return true;
}

}  // namespace evfly::detail
