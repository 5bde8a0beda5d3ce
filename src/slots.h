// The slot registry, the engine's central concurrency object: a slot is one registration in the
// shared epoll (an fd plus what a consumer needs to consume it), named in epoll_event.data by a
// token of slot index and generation.
//
// Who may touch what:
// - A slot's fd belongs to the consumer that epoll handed its event to, until that consumer
//   re-arms it (persistent, timer) or closes it (per-event): EPOLLONESHOT makes that one
//   consumer. Producers retire persistent and timer slots under the slot's mutex, which
//   consumers hold while handling them.
// - The generation only ever grows; it is bumped (with release) whenever a registration ends, so
//   an event that arrives for an ended registration is recognised as stale, whatever the slot
//   holds by then.
// - The table hands slots out from a free list and reuses them once their producer is gone and
//   every fd it registered is closed.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "counter.h"
#include "evfly/config.h"
#include "thread_annotations.h"
#include "work.h"

namespace evfly::detail {

// A registration's token, in epoll_event.data: the slot's index in the low 25 bits (16M slots,
// and two more values for the stop and retire eventfds) and the low 39 bits of the slot's
// generation above them. Generations are 64-bit and only grow, so a token stays stale until the
// slot's generation has gone round 2^39 times: about six days of one slot reused a million times
// a second, far beyond the life of any event in hand.
inline constexpr int kIndexBits = 25;
inline constexpr std::uint64_t kIndexMask = (std::uint64_t{1} << kIndexBits) - 1;
inline constexpr std::uint64_t kTokenGenerationMask = (std::uint64_t{1} << (64 - kIndexBits)) - 1;
inline constexpr auto kStopIndex = static_cast<std::uint32_t>(kIndexMask);
inline constexpr auto kRetireIndex = static_cast<std::uint32_t>(kIndexMask - 1);
static_assert(kMaxSlots <= kRetireIndex, "slot indices must not reach the special tokens");

inline std::uint64_t make_token(std::uint32_t index, std::uint64_t generation) noexcept {
    return ((generation & kTokenGenerationMask) << kIndexBits) | index;
}
inline std::uint32_t token_index(std::uint64_t token) noexcept {
    return static_cast<std::uint32_t>(token & kIndexMask);
}
// The generation as a token carries it (its low 39 bits).
inline std::uint64_t token_generation(std::uint64_t token) noexcept { return token >> kIndexBits; }
// Whether a slot whose generation is `slot_generation` still holds the registration a token of
// generation `token_gen` names.
inline bool same_generation(std::uint64_t slot_generation, std::uint64_t token_gen) noexcept {
    return (slot_generation & kTokenGenerationMask) == token_gen;
}

enum class SlotMode : std::uint8_t { per_event, persistent, semaphore, timer };

// One fire's stamps: when it was due and written (steady ns), and the CPU it was fired on.
struct FireStamp {
    std::int64_t due = 0;
    std::int64_t written = 0;
    std::int32_t cpu = -1;
};

// What a consumer's handler needs of a producer: small and trivially copyable, so that a consumer
// can copy it while it holds a slot and serve the event after letting go (semaphore units),
// whatever becomes of the producer meanwhile.
struct Handler {
    static constexpr std::size_t kMaxName = 32;  // config names are 1..32 characters
    // What every event reads first, so that it shares the cache line of the SlotPool's head; the
    // name, read only to log, comes after.
    ProducerKind kind = ProducerKind::eventfd;
    Work work;  // modelled handler cost
    std::array<char, kMaxName + 1> name{};

    static Handler of(const ProducerConfig& p) noexcept;
    [[nodiscard]] std::string_view producer() const noexcept { return name.data(); }
};

// What a consumer needs of a slot's producer, and no more: its config, what its handler needs,
// and a way to hand per-event slots back once their fds are closed.
struct Slot;

class SlotPool {
  public:
    explicit SlotPool(const ProducerConfig& config)
        : config_(config), handler_(Handler::of(config)) {}
    virtual ~SlotPool() = default;
    SlotPool(const SlotPool&) = delete;
    SlotPool& operator=(const SlotPool&) = delete;
    [[nodiscard]] const ProducerConfig& config() const noexcept { return config_; }
    [[nodiscard]] const Handler& handler() const noexcept { return handler_; }
    // Called by a consumer when it has closed per-event fds of this pool: once per epoll_wait
    // batch, with every slot of this pool the batch closed. Safe from any thread.
    virtual void release_slots(const std::uint32_t* indices, std::size_t count) = 0;
    // Semaphore slots: the stamps of the oldest unit not yet read, taken by the consumer that
    // read one unit of `slot`; false when there is none. Safe from any thread.
    virtual bool take_unit(Slot& slot, FireStamp& unit) = 0;

  protected:
    const ProducerConfig& config_;
    const Handler handler_;
};
// What consumers read of a producer fits two cache lines that nothing writes
// once the producer runs (see ProducerThread): read-shared, they stay in every CPU's cache.
static_assert(sizeof(SlotPool) <= 128);
// ... and what every event reads of it, the first: the vtable, the config, the kind and the work.
static_assert(sizeof(void*) * 2 + offsetof(Handler, name) <= 64);

struct alignas(64) Slot {
    std::atomic<std::uint64_t> generation{0};
    std::atomic<int> fd{-1};
    // When the event was due (steady ns): per-event: the time the schedule called for this fire
    // (flat out: the write time); persistent: the due time of the oldest unread fire, 0 if none;
    // timer: the tick the next read's first expiration is due at (ns on the timer's clock), 0
    // once a one-shot timer has been read.
    std::atomic<std::int64_t> stamp{0};
    // When the producer wrote (steady ns), for the write -> consume (delivery) part and the age
    // of what is in flight: per-event: stored last before the write, with release, and zeroed by
    // the consumer once read (0: nothing in flight); persistent: the write of the oldest unread
    // fire (meaningful while stamp != 0).
    std::atomic<std::int64_t> written{0};
    // The CPU the producer fired on (sched_getcpu), for the same-CPU / cross-CPU split; stored
    // with the stamps, before the store that publishes them (-1: unknown).
    std::atomic<std::int32_t> fire_cpu{-1};
    // What consumers read through this slot (timer: expirations), and timer overruns; written by
    // whichever consumer holds the registration.
    Counter value_read;
    Counter overruns;
    Counter clock_jumps;  // timer: reads that failed with ECANCELED (the wall clock was set)
    std::mutex mutex;     // persistent and timer slots: consumer vs retire

    // Set when the slot is given to a producer thread, published by a generation bump.
    std::atomic<SlotPool*> owner{nullptr};
    std::atomic<SlotMode> mode{SlotMode::per_event};
};

// Slots in fixed chunks that never move, so consumers index them without a lock while the
// supervisor adds chunks. Allocation and release are the supervisor's alone.
class SlotTable {
  public:
    static constexpr std::uint32_t kChunkBits = 10;
    static constexpr std::uint32_t kChunkSize = 1u << kChunkBits;
    static constexpr std::uint32_t kMaxChunks = kMaxSlots / kChunkSize;

    SlotTable();
    Slot& operator[](std::uint32_t index) const noexcept {
        return chunks_[index >> kChunkBits].load(
            std::memory_order_acquire)[index & (kChunkSize - 1)];
    }
    // `count` slots, reused ones first; throws std::length_error when the table is full. Safe
    // from any thread: per-event producers grow their share as their fds in flight grow.
    std::vector<std::uint32_t> allocate(std::uint32_t count) EXCLUDES(mutex_);
    // Throws std::length_error unless `count` more slots could be allocated now.
    void check_room(std::uint64_t count) const EXCLUDES(mutex_);
    void release(std::span<const std::uint32_t> indices) EXCLUDES(mutex_);
    [[nodiscard]] std::uint64_t available() const EXCLUDES(mutex_);

  private:
    std::unique_ptr<std::atomic<Slot*>[]> chunks_;
    mutable Mutex mutex_;
    std::vector<std::unique_ptr<Slot[]>> owned_ GUARDED_BY(mutex_);
    std::vector<std::uint32_t> free_ GUARDED_BY(mutex_);
    std::uint32_t used_ GUARDED_BY(mutex_) = 0;  // slots ever handed out from fresh chunks
};

}  // namespace evfly::detail
