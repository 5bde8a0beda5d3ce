// Internal header of the engine: the stamp protocol of fd_mode = "persistent", both halves, apart
// from the threads that run them so that every interleaving can be tested without threads.
//
// A persistent eventfd's counter coalesces many fires; the slot keeps the stamps of one of them:
// the oldest unread fire's (due, write time, fire CPU). Only the producer stores a non-zero
// stamp, and only over a zero one, so no compare-exchange is needed on its side; it stores the
// write stamp and fire CPU before the due stamp (release). The consumer exchanges the due stamp
// for 0 (acquire) *before* it reads the counter: a fire written between the two finds the stamp
// free and stamps itself, so no unread value is ever without a stamp. Such a fire may be read by
// that same read and leave its stamp behind; the next read then counts from it, which can only
// make that latency longer, never hide one.
#pragma once

#include <cstdint>

#include "slots.h"

namespace evfly::detail::persistent {

// Producer, before the fire's write(): stamps it if no unread fire holds the stamp. A relaxed
// load first: most fires at a high rate find one unread.
inline void stamp_fire(Slot& slot, std::int64_t due, std::int64_t written, int cpu) noexcept {
    if (slot.stamp.load(std::memory_order_relaxed) != 0) return;
    slot.written.store(written, std::memory_order_relaxed);
    slot.fire_cpu.store(cpu, std::memory_order_relaxed);
    slot.stamp.store(due, std::memory_order_release);
}

// What a consumer's read took: the values, and the stamps of the oldest fire among them (due 0:
// none; then no latency sample is made).
struct Taken {
    std::uint64_t value = 0;
    std::int64_t due = 0;
    std::int64_t written = 0;
    int fire_cpu = -1;
};

// Consumer, holding the slot: takes the stamp, then reads the counter with `read` (which
// returns the values read, 0 when there were none). With nothing read, the stamp goes back,
// unless a younger fire took the free place meanwhile.
template <typename Read>
Taken take_and_read(Slot& slot, Read&& read) {
    Taken t;
    t.due = slot.stamp.exchange(0, std::memory_order_acq_rel);
    // After the exchange: a fire stamped meanwhile can only make these a younger fire's (the
    // delivery shorter).
    t.written = slot.written.load(std::memory_order_relaxed);
    t.fire_cpu = slot.fire_cpu.load(std::memory_order_relaxed);
    t.value = read();
    if (t.value == 0 && t.due != 0) {
        std::int64_t empty = 0;
        slot.stamp.compare_exchange_strong(empty, t.due, std::memory_order_release);
        t.due = 0;
    }
    return t;
}

}  // namespace evfly::detail::persistent
