// Internal header: evfly's config schema, checked over a parsed TOML document
// (config_validate.cpp), and the parsing around it (config_load.cpp).
#pragma once

#include <string>
#include <toml.hpp>

#include "evfly/config.h"

namespace evfly::detail {

// Every key of `root` checked against evfly's schema and the host; throws ConfigError with every
// problem found.
Config validate_config(const toml::value& root, const std::string& file);

}  // namespace evfly::detail
