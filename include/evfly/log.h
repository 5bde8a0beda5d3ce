// evfly's structured logging on top of spdlog.
//
// A log line is a message plus typed fields (producer, fd, value, latency_us, ...). They travel
// through one async spdlog logger, whose hot-path calls never block: when the queue is full the
// oldest line is dropped and counted (dropped()). Three renderings share one encoding:
//   json     one JSON object per line: ts (RFC 3339 UTC, microseconds), level, thread, msg, fields;
//            valid JSON for any input (control characters escaped, invalid UTF-8 replaced);
//   text     "ts level [thread] msg key=value ...";
//   journald one journal entry per line: MESSAGE (the text line without timestamp, level and
//            thread, so `journalctl -u evfly` shows the numbers), PRIORITY,
//            SYSLOG_IDENTIFIER=evflyd, and every field as EVFLY_<KEY>.
//
// Threading: everything here is safe from any thread once setup() has returned; setup() and
// shutdown() run on the supervisor thread.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "evfly/config.h"

namespace evfly::log {

enum class Level { trace, debug, info, warn, err, critical, off };

// One field of a log line. Keeps views: the values must outlive the emit() call.
class Field {
  public:
    enum class Type : char { string = 's', number = 'n', boolean = 'b' };
    Field(std::string_view key, std::string_view value)
        : key_(key), text_(value), type_(Type::string) {}
    Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
    Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
    Field(std::string_view key, bool value)
        : key_(key), text_(value ? "true" : "false"), type_(Type::boolean) {}
    template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, char>) Field(std::string_view key, T value)
        : key_(key), number_(std::to_string(value)), type_(Type::number) {}
    Field(std::string_view key, double value);

    [[nodiscard]] std::string_view key() const noexcept { return key_; }
    [[nodiscard]] std::string_view text() const noexcept {
        return type_ == Type::number ? std::string_view(number_) : text_;
    }
    [[nodiscard]] Type type() const noexcept { return type_; }

  private:
    std::string_view key_;
    std::string_view text_;
    std::string number_;
    Type type_;
};

// The [log] table of the config: level, format, sink and file.
using Settings = Config::Log;

// Creates the async logger and its sink. Throws std::system_error when the file sink cannot be
// opened. Until setup() runs, emit() writes nothing.
void setup(const Settings& settings);
// Applies new settings to the running logger (supervisor thread): a new sink, format or level.
// Lines still queued when the sink changes are written to the new one. Throws
// std::system_error, with nothing changed, when a new log file cannot be opened. Returns true
// when anything changed.
bool reconfigure(const Settings& settings);
// Flushes and stops the logger thread; the last logging call of the process.
void shutdown();

void emit(Level level, std::string_view msg, std::initializer_list<Field> fields = {});
[[nodiscard]] bool enabled(Level level) noexcept;
// Reopens the log file (after logrotate moved it); false when the sink is not a file.
// Throws std::exception when the file cannot be opened again; the old one is closed by then.
bool reopen();
// Lines dropped because the queue was full, and sink write failures, since setup().
[[nodiscard]] std::uint64_t dropped() noexcept;
[[nodiscard]] std::uint64_t sink_errors() noexcept;

// Names the calling thread for logs and for the kernel (top -H shows the first 15 bytes).
void set_thread_name(const std::string& name);

// The payload of one line: the message and its fields, encoded in one string (what the
// formatters in log_format.h render).
std::string encode(std::string_view msg, std::initializer_list<Field> fields);
// Appends `text` to `out` as the inside of a JSON string.
void json_escape(std::string_view text, std::string& out);
const char* level_name(Level level) noexcept;
// Parses a config level name (trace|debug|info|warn|error|critical|off).
Level parse_level(std::string_view name);

}  // namespace evfly::log
