#include "evfly/epoll.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>

#include "evfly/fd.h"

using evfly::Epoll;
using evfly::Fd;

namespace {
Fd make_eventfd() { return Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }
void fire(const Fd& fd, std::uint64_t v = 1) { ASSERT_EQ(::write(fd.get(), &v, sizeof v), 8); }
}  // namespace

TEST(Fd, ClosesExactlyOnceAndMovesOwnership) {
    const int before = evfly::count_open_fds();
    {
        Fd a = make_eventfd();
        ASSERT_TRUE(a.valid());
        EXPECT_EQ(evfly::count_open_fds(), before + 1);
        Fd b = std::move(a);
        EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): the point of the test
        EXPECT_TRUE(b.valid());
        Fd c;
        c = std::move(b);
        EXPECT_EQ(evfly::count_open_fds(), before + 1);
        c.reset(make_eventfd().release());
        EXPECT_EQ(evfly::count_open_fds(), before + 1);
    }
    EXPECT_EQ(evfly::count_open_fds(), before);
}

TEST(Epoll, OneShotReportsOnceUntilRearmedAndRearmSeesEarlierWrites) {
    const int before = evfly::count_open_fds();
    {
        Epoll ep;
        Fd efd = make_eventfd();
        ASSERT_EQ(ep.add(efd.get(), evfly::kOneShotEvents, 0xabcdef0012345678ULL), 0);
        std::array<epoll_event, 4> events{};
        EXPECT_EQ(ep.wait(events, 0), 0);
        fire(efd);
        ASSERT_EQ(ep.wait(events, 1000), 1);
        EXPECT_EQ(events[0].data.u64, 0xabcdef0012345678ULL);
        // Disabled: a second write is not reported to anyone...
        fire(efd);
        EXPECT_EQ(ep.wait(events, 0), 0);
        // ...until the owner re-arms, which reports the pending count instead of losing it.
        ASSERT_EQ(ep.rearm(efd.get(), 7), 0);
        ASSERT_EQ(ep.wait(events, 1000), 1);
        EXPECT_EQ(events[0].data.u64, 7u);
        std::uint64_t value = 0;
        ASSERT_EQ(::read(efd.get(), &value, sizeof value), 8);
        EXPECT_EQ(value, 2u);
        ASSERT_EQ(ep.remove(efd.get()), 0);
        EXPECT_EQ(ep.remove(efd.get()), ENOENT);
        EXPECT_EQ(ep.rearm(efd.get(), 7), ENOENT);
    }
    EXPECT_EQ(evfly::count_open_fds(), before);
}

TEST(Epoll, LevelTriggeredStopFdWakesEveryWaiter) {
    Epoll ep;
    Fd stop = make_eventfd();
    ASSERT_EQ(ep.add(stop.get(), EPOLLIN, 1), 0);
    fire(stop);
    std::array<epoll_event, 1> events{};
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ep.wait(events, 0), 1) << i;
}

TEST(Epoll, AddOfABadFdReturnsErrnoInsteadOfThrowing) {
    Epoll ep;
    EXPECT_EQ(ep.add(-1, EPOLLIN, 0), EBADF);
}
