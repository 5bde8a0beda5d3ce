// Reading a config: the file (a regular file of bounded size), its text (UTF-8, not empty), the
// TOML parse, then the schema; and the embedded default, which is config/evfly.toml compiled in.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <toml.hpp>

#include "config_schema.h"
#include "evfly/config.h"
#include "evfly/fd.h"
#include "utf8.h"

namespace evfly {
namespace {

ConfigIssue file_issue(const std::string& file, std::string message) {
    return ConfigIssue{file, 0, "", std::move(message)};
}

}  // namespace

std::string ConfigIssue::to_string() const {
    std::string out = file;
    if (line != 0) out += ":" + std::to_string(line);
    out += ": ";
    if (!key.empty()) out += "key '" + key + "': ";
    return out + message;
}

namespace {
std::string summarize(const std::vector<ConfigIssue>& issues) {
    std::string out;
    for (const auto& issue : issues) out += (out.empty() ? "" : "\n") + issue.to_string();
    return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : std::runtime_error(summarize(issues)), issues_(std::move(issues)) {}

namespace {

// The offset of the first byte that is not part of well-formed UTF-8, or npos. TOML files must
// be UTF-8, and toml11 3.7 reads past the end of its buffer on a multi-byte sequence cut short
// by the end of the input (found by tests/fuzz), so nothing else reaches it.
std::size_t first_invalid_utf8(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t len = detail::utf8_sequence_length(text, i);
        if (len == 0) return i;
        i += len;
    }
    return std::string_view::npos;
}

}  // namespace

Config parse_config(const std::string& text, const std::string& name) {
    // An empty file is far more often a truncated write (a full disk, an interrupted deploy)
    // than a wish to run nothing, and reloading one would remove every producer.
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
        throw ConfigError({ConfigIssue{
            name, 1, "",
            text.empty() ? "is empty; a config with no producer says so with at least a table "
                           "header, e.g. [daemon]"
                         : "holds only whitespace; a config with no producer says so with at "
                           "least a table header, e.g. [daemon]"}});
    }
    if (const std::size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
        const auto before = std::string_view(text).substr(0, bad);
        const auto line =
            static_cast<std::uint32_t>(1 + std::count(before.begin(), before.end(), '\n'));
        const std::size_t column =
            bad - (before.rfind('\n') == std::string_view::npos ? 0 : before.rfind('\n') + 1) + 1;
        char byte[8];
        std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(text[bad]));
        throw ConfigError(
            {ConfigIssue{name, line, "",
                         std::string("not UTF-8: byte ") + byte + " at column " +
                             std::to_string(column) + " (a TOML file must be UTF-8)"}});
    }
    toml::value root;
    try {
        std::istringstream stream(text);
        root = toml::parse(stream, name);
    } catch (const toml::syntax_error& e) {
        // toml11's own message spans several lines with a source excerpt; keep its first line
        // (the reason) and take the line number from the location it reports.
        std::string what = e.what();
        std::string reason = what.substr(0, what.find('\n'));
        if (reason.rfind("[error] ", 0) == 0) reason.erase(0, 8);
        const auto line = static_cast<std::uint32_t>(e.location().line());
        throw ConfigError({ConfigIssue{name, line, "", "TOML syntax error: " + reason}});
    } catch (const std::exception& e) {
        throw ConfigError({file_issue(name, std::string("cannot parse: ") + e.what())});
    }
    return detail::validate_config(root, name);
}

Config load_config(const std::filesystem::path& path) {
    const std::string name = path.string();
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
    Fd fd(::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd)
        throw ConfigError({file_issue(name, std::string("cannot open: ") + errno_text(errno))});
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        throw ConfigError({file_issue(name, std::string("cannot stat: ") + errno_text(errno))});
    }
    if (S_ISDIR(st.st_mode)) throw ConfigError({file_issue(name, "is a directory, not a file")});
    if (!S_ISREG(st.st_mode)) throw ConfigError({file_issue(name, "is not a regular file")});
    if (static_cast<std::size_t>(st.st_size) > kMaxConfigBytes) {
        throw ConfigError({file_issue(name, "is " + std::to_string(st.st_size) +
                                                " bytes; a config may be at most " +
                                                std::to_string(kMaxConfigBytes) + " bytes")});
    }
    std::string text;
    char buffer[16384];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw ConfigError({file_issue(name, std::string("cannot read: ") + errno_text(errno))});
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > kMaxConfigBytes) {
            throw ConfigError({file_issue(
                name, "grew past " + std::to_string(kMaxConfigBytes) + " bytes while being read")});
        }
    }
    return parse_config(text, name);
}

}  // namespace evfly
