#include "slots.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace evfly::detail {

Handler Handler::of(const ProducerConfig& p) noexcept {
    Handler h;
    p.name.copy(h.name.data(), std::min(p.name.size(), kMaxName));
    h.kind = p.kind;
    h.work = Work::of(p);
    return h;
}

SlotTable::SlotTable() : chunks_(std::make_unique<std::atomic<Slot*>[]>(kMaxChunks)) {}

std::uint64_t SlotTable::available() const {
    MutexLock lock(mutex_);
    return free_.size() + (std::uint64_t{kMaxChunks} * kChunkSize - used_);
}

namespace {

[[noreturn]] void throw_full() {
    throw std::length_error("too many producer slots (at most " + std::to_string(kMaxSlots) + ")");
}

}  // namespace

void SlotTable::check_room(std::uint64_t count) const {
    if (count > available()) throw_full();
}

std::vector<std::uint32_t> SlotTable::allocate(std::uint32_t count) {
    MutexLock lock(mutex_);
    if (count > free_.size() + (std::uint64_t{kMaxChunks} * kChunkSize - used_)) throw_full();
    std::vector<std::uint32_t> out;
    out.reserve(count);
    while (out.size() < count && !free_.empty()) {
        out.push_back(free_.back());
        free_.pop_back();
    }
    while (out.size() < count) {
        if (used_ % kChunkSize == 0) {
            owned_.push_back(std::make_unique<Slot[]>(kChunkSize));
            chunks_[used_ >> kChunkBits].store(owned_.back().get(), std::memory_order_release);
        }
        out.push_back(used_++);
    }
    return out;
}

void SlotTable::release(std::span<const std::uint32_t> indices) {
    MutexLock lock(mutex_);
    free_.insert(free_.end(), indices.begin(), indices.end());
}

}  // namespace evfly::detail
