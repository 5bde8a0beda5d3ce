// Failures told once per episode: time is given by the test.
#include "episode.h"

#include <gtest/gtest.h>

using evfly::detail::Episode;

namespace {
constexpr std::int64_t kSecond = 1'000'000'000;
}  // namespace

TEST(Episode, FailuresLessThanTheGapApartAreOneEpisode) {
    Episode e(kSecond);
    EXPECT_FALSE(e.active());
    EXPECT_TRUE(e.fail(0));  // the first failure begins an episode: tell it
    for (std::int64_t t = 1; t <= 100; ++t) EXPECT_FALSE(e.fail(t * kSecond / 200));
    EXPECT_TRUE(e.active());
    // Successes within the gap of the last failure do not end it.
    EXPECT_EQ(e.succeed(kSecond / 2 + 1), 0u);
    // The first success after a quiet gap ends it, with the failures it counted.
    EXPECT_EQ(e.succeed(2 * kSecond), 101u);
    EXPECT_FALSE(e.active());
    EXPECT_EQ(e.succeed(3 * kSecond), 0u);
}

TEST(Episode, AFailureAfterAQuietGapBeginsANewEpisode) {
    Episode e(kSecond);
    EXPECT_TRUE(e.fail(0));
    EXPECT_TRUE(e.fail(2 * kSecond));  // no success in between, but a quiet gap
    EXPECT_EQ(e.succeed(4 * kSecond), 2u);
    EXPECT_TRUE(e.fail(5 * kSecond));
    EXPECT_EQ(e.succeed(7 * kSecond), 1u);
}
