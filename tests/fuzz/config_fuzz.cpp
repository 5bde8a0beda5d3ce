// libFuzzer target over config parsing and validation (tests/run fuzz; see config_check.h).
#include <cstddef>
#include <cstdint>

#include "config_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    evfly::test::check_config_input(data, size);
    return 0;
}
