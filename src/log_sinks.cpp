// Where log lines go: stderr, the journal (each field its own EVFLY_* journal field), or a file
// that logrotate can move (reopen()).
#include "log_sinks.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <system_error>
#include <vector>

#include "log_format.h"

namespace evfly::log {
namespace {

// Sends each line to the journal: MESSAGE is the line as the text format shows it (what
// `journalctl -u evfly` prints), and every field is also its own EVFLY_* journal field.
class JournaldSink final : public spdlog::sinks::base_sink<std::mutex> {
  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        const std::vector<std::string> items = journal_entry(
            static_cast<Level>(msg.level), thread_name(msg.thread_id), payload_of(msg));
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

}  // namespace evfly::log
