// The slot registry on its own: the token codec, the table's allocation, reuse and limit, and
// the single-writer counter.
#include "slots.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

using evfly::detail::Counter;
using evfly::detail::make_token;
using evfly::detail::SlotTable;
using evfly::detail::token_generation;
using evfly::detail::token_index;

TEST(Slots, TokenCarriesIndexAndGenerationApart) {
    for (const std::uint32_t index :
         {0u, 1u, 1023u, 1024u, evfly::detail::kRetireIndex, evfly::detail::kStopIndex}) {
        for (const std::uint32_t generation : {0u, 1u, 0x7fffffffu, 0xffffffffu}) {
            const std::uint64_t token = make_token(index, generation);
            EXPECT_EQ(token_index(token), index);
            EXPECT_EQ(token_generation(token), generation);
        }
    }
}

// A token names one registration of a slot: once the slot's generation has moved on it is
// stale, and stays stale for far longer than any event is held: 2^32 reuses of a hot slot (about
// an hour at a million events a second) must not bring an old token back to life.
TEST(Slots, ATokenStaysStaleAfterTwoToTheThirtyTwoReuses) {
    evfly::detail::Slot slot;
    slot.generation.store(12345);
    const std::uint64_t token = make_token(7, slot.generation.load());
    EXPECT_TRUE(evfly::detail::same_generation(slot.generation.load(), token_generation(token)));
    slot.generation.store(slot.generation.load() + 1);
    EXPECT_FALSE(evfly::detail::same_generation(slot.generation.load(), token_generation(token)));
    slot.generation.store(12345 + (std::uint64_t{1} << 32));
    EXPECT_FALSE(evfly::detail::same_generation(slot.generation.load(), token_generation(token)));
    slot.generation.store(12345 + (std::uint64_t{1} << 38));
    EXPECT_FALSE(evfly::detail::same_generation(slot.generation.load(), token_generation(token)));
    EXPECT_EQ(token_index(token), 7u);
}

TEST(Slots, TableHandsOutDistinctSlotsAcrossChunksAndReusesReleasedOnes) {
    SlotTable table;
    const std::uint64_t capacity = table.available();
    EXPECT_EQ(capacity, std::uint64_t{SlotTable::kMaxChunks} * SlotTable::kChunkSize);
    const auto first = table.allocate(SlotTable::kChunkSize + 10);  // two chunks
    std::set<std::uint32_t> seen(first.begin(), first.end());
    EXPECT_EQ(seen.size(), first.size());
    EXPECT_EQ(table.available(), capacity - first.size());
    // Every slot is addressable and starts empty.
    for (const std::uint32_t i : first) {
        EXPECT_EQ(table[i].fd.load(), -1);
        EXPECT_EQ(table[i].generation.load(), 0u);
    }
    // Released slots come back first.
    const std::vector<std::uint32_t> some(first.begin(), first.begin() + 5);
    table.release(some);
    auto again = table.allocate(5);
    std::sort(again.begin(), again.end());
    auto expected = some;
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(again, expected);
    EXPECT_EQ(table.available(), capacity - first.size());
}

TEST(Slots, TableRefusesMoreThanItHoldsAndChangesNothing) {
    SlotTable table;
    const std::uint64_t capacity = table.available();
    EXPECT_THROW((void)table.allocate(static_cast<std::uint32_t>(capacity + 1)), std::length_error);
    EXPECT_EQ(table.available(), capacity);
}

TEST(Slots, CounterHasOneWriterAndAnyReaders) {
    Counter c;
    std::atomic<bool> done{false};
    std::uint64_t last = 0;
    bool monotonic = true;
    std::thread reader([&] {
        while (!done.load()) {
            const std::uint64_t v = c.get();
            monotonic = monotonic && v >= last;
            last = v;
        }
    });
    for (int i = 0; i < 100'000; ++i) c.add();
    done = true;
    reader.join();
    EXPECT_TRUE(monotonic);
    EXPECT_EQ(c.get(), 100'000u);
    c.sub(40'000);
    EXPECT_EQ(c.get(), 60'000u);
    c.reset();
    EXPECT_EQ(c.get(), 0u);
}
