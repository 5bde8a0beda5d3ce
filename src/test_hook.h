// Test-only knobs from the environment (EVFLY_TEST_*), which the integration tests set to force
// faults a healthy host never shows. Each one set is logged as a warning.
#pragma once

#include <cstdint>
#include <cstdlib>

#include "evfly/log.h"

namespace evfly::detail {

// The knob's value; 0 when unset. Read before the threads that use it start (or while only the
// supervisor runs), and evflyd never sets its environment, so no setenv() races the read.
inline std::uint64_t test_hook(const char* name) {
    const char* text = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
    if (text == nullptr) return 0;
    log::emit(log::Level::warn, "test-only hook set; never in production",
              {{"variable", name}, {"value", text}});
    return std::strtoull(text, nullptr, 10);
}

}  // namespace evfly::detail
