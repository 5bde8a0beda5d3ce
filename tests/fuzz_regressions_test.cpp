// Replays every input the config fuzzer ever found a problem with (tests/fuzz/regressions/), and
// the seed corpus, through the property it checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "../tests/fuzz/config_check.h"

namespace {

std::vector<std::uint8_t> bytes_of(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void replay(const std::filesystem::path& dir, std::size_t* count) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
        if (!entry.is_regular_file() || entry.path().filename() == "README.md") continue;
        SCOPED_TRACE(entry.path().string());
        const auto data = bytes_of(entry.path());
        evfly::test::check_config_input(data.data(), data.size());  // aborts on a violation
        ++*count;
    }
}

}  // namespace

TEST(ConfigFuzzRegressions, EveryRecordedInputHoldsTheProperty) {
    std::size_t count = 0;
    replay(std::filesystem::path(EVFLY_SOURCE_DIR) / "tests/fuzz/regressions", &count);
    replay(std::filesystem::path(EVFLY_SOURCE_DIR) / "config", &count);
    replay(std::filesystem::path(EVFLY_SOURCE_DIR) / "tests/bench/configs", &count);
    EXPECT_GT(count, 5u);
}
