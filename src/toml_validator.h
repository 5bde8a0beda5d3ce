// TomlValidator: the generic half of reading a config: checks that TOML values have the type and
// range a schema asks for, and collects every problem with its file, line and dotted key. It
// knows nothing of evfly's keys (config_validate.cpp has the schema).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <toml.hpp>
#include <utility>
#include <vector>

#include "evfly/config.h"

namespace evfly::detail {

using TomlValue = toml::value;

// "a string", "an integer", ...: for messages.
const char* type_name(toml::value_t t);
// "a|b|c".
std::string join(const std::vector<std::string>& items);

// Checks TOML values against what a schema expects (a key set, an integer in range, a string,
// one of some names, a duration in range, a table), collecting every problem with its file, line
// and dotted key; never throws. take() hands them over, in line order.
class TomlValidator {
  public:
    explicit TomlValidator(std::string file) : file_(std::move(file)) {}

    void error(std::uint32_t line, std::string key, std::string message);
    void error(const TomlValue& v, std::string key, std::string message);
    static std::uint32_t line_of(const TomlValue& v);
    // Every key of `table` not in `allowed` is an error ("unknown key", with the known ones).
    void check_keys(const TomlValue& table, const std::string& prefix,
                    const std::set<std::string>& allowed);
    // The value of `key` in `table`, or nullptr.
    const TomlValue* find(const TomlValue& table, const std::string& key);

    // Each check below does nothing when the key is absent, records an error when its value is
    // not what is asked, and sets `out` only when it is.
    template <typename T>
    void integer(const TomlValue& table, const std::string& prefix, const std::string& key, T& out,
                 std::int64_t min, std::int64_t max) {
        const TomlValue* v = find(table, key);
        if (v == nullptr) return;
        if (!v->is_integer()) {
            error(*v, prefix + key,
                  std::string("expected an integer, got ") + type_name(v->type()));
            return;
        }
        // toml11 stores integers as int64; range-check before narrowing so nothing wraps.
        const std::int64_t n = v->as_integer();
        if (n < min || n > max) {
            // toml11 3.7 turns a literal beyond 64 bits into INT64_MAX/MIN without a word, so
            // do not echo those back as if they were what the file says.
            const bool at_limit = n == std::numeric_limits<std::int64_t>::max() ||
                                  n == std::numeric_limits<std::int64_t>::min();
            error(*v, prefix + key,
                  "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                      (at_limit ? " (got a number at or beyond the 64-bit limit)"
                                : " (got " + std::to_string(n) + ")"));
            return;
        }
        out = static_cast<T>(n);
    }

    // The string at `key`, or nullptr (absent, or not a string: an error).
    const std::string* string(const TomlValue& table, const std::string& prefix,
                              const std::string& key);

    // Returns true when the key was present and valid.
    template <typename E>
    bool choice(const TomlValue& table, const std::string& prefix, const std::string& key, E& out,
                const std::vector<std::pair<std::string, E>>& options) {
        const std::string* s = string(table, prefix, key);
        if (s == nullptr) return false;
        std::vector<std::string> names;
        for (const auto& [name, value] : options) {
            if (*s == name) {
                out = value;
                return true;
            }
            names.push_back(name);
        }
        error(*find(table, key), prefix + key,
              "must be one of " + join(names) + " (got \"" + *s + "\")");
        return false;
    }

    void duration(const TomlValue& table, const std::string& prefix, const std::string& key,
                  Nanos& out, Nanos min, Nanos max);
    // A number (a float, or an integer taken as one) from `min` to `max`.
    void number(const TomlValue& table, const std::string& prefix, const std::string& key,
                double& out, double min, double max);
    // The table at `key`, or nullptr (absent, or not a table: an error).
    const TomlValue* table(const TomlValue& parent, const std::string& key);
    // Every problem found, in line order.
    std::vector<ConfigIssue> take();

  private:
    std::string file_;
    std::vector<ConfigIssue> issues_;
};

}  // namespace evfly::detail
