#include "reload.h"

#include <functional>
#include <stdexcept>
#include <system_error>

#include "evfly/log.h"

namespace evfly {

bool ReloadChanges::has(const std::string& key) const {
    for (const auto& k : keys)
        if (k == key) return true;
    return false;
}

std::string ReloadChanges::joined() const {
    std::string out;
    for (const auto& k : keys) out += (out.empty() ? "" : ",") + k;
    return out;
}

namespace {

// The undo of every step of a reload that succeeded, run the last first when a later step
// fails (the stack unwinds through its destructor), and forgotten once the whole reload holds.
class UndoStack {
  public:
    UndoStack() = default;
    UndoStack(const UndoStack&) = delete;
    UndoStack& operator=(const UndoStack&) = delete;
    ~UndoStack() {
        for (auto undo = undos_.rbegin(); undo != undos_.rend(); ++undo) {
            try {
                (*undo)();
            } catch (const std::exception& e) {
                log::emit(log::Level::err, "cannot undo a step of a failed reload",
                          {{"error", e.what()}});
            }
        }
    }
    void push(std::function<void()> undo) { undos_.push_back(std::move(undo)); }
    void commit() noexcept { undos_.clear(); }

  private:
    std::vector<std::function<void()>> undos_;
};

}  // namespace

void apply_reload(const Config& next, const ReloadTargets& targets, ReloadChanges& changes) {
    Config& config = targets.config;
    UndoStack undo;
    // Process-wide settings first: memory locking and the CPU wake-up latency request can fail
    // (EPERM, RLIMIT_MEMLOCK, a device the unit does not allow) with nothing changed.
    if (const bool before = config.daemon.mlockall; next.daemon.mlockall != before) {
        if (const std::string why = detail::apply_mlockall(next.daemon.mlockall); !why.empty())
            throw std::system_error(EPERM, std::generic_category(), why);
        config.daemon.mlockall = next.daemon.mlockall;
        undo.push([&config, before] {
            if (const std::string why = detail::apply_mlockall(before); !why.empty())
                throw std::runtime_error(why);
            config.daemon.mlockall = before;
        });
        changes.note("daemon.mlockall");
    }
    if (const std::optional<Nanos> before = config.daemon.cpu_dma_latency;
        next.daemon.cpu_dma_latency != before) {
        if (const std::string why = targets.wake_latency.set(next.daemon.cpu_dma_latency);
            !why.empty())
            throw std::system_error(EPERM, std::generic_category(), why);
        config.daemon.cpu_dma_latency = next.daemon.cpu_dma_latency;
        undo.push([&config, &targets, before] {
            if (const std::string why = targets.wake_latency.set(before); !why.empty())
                throw std::runtime_error(why);
            config.daemon.cpu_dma_latency = before;
        });
        changes.note("daemon.cpu_dma_latency");
    }
    // The log: a new file that cannot be opened fails here, with nothing of it changed.
    if (const Config::Log before = config.log; next.log != before) {
        log::reconfigure(next.log);
        config.log = next.log;
        undo.push([&config, before] {
            log::reconfigure(before);
            config.log = before;
        });
        changes.note("log");
    }
    // [explain]: a kernel tracer that is required and cannot be had fails here.
    if (const Config::Explain before = config.explain; next.explain != before) {
        targets.engine.set_explain(next.explain);
        config.explain = next.explain;
        undo.push([&config, &targets, before] {
            targets.engine.set_explain(before);
            config.explain = before;
        });
        changes.note("explain");
    }
    if (next.daemon.consumers != config.daemon.consumers) changes.note("daemon.consumers");
    if (next.daemon.max_events != config.daemon.max_events) changes.note("daemon.max_events");
    if (next.daemon.spin != config.daemon.spin) changes.note("daemon.spin");
    if (next.daemon.placement != config.daemon.placement) changes.note("daemon.placement");
    if (next.daemon.shutdown_timeout != config.daemon.shutdown_timeout)
        changes.note("daemon.shutdown_timeout");
    if (next.producers != config.producers) changes.note("producers");
    // The engine is a transaction of its own: when it throws, it has left everything as it ran.
    targets.engine.reconfigure(next);
    undo.commit();
    config.daemon.consumers = next.daemon.consumers;
    config.daemon.max_events = next.daemon.max_events;
    config.daemon.spin = next.daemon.spin;
    config.daemon.placement = next.daemon.placement;
    config.daemon.shutdown_timeout = next.daemon.shutdown_timeout;
    config.producers = next.producers;
}

}  // namespace evfly
