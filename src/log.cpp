#include "evfly/log.h"

#include <pthread.h>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/file_helper.h>
#include <spdlog/details/os.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "utf8.h"

namespace evfly::log {
namespace {

constexpr char kFieldSep = '\x1f';
constexpr char kValueSep = '\x1e';
constexpr std::size_t kQueueSize = 8192;

// Set by setup() before any other thread exists and cleared by shutdown() after they are all
// joined, so plain reads from any thread in between are safe.
std::shared_ptr<spdlog::logger> g_logger;
std::atomic<std::uint64_t> g_sink_errors{0};

// The file sink: spdlog's basic_file_sink plus reopen(), for logrotate. A line is written
// whole to the old file or to the new one, under the sink's mutex, never split or lost.
class FileSink final : public spdlog::sinks::base_sink<std::mutex> {
  public:
    explicit FileSink(const std::string& path) { file_.open(path, false); }
    // Closes the file and opens the same path again (creating it); safe from any thread.
    void reopen() {
        std::lock_guard lock(mutex_);
        open_ = false;
        file_.reopen(false);
        open_ = true;
    }

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        // After a failed reopen there is no file: fail the line (it is counted), do not crash.
        if (!open_) throw spdlog::spdlog_ex("log file closed: the last reopen failed");
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        file_.write(formatted);
    }
    void flush_() override {
        if (open_) file_.flush();
    }

  private:
    spdlog::details::file_helper file_;
    bool open_ = true;  // guarded by mutex_
};

// The logger writes to g_dist, whose one sub-sink is the configured sink: a reload swaps that
// sub-sink under g_dist's mutex, which the logger thread holds while it writes a line. The
// supervisor thread alone touches the three below.
std::shared_ptr<spdlog::sinks::dist_sink_mt> g_dist;
std::shared_ptr<FileSink> g_file_sink;  // set while the file sink is in use
Settings g_settings;

// Thread names by kernel thread id, so the logger thread can name the thread a line came from.
std::mutex g_names_mutex;
std::unordered_map<std::size_t, std::string> g_names;  // guarded by g_names_mutex

std::string thread_name(std::size_t tid) {
    std::lock_guard lock(g_names_mutex);
    const auto it = g_names.find(tid);
    return it != g_names.end() ? it->second : "thread-" + std::to_string(tid);
}

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

std::string_view payload_of(const spdlog::details::log_msg& msg) {
    return {msg.payload.data(), msg.payload.size()};
}

class JsonFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string line;
        line.reserve(256);
        line += "{\"ts\":\"";
        append_timestamp(msg.time, line);
        line += "\",\"level\":\"";
        line += level_name(msg.level);
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
        line += level_name(msg.level);
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

// Sends each line to the journal: MESSAGE is the line as the text format shows it (what
// `journalctl -u evfly` prints), and every field is also its own EVFLY_* journal field.
class JournaldSink final : public spdlog::sinks::base_sink<std::mutex> {
  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        const std::vector<std::string> items =
            journal_entry(msg.level, thread_name(msg.thread_id), payload_of(msg));
        std::vector<iovec> iov(items.size());
        for (std::size_t i = 0; i < items.size(); ++i)
            iov[i] = {const_cast<char*>(items[i].data()), items[i].size()};
        if (const int rc = ::sd_journal_sendv(iov.data(), static_cast<int>(iov.size())); rc < 0) {
            throw spdlog::spdlog_ex("sd_journal_sendv failed", -rc);
        }
    }
    void flush_() override {}
};

// systemd sets JOURNAL_STREAM to "device:inode" of the stream it connected to stderr.
bool stderr_is_journal() {
    // evflyd never sets its environment, so no setenv() races this read.
    const char* env = std::getenv("JOURNAL_STREAM");  // NOLINT(concurrency-mt-unsafe)
    if (env == nullptr) return false;
    unsigned long long dev = 0;
    unsigned long long ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    return ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
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

std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format) {
    if (format == LogFormat::text) return std::make_unique<TextFormatter>();
    return std::make_unique<JsonFormatter>();
}

void set_thread_name(const std::string& name) {
    // The kernel keeps 15 bytes and a NUL.
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    std::lock_guard lock(g_names_mutex);
    g_names[spdlog::details::os::thread_id()] = name;
}

namespace {

LogSink resolve(LogSink kind) {
    if (kind != LogSink::automatic) return kind;
    return stderr_is_journal() ? LogSink::journald : LogSink::stderr_sink;
}

// The sink `settings` ask for, with its formatter; `file` is set when it is a file sink.
spdlog::sink_ptr make_sink(const Settings& settings, std::shared_ptr<FileSink>& file) {
    spdlog::sink_ptr sink;
    file.reset();
    switch (resolve(settings.sink)) {
        case LogSink::journald:
            sink = std::make_shared<JournaldSink>();
            break;
        case LogSink::file:
            try {
                file = std::make_shared<FileSink>(settings.file);
                sink = file;
            } catch (const spdlog::spdlog_ex& e) {
                throw std::system_error(errno, std::generic_category(),
                                        "cannot open log file " + settings.file + ": " + e.what());
            }
            break;
        default:
            sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
            break;
    }
    sink->set_formatter(make_formatter(settings.format));
    return sink;
}

}  // namespace

void setup(const Settings& settings) {
    std::shared_ptr<FileSink> file;
    spdlog::sink_ptr sink = make_sink(settings, file);
    g_dist = std::make_shared<spdlog::sinks::dist_sink_mt>(std::vector{std::move(sink)});
    g_file_sink = std::move(file);
    g_settings = settings;
    spdlog::init_thread_pool(kQueueSize, 1, [] { set_thread_name("log"); });
    auto logger = std::make_shared<spdlog::async_logger>(
        "evflyd", g_dist, spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
    logger->set_level(parse_level(settings.level));
    logger->flush_on(Level::trace);
    // A failing sink (full disk, deleted journal socket) must not stop the daemon: count it and
    // say so on stderr once.
    logger->set_error_handler([](const std::string& what) {
        if (g_sink_errors.fetch_add(1, std::memory_order_relaxed) == 0) {
            std::fprintf(stderr, "evflyd: log sink failed, further failures are only counted: %s\n",
                         what.c_str());
        }
    });
    g_sink_errors.store(0, std::memory_order_relaxed);
    g_logger = std::move(logger);
}

bool reconfigure(const Settings& settings) {
    if (!g_logger) return false;
    bool changed = false;
    const bool same_sink =
        resolve(settings.sink) == resolve(g_settings.sink) &&
        (resolve(settings.sink) != LogSink::file || settings.file == g_settings.file);
    if (!same_sink) {
        std::shared_ptr<FileSink> file;
        spdlog::sink_ptr sink = make_sink(settings, file);  // throws before anything changes
        g_dist->set_sinks({std::move(sink)});
        g_file_sink = std::move(file);
        changed = true;
    } else if (settings.format != g_settings.format) {
        g_dist->set_formatter(make_formatter(settings.format));
        changed = true;
    }
    if (settings.level != g_settings.level) {
        g_logger->set_level(parse_level(settings.level));
        changed = true;
    }
    g_settings = settings;
    return changed;
}

void shutdown() {
    if (g_logger) g_logger->flush();
    // Join the logger thread first (dropping the thread pool does), so that the last reference
    // to the logger is released here, after everything queued has been written.
    spdlog::shutdown();
    g_logger.reset();
    g_file_sink.reset();
    g_dist.reset();
}

bool reopen() {
    if (!g_file_sink) return false;
    g_file_sink->reopen();  // throws spdlog_ex when the path cannot be opened
    return true;
}

void emit(Level level, std::string_view msg, std::initializer_list<Field> fields) {
    if (!g_logger || !g_logger->should_log(level)) return;
    const std::string payload = encode(msg, fields);
    g_logger->log(level, spdlog::string_view_t(payload.data(), payload.size()));
}

bool enabled(Level level) noexcept { return g_logger && g_logger->should_log(level); }

std::uint64_t dropped() noexcept {
    const auto pool = spdlog::thread_pool();
    return pool ? pool->overrun_counter() : 0;
}

std::uint64_t sink_errors() noexcept { return g_sink_errors.load(std::memory_order_relaxed); }

}  // namespace evfly::log
