// Internal header of the log: its sinks. See log_sinks.cpp.
#pragma once

#include <spdlog/details/file_helper.h>
#include <spdlog/sinks/base_sink.h>

#include <memory>
#include <mutex>
#include <string>

#include "evfly/log.h"

namespace evfly::log {

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

// `kind`, with auto resolved: journald when stderr is the journal's stream, else stderr.
LogSink resolve(LogSink kind);
// The sink `settings` ask for, with its formatter; `file` is set when it is a file sink. Throws
// std::system_error when the file cannot be opened.
spdlog::sink_ptr make_sink(const Settings& settings, std::shared_ptr<FileSink>& file);

}  // namespace evfly::log
