// Internal header of the log: how a line looks. See log_format.cpp.
#pragma once

#include <spdlog/formatter.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "evfly/log.h"

namespace evfly::log {

// The name a thread gave itself with set_thread_name(), by kernel thread id.
std::string thread_name(std::size_t tid);
void register_thread_name(std::size_t tid, const std::string& name);

// The payload of a line as spdlog carries it.
std::string_view payload_of(const spdlog::details::log_msg& msg);
// The line formatters (json, text) for spdlog's sinks.
std::unique_ptr<spdlog::formatter> make_formatter(LogFormat format);
// The journal entry of one line: MESSAGE (the line as the text format prints it, without
// timestamp, level and thread), PRIORITY, SYSLOG_IDENTIFIER, EVFLY_THREAD and every field as
// EVFLY_<KEY>. `payload` is what encode() made.
std::vector<std::string> journal_entry(Level level, std::string_view thread,
                                       std::string_view payload);

}  // namespace evfly::log
