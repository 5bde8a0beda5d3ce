// The log's lifecycle: one async spdlog logger whose queue never blocks a consumer (the oldest
// line is dropped and counted), its sink swapped in place by a reload, the file reopened for
// logrotate. How lines look is log_format.cpp; where they go, log_sinks.cpp.
#include "evfly/log.h"

#include <pthread.h>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/details/os.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>
#include <vector>

#include "log_format.h"
#include "log_sinks.h"

namespace evfly::log {
namespace {

constexpr std::size_t kQueueSize = 8192;

// evfly's levels are spdlog's, in the same order.
static_assert(static_cast<int>(Level::trace) == spdlog::level::trace &&
              static_cast<int>(Level::err) == spdlog::level::err &&
              static_cast<int>(Level::off) == spdlog::level::off);
spdlog::level::level_enum to_spdlog(Level level) {
    return static_cast<spdlog::level::level_enum>(level);
}

// Set by setup() before any other thread exists and cleared by shutdown() after they are all
// joined, so plain reads from any thread in between are safe.
std::shared_ptr<spdlog::logger> g_logger;
std::atomic<std::uint64_t> g_sink_errors{0};

// The logger writes to g_dist, whose one sub-sink is the configured sink: a reload swaps that
// sub-sink under g_dist's mutex, which the logger thread holds while it writes a line. The
// supervisor thread alone touches the three below.
std::shared_ptr<spdlog::sinks::dist_sink_mt> g_dist;
std::shared_ptr<FileSink> g_file_sink;  // set while the file sink is in use
Settings g_settings;

}  // namespace

void set_thread_name(const std::string& name) {
    // The kernel keeps 15 bytes and a NUL.
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    register_thread_name(spdlog::details::os::thread_id(), name);
}

void setup(const Settings& settings) {
    std::shared_ptr<FileSink> file;
    spdlog::sink_ptr sink = make_sink(settings, file);
    g_dist = std::make_shared<spdlog::sinks::dist_sink_mt>(std::vector{std::move(sink)});
    g_file_sink = std::move(file);
    g_settings = settings;
    spdlog::init_thread_pool(kQueueSize, 1, [] { set_thread_name("log"); });
    auto logger = std::make_shared<spdlog::async_logger>(
        "evflyd", g_dist, spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
    logger->set_level(to_spdlog(parse_level(settings.level)));
    logger->flush_on(spdlog::level::trace);
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
        g_logger->set_level(to_spdlog(parse_level(settings.level)));
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
    if (!g_logger || !g_logger->should_log(to_spdlog(level))) return;
    const std::string payload = encode(msg, fields);
    g_logger->log(to_spdlog(level), spdlog::string_view_t(payload.data(), payload.size()));
}

bool enabled(Level level) noexcept { return g_logger && g_logger->should_log(to_spdlog(level)); }

std::uint64_t dropped() noexcept {
    const auto pool = spdlog::thread_pool();
    return pool ? pool->overrun_counter() : 0;
}

std::uint64_t sink_errors() noexcept { return g_sink_errors.load(std::memory_order_relaxed); }

}  // namespace evfly::log
