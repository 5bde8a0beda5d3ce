// How a log line looks: the payload encoding (a message and typed fields in one string), the
// JSON and text formatters, the journal entry, and the names of the threads lines come from.
#include "log_format.h"

#include <pthread.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <unordered_map>

#include "utf8.h"

namespace evfly::log {
namespace {

constexpr char kFieldSep = '\x1f';
constexpr char kValueSep = '\x1e';

// Thread names by kernel thread id, so the logger thread can name the thread a line came from.
std::mutex g_names_mutex;
std::unordered_map<std::size_t, std::string> g_names;  // guarded by g_names_mutex

}  // namespace

std::string thread_name(std::size_t tid) {
    std::lock_guard lock(g_names_mutex);
    const auto it = g_names.find(tid);
    return it != g_names.end() ? it->second : "thread-" + std::to_string(tid);
}

void register_thread_name(std::size_t tid, const std::string& name) {
    std::lock_guard lock(g_names_mutex);
    g_names[tid] = name;
}

namespace {

// Walks an encoded payload: calls on_field(key, type, value) for each field, returns the message.
template <typename F>
std::string_view decode(std::string_view payload, F&& on_field) {
    std::size_t end = payload.find(kFieldSep);
    const std::string_view msg = payload.substr(0, end);
    while (end != std::string_view::npos) {
        const std::size_t start = end + 1;
        end = payload.find(kFieldSep, start);
        const std::string_view field =
            payload.substr(start, end == std::string_view::npos ? end : end - start);
        const std::size_t sep = field.find(kValueSep);
        if (sep == std::string_view::npos || sep + 1 >= field.size()) continue;
        on_field(field.substr(0, sep), static_cast<Field::Type>(field[sep + 1]),
                 field.substr(sep + 2));
    }
    return msg;
}

void append_timestamp(const spdlog::log_clock::time_point& time, std::string& out) {
    const auto since_epoch = time.time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - secs);
    const std::time_t t = secs.count();
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                tm.tm_sec, static_cast<long>(micros.count()));
    out.append(buf, static_cast<std::size_t>(n));
}

class JsonFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string line;
        line.reserve(256);
        line += "{\"ts\":\"";
        append_timestamp(msg.time, line);
        line += "\",\"level\":\"";
        line += level_name(static_cast<Level>(msg.level));
        line += "\",\"thread\":\"";
        json_escape(thread_name(msg.thread_id), line);
        line += "\",\"msg\":\"";
        std::string fields;
        const std::string_view text = decode(
            payload_of(msg), [&](std::string_view key, Field::Type type, std::string_view value) {
                fields += ",\"";
                json_escape(key, fields);
                fields += "\":";
                if (type == Field::Type::string) {
                    fields += '"';
                    json_escape(value, fields);
                    fields += '"';
                } else {
                    fields += value;  // numbers and booleans were rendered as JSON by Field
                }
            });
        json_escape(text, line);
        line += '"';
        line += fields;
        line += "}\n";
        dest.append(line.data(), line.data() + line.size());
    }
    [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }
};

// "msg key=value ...": the text format without timestamp, level and thread, which is also the
// journal's MESSAGE. Strings with blanks, quotes or '=' are quoted and escaped.
std::string text_line(std::string_view payload) {
    std::string fields;
    const std::string_view text =
        decode(payload, [&](std::string_view key, Field::Type type, std::string_view value) {
            fields += ' ';
            fields += key;
            fields += '=';
            const bool quote =
                type == Field::Type::string &&
                (value.empty() || value.find_first_of(" \"=\t\n") != std::string_view::npos);
            if (quote) {
                fields += '"';
                json_escape(value, fields);
                fields += '"';
            } else {
                fields += value;
            }
        });
    std::string line;
    line.reserve(text.size() + fields.size());
    for (const char c : text) line += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
    line += fields;
    return line;
}

class TextFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string line;
        line.reserve(160);
        append_timestamp(msg.time, line);
        line += ' ';
        line += level_name(static_cast<Level>(msg.level));
        line += " [";
        line += thread_name(msg.thread_id);
        line += "] ";
        line += text_line(payload_of(msg));
        line += '\n';
        dest.append(line.data(), line.data() + line.size());
    }
    [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<TextFormatter>();
    }
};

int syslog_priority(Level level) {
    switch (level) {
        case Level::trace:
        case Level::debug:
            return 7;
        case Level::info:
            return 6;
        case Level::warn:
            return 4;
        case Level::err:
            return 3;
        case Level::critical:
            return 2;
        default:
            return 6;
    }
}

}  // namespace

Field::Field(std::string_view key, double value) : key_(key), type_(Type::number) {
    if (std::isfinite(value)) {
        char buf[32];
        const int n = std::snprintf(buf, sizeof buf, "%.3f", value);
        number_.assign(buf, static_cast<std::size_t>(n));
    } else {
        number_ = "null";
    }
}

std::vector<std::string> journal_entry(Level level, std::string_view thread,
                                       std::string_view payload) {
    std::vector<std::string> items;
    items.reserve(8);
    items.push_back("MESSAGE=" + text_line(payload));
    items.push_back("PRIORITY=" + std::to_string(syslog_priority(level)));
    items.emplace_back("SYSLOG_IDENTIFIER=evflyd");
    items.push_back("EVFLY_THREAD=" + std::string(thread));
    decode(payload, [&](std::string_view key, Field::Type, std::string_view value) {
        std::string item = "EVFLY_";
        for (const char c : key)
            item += static_cast<char>(std::isalnum(static_cast<unsigned char>(c))
                                          ? std::toupper(static_cast<unsigned char>(c))
                                          : '_');
        item += '=';
        item += value;
        items.push_back(std::move(item));
    });
    return items;
}

void json_escape(std::string_view text, std::string& out) {
    static constexpr char kHex[] = "0123456789abcdef";
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    for (std::size_t i = 0; i < n;) {
        const unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                default:
                    out += "\\u00";
                    out += kHex[c >> 4];
                    out += kHex[c & 0xf];
            }
            ++i;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
        } else {
            // Copy a well-formed UTF-8 sequence; replace anything else with U+FFFD so that
            // strict JSON parsers accept every line.
            const std::size_t len = detail::utf8_sequence_length(text, i);
            const bool ok = len != 0;
            if (ok) {
                out.append(text.data() + i, len);
                i += len;
            } else {
                out += "\\ufffd";
                ++i;
            }
        }
    }
}

const char* level_name(Level level) noexcept {
    switch (level) {
        case Level::trace:
            return "trace";
        case Level::debug:
            return "debug";
        case Level::info:
            return "info";
        case Level::warn:
            return "warn";
        case Level::err:
            return "error";
        case Level::critical:
            return "critical";
        default:
            return "off";
    }
}

Level parse_level(std::string_view name) {
    for (int i = 0; i <= static_cast<int>(Level::off); ++i) {
        if (name == level_name(static_cast<Level>(i))) return static_cast<Level>(i);
    }
    return Level::info;
}

std::string encode(std::string_view msg, std::initializer_list<Field> fields) {
    std::string out;
    out.reserve(msg.size() + fields.size() * 24);
    // The separators are control characters; a stray one inside a value would split it.
    const auto append_clean = [&out](std::string_view text) {
        for (const char c : text) out += (c == kFieldSep || c == kValueSep) ? '?' : c;
    };
    append_clean(msg);
    for (const Field& f : fields) {
        out += kFieldSep;
        append_clean(f.key());
        out += kValueSep;
        out += static_cast<char>(f.type());
        append_clean(f.text());
    }
    return out;
}

std::string_view payload_of(const spdlog::details::log_msg& msg) {
    return {msg.payload.data(), msg.payload.size()};
}

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format) {
    if (format == LogFormat::text) return std::make_unique<TextFormatter>();
    return std::make_unique<JsonFormatter>();
}

}  // namespace evfly::log
