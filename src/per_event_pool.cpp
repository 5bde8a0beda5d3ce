// A per-event producer's slots: one per fd in flight, up to max_in_flight. The thread takes
// free slots from its own list and the consumers hand closed ones back, one lock per batch.
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include "evfly/log.h"
#include "producer_thread.h"

namespace evfly::detail {

std::int64_t ProducerThread::acquire_slot(const std::stop_token& stop) {
    if (free_.empty()) {
        {
            MutexLock lock(pool_mutex_);
            free_.swap(returned_);
        }
        if (free_.empty()) (void)grow();
    }
    if (free_.empty()) {
        MutexLock lock(pool_mutex_);
        if (returned_.empty()) {
            waiting_ = true;
            pool_cv_.wait(lock, stop,
                          [this]() REQUIRES(pool_mutex_) { return !returned_.empty(); });
            waiting_ = false;
        }
        // Take everything the consumers handed back in one go: one lock per batch, not per event.
        free_.swap(returned_);
    }
    if (free_.empty()) return -1;  // stopped
    const std::uint32_t index = free_.back();
    free_.pop_back();
    return index;
}

void ProducerThread::release_slots(const std::uint32_t* indices, std::size_t count) {
    MutexLock lock(pool_mutex_);
    returned_.insert(returned_.end(), indices, indices + count);
    ++returns_;
    if (waiting_) pool_cv_.notify_one();
}

bool ProducerThread::grow() {
    const std::uint32_t count = slot_count_.load(std::memory_order_relaxed);
    if (count >= slot_capacity_) return false;
    // Double what this thread has, up to max_in_flight: slots (and their memory) in proportion
    // to what is really in flight.
    const std::uint32_t more = std::min(std::max(count, 1u), slot_capacity_ - count);
    try {
        adopt(shared_.slots.allocate(more));
    } catch (const std::length_error&) {
        if (!table_full_logged_) {
            table_full_logged_ = true;
            log::emit(log::Level::warn, "slot table full; this producer keeps what it has",
                      {{"producer", config_.name}, {"in_flight", count}});
        }
        return false;
    }
    return true;
}

void ProducerThread::drain() {
    // Every fd this thread fired is consumed and closed by a consumer; wait for the last one, or
    // the drain deadline, which a later request_stop() may bring forward.
    MutexLock lock(pool_mutex_);
    waiting_ = true;
    while (free_.size() + returned_.size() != slot_count_.load(std::memory_order_relaxed)) {
        const std::int64_t deadline = drain_deadline_ns_.load(std::memory_order_relaxed);
        if (steady_ns() >= deadline) break;
        pool_cv_.wait_until(
            lock, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline)));
    }
    waiting_ = false;
}

bool ProducerThread::wait_for_outstanding(std::int64_t deadline_ns) {
    // Every fd this thread fired is consumed and closed by a consumer; wait for the last one so
    // that a joined producer means a drained producer.
    const auto deadline =
        std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns));
    MutexLock lock(pool_mutex_);
    waiting_ = true;
    const bool done = pool_cv_.wait_until(lock, deadline, [this]() REQUIRES(pool_mutex_) {
        return free_.size() + returned_.size() == slot_count_.load(std::memory_order_relaxed);
    });
    waiting_ = false;
    return done;
}

std::uint64_t ProducerThread::abandon_leftovers() {
    std::uint64_t closed = 0;
    for (const std::uint32_t index : slots()) {
        Slot& slot = shared_.slots[index];
        const int fd = slot.fd.exchange(-1, std::memory_order_acq_rel);
        slot.written.store(0, std::memory_order_relaxed);
        if (fd < 0) continue;
        (void)shared_.epoll.remove(fd);
        ::close(fd);
        ++closed;
    }
    return closed;
}

}  // namespace evfly::detail
