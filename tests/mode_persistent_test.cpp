// The persistent mode's stamp protocol, both halves, with the interleavings a real producer and
// consumer can make played out in order on one thread: a fire before, during and after the
// consumer's read. Whenever a value is unread, the slot holds a stamp, and a stamp is never that
// of a fire younger than the oldest one a read took.
#include "mode_persistent.h"

#include <gtest/gtest.h>

using evfly::detail::Slot;
using evfly::detail::persistent::stamp_fire;
using evfly::detail::persistent::take_and_read;

namespace {

// A persistent eventfd's counter and the slot beside it.
struct Model {
    Slot slot;
    std::uint64_t counter = 0;
    std::uint64_t written = 0;
    std::uint64_t read = 0;

    void fire(std::int64_t due) {
        stamp_fire(slot, due, due + 1, 0);
        ++counter;
        ++written;
    }
    // A read; `meanwhile` runs between the stamp's exchange and the read syscall.
    template <typename F>
    evfly::detail::persistent::Taken consume(F meanwhile) {
        return take_and_read(slot, [&] {
            meanwhile();
            const std::uint64_t v = counter;
            counter = 0;
            read += v;
            return v;
        });
    }
    [[nodiscard]] bool unread_is_stamped() const {
        return written == read || slot.stamp.load() != 0;
    }
};

}  // namespace

TEST(PersistentStamp, TheOldestUnreadFireHoldsTheStamp) {
    Model m;
    m.fire(100);
    m.fire(200);  // finds the stamp taken: coalesces
    EXPECT_EQ(m.slot.stamp.load(), 100);
    const auto t = m.consume([] {});
    EXPECT_EQ(t.value, 2u);
    EXPECT_EQ(t.due, 100);
    EXPECT_EQ(t.written, 101);
    EXPECT_EQ(m.slot.stamp.load(), 0);
    EXPECT_TRUE(m.unread_is_stamped());
}

// A fire that lands after the read syscall but before the consumer is done with the slot finds
// the stamp free (it was taken before the read) and stamps itself: its value is never unread and
// unstamped. Taking the stamp after the read, as evflyd once did, the fire saw the older stamp
// still there, did not stamp, and the consumer then cleared it.
TEST(PersistentStamp, AFireAfterTheReadStampsItself) {
    Model m;
    m.fire(100);
    const auto t = take_and_read(m.slot, [&] {
        const std::uint64_t v = m.counter;  // the read syscall ...
        m.counter = 0;
        m.read += v;
        m.fire(200);  // ... then a fire, before the consumer's step ends
        return v;
    });
    EXPECT_EQ(t.value, 1u);
    EXPECT_EQ(t.due, 100);
    EXPECT_EQ(m.written - m.read, 1u);
    EXPECT_EQ(m.slot.stamp.load(), 200);
    EXPECT_TRUE(m.unread_is_stamped());
}

// A fire that lands between the stamp and the read, and is read by it, leaves its stamp behind:
// the next read counts from it, older than what it reads, so latency is only ever longer.
TEST(PersistentStamp, AFireReadWithTheStampLeavesOneThatOnlyMakesLatencyLonger) {
    Model m;
    m.fire(100);
    const auto t = m.consume([&] { m.fire(150); });
    EXPECT_EQ(t.value, 2u);
    EXPECT_EQ(t.due, 100);
    EXPECT_TRUE(m.unread_is_stamped());
    m.fire(400);
    const auto next = m.consume([] {});
    EXPECT_EQ(next.value, 1u);
    EXPECT_LE(next.due, 400);  // from 150: never a fire younger than the one read
}

TEST(PersistentStamp, NothingReadPutsTheStampBack) {
    Model m;
    m.fire(100);
    m.counter = 0;  // as if retire() had drained it meanwhile
    const auto t = m.consume([] {});
    EXPECT_EQ(t.value, 0u);
    EXPECT_EQ(t.due, 0);
    EXPECT_EQ(m.slot.stamp.load(), 100);
}
