#include "evfly/duration.h"

#include <gtest/gtest.h>

using evfly::format_duration;
using evfly::Nanos;
using evfly::parse_duration;
using namespace std::chrono_literals;

TEST(Duration, ParsesEveryUnit) {
    EXPECT_EQ(parse_duration("7ns"), Nanos(7));
    EXPECT_EQ(parse_duration("250us"), 250us);
    EXPECT_EQ(parse_duration("250ms"), 250ms);
    EXPECT_EQ(parse_duration("3s"), 3s);
    EXPECT_EQ(parse_duration("2m"), 2min);
    EXPECT_EQ(parse_duration("1h"), 1h);
    EXPECT_EQ(parse_duration("0s"), Nanos(0));
}

TEST(Duration, ParsesExactFractions) {
    EXPECT_EQ(parse_duration("1.5s"), 1500ms);
    EXPECT_EQ(parse_duration("0.001ms"), 1us);
    EXPECT_EQ(parse_duration("1.000000001s"), Nanos(1'000'000'001));
    EXPECT_EQ(parse_duration("0.5m"), 30s);
}

TEST(Duration, RejectsBadInputWithAReason) {
    for (const char* bad :
         {"", "s", "10", "-1s", "1.s", "1.5ns", "10 s", "3x", "1e3s", "1.0000000001s", " 1s"}) {
        std::string why;
        EXPECT_FALSE(parse_duration(bad, &why)) << bad;
        EXPECT_NE(why.find("bad duration"), std::string::npos) << bad << ": " << why;
    }
}

TEST(Duration, RejectsOverflowInsteadOfWrapping) {
    std::string why;
    EXPECT_EQ(parse_duration("9223372036854775807ns"), Nanos(INT64_MAX));
    EXPECT_FALSE(parse_duration("9223372036854775808ns", &why));
    EXPECT_NE(why.find("too large"), std::string::npos);
    EXPECT_FALSE(parse_duration("2562048h", &why));  // 2562048 h > 2^63 ns
    EXPECT_FALSE(parse_duration("99999999999999999999999s", &why));
}

TEST(Duration, FormatsInTheLargestExactUnitAndRoundTrips) {
    EXPECT_EQ(format_duration(0s), "0s");
    EXPECT_EQ(format_duration(3s), "3s");
    EXPECT_EQ(format_duration(1500ms), "1500ms");
    EXPECT_EQ(format_duration(2h), "2h");
    EXPECT_EQ(format_duration(Nanos(1'000'000'001)), "1000000001ns");
    for (const Nanos d :
         {Nanos(1), Nanos(999), Nanos(1'000'000), Nanos(60'000'000'000), Nanos(123'456'789)}) {
        EXPECT_EQ(parse_duration(format_duration(d)), d);
    }
}
