#include "toml_validator.h"

#include <cstdio>

namespace evfly::detail {

const char* type_name(toml::value_t t) {
    switch (t) {
        case toml::value_t::boolean:
            return "a boolean";
        case toml::value_t::integer:
            return "an integer";
        case toml::value_t::floating:
            return "a float";
        case toml::value_t::string:
            return "a string";
        case toml::value_t::offset_datetime:
        case toml::value_t::local_datetime:
        case toml::value_t::local_date:
        case toml::value_t::local_time:
            return "a date/time";
        case toml::value_t::array:
            return "an array";
        case toml::value_t::table:
            return "a table";
        default:
            return "nothing";
    }
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : "|") + item;
    return out;
}

void TomlValidator::error(std::uint32_t line, std::string key, std::string message) {
    issues_.push_back({file_, line, std::move(key), std::move(message)});
}
void TomlValidator::error(const TomlValue& v, std::string key, std::string message) {
    error(line_of(v), std::move(key), std::move(message));
}
std::uint32_t TomlValidator::line_of(const TomlValue& v) {
    return static_cast<std::uint32_t>(v.location().line());
}

void TomlValidator::check_keys(const TomlValue& table, const std::string& prefix,
                               const std::set<std::string>& allowed) {
    for (const auto& [key, value] : table.as_table()) {
        if (!allowed.contains(key)) {
            std::vector<std::string> known(allowed.begin(), allowed.end());
            error(value, prefix + key, "unknown key (known: " + join(known) + ")");
        }
    }
}

const TomlValue* TomlValidator::find(const TomlValue& table, const std::string& key) {
    const auto& t = table.as_table();
    const auto it = t.find(key);
    return it == t.end() ? nullptr : &it->second;
}

const std::string* TomlValidator::string(const TomlValue& table, const std::string& prefix,
                                         const std::string& key) {
    const TomlValue* v = find(table, key);
    if (v == nullptr) return nullptr;
    if (!v->is_string()) {
        error(*v, prefix + key, std::string("expected a string, got ") + type_name(v->type()));
        return nullptr;
    }
    return &v->as_string().str;
}

void TomlValidator::duration(const TomlValue& table, const std::string& prefix,
                             const std::string& key, Nanos& out, Nanos min, Nanos max) {
    const std::string* s = string(table, prefix, key);
    if (s == nullptr) return;
    std::string why;
    const auto d = parse_duration(*s, &why);
    if (!d) {
        error(*find(table, key), prefix + key, why);
    } else if (*d < min || *d > max) {
        error(*find(table, key), prefix + key,
              "must be between " + format_duration(min) + " and " + format_duration(max) +
                  " (got \"" + *s + "\")");
    } else {
        out = *d;
    }
}

void TomlValidator::number(const TomlValue& table, const std::string& prefix,
                           const std::string& key, double& out, double min, double max) {
    const TomlValue* v = find(table, key);
    if (v == nullptr) return;
    if (!v->is_floating() && !v->is_integer()) {
        error(*v, prefix + key, std::string("expected a number, got ") + type_name(v->type()));
        return;
    }
    const double x = v->is_floating() ? v->as_floating() : static_cast<double>(v->as_integer());
    if (!(x >= min && x <= max)) {  // NaN fails too
        char text[96];
        std::snprintf(text, sizeof text, "must be between %g and %g (got %g)", min, max, x);
        error(*v, prefix + key, text);
        return;
    }
    out = x;
}

const TomlValue* TomlValidator::table(const TomlValue& parent, const std::string& key) {
    const TomlValue* v = find(parent, key);
    if (v == nullptr) return nullptr;
    if (!v->is_table()) {
        error(*v, key, std::string("expected a table, got ") + type_name(v->type()));
        return nullptr;
    }
    return v;
}

std::vector<ConfigIssue> TomlValidator::take() {
    std::stable_sort(issues_.begin(), issues_.end(),
                     [](const ConfigIssue& a, const ConfigIssue& b) { return a.line < b.line; });
    return std::move(issues_);
}

}  // namespace evfly::detail
