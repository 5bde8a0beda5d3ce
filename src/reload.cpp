#include "reload.h"

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

void apply_reload(const Config& next, const ReloadTargets& targets, ReloadChanges& changes) {
    Config& config = targets.config;
    // Process-wide settings first: memory locking and the CPU wake-up latency request can
    // fail (EPERM, RLIMIT_MEMLOCK, a device the unit does not allow) with nothing changed,
    // and are undone if anything after them fails.
    const bool mlockall_before = config.daemon.mlockall;
    const std::optional<Nanos> wake_before = config.daemon.cpu_dma_latency;
    const auto undo_process_settings = [&] {
        if (config.daemon.cpu_dma_latency != wake_before) {
            (void)targets.wake_latency.set(wake_before);
            config.daemon.cpu_dma_latency = wake_before;
        }
        if (config.daemon.mlockall != mlockall_before) {
            (void)detail::apply_mlockall(mlockall_before);
            config.daemon.mlockall = mlockall_before;
        }
    };
    if (next.daemon.mlockall != config.daemon.mlockall) {
        if (const std::string why = detail::apply_mlockall(next.daemon.mlockall); !why.empty())
            throw std::system_error(EPERM, std::generic_category(), why);
        config.daemon.mlockall = next.daemon.mlockall;
        changes.note("daemon.mlockall");
    }
    if (next.daemon.cpu_dma_latency != config.daemon.cpu_dma_latency) {
        if (const std::string why = targets.wake_latency.set(next.daemon.cpu_dma_latency);
            !why.empty()) {
            undo_process_settings();
            throw std::system_error(EPERM, std::generic_category(), why);
        }
        config.daemon.cpu_dma_latency = next.daemon.cpu_dma_latency;
        changes.note("daemon.cpu_dma_latency");
    }
    const Config::Log log_before = config.log;
    if (next.log != config.log) {
        log::reconfigure(next.log);
        config.log = next.log;
        changes.note("log");
    }
    if (next.daemon.consumers != config.daemon.consumers) changes.note("daemon.consumers");
    if (next.daemon.max_events != config.daemon.max_events) changes.note("daemon.max_events");
    if (next.daemon.spin != config.daemon.spin) changes.note("daemon.spin");
    if (next.daemon.placement != config.daemon.placement) changes.note("daemon.placement");
    if (next.daemon.shutdown_timeout != config.daemon.shutdown_timeout)
        changes.note("daemon.shutdown_timeout");
    if (next.producers != config.producers) changes.note("producers");
    try {
        targets.engine.reconfigure(next);
    } catch (...) {
        // All or nothing: the engine has left everything as it ran; so do the log and the
        // process-wide settings.
        if (config.log != log_before) {
            log::reconfigure(log_before);
            config.log = log_before;
        }
        undo_process_settings();
        throw;
    }
    config.daemon.consumers = next.daemon.consumers;
    config.daemon.max_events = next.daemon.max_events;
    config.daemon.spin = next.daemon.spin;
    config.daemon.placement = next.daemon.placement;
    config.daemon.shutdown_timeout = next.daemon.shutdown_timeout;
    config.producers = next.producers;
}

}  // namespace evfly
