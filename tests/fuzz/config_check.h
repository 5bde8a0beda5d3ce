// The property the config fuzzer checks, shared with the unit test that replays its regression
// corpus: for any bytes, parse_config() either returns a config or throws ConfigError with at
// least one issue naming the file; a config it accepts prints (--print-config) to TOML that
// parses back to the same config. Anything else (another exception, a crash, a hang, a leak)
// is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "evfly/config.h"

namespace evfly::test {

inline void check_config_input(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    Config config;
    try {
        config = parse_config(text, "fuzz.toml");
    } catch (const ConfigError& e) {
        if (e.issues().empty()) std::abort();
        for (const auto& issue : e.issues())
            if (issue.file != "fuzz.toml" || issue.message.empty()) std::abort();
        return;
    }
    // Accepted: what --print-config shows must be accepted again, unchanged.
    Config again = parse_config(to_toml(config), "fuzz.toml");
    if (!(again == config)) std::abort();
}

}  // namespace evfly::test
