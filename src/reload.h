// A reload (SIGHUP) applied to the running daemon: the process-wide settings (memory locking,
// the CPU wake-up latency request), the log, then the engine. All or nothing: when a step fails,
// what the steps before it changed is put back, and the daemon runs on as it was.
#pragma once

#include <string>
#include <vector>

#include "evfly/config.h"
#include "evfly/engine.h"
#include "placement.h"

namespace evfly {

// What a reload reaches of the running daemon.
struct ReloadTargets {
    Config& config;  // the config in force: each part is updated once applied
    Engine& engine;
    detail::CpuWakeLatency& wake_latency;
};

// The keys a reload changed, in the order they were applied.
struct ReloadChanges {
    std::vector<std::string> keys;
    void note(const char* key) { keys.emplace_back(key); }
    [[nodiscard]] bool has(const std::string& key) const;
    [[nodiscard]] std::string joined() const;  // "daemon.consumers,log,..."
};

// Applies the process-wide settings, the log, [explain] and the engine's part of `next` (consumers,
// max_events, spin, placement, shutdown_timeout, producers), in that order. Each step that
// succeeds pushes its undo; when a later one fails, they run the last first and the exception
// goes on, with the daemon as it was. The changed keys are added to `changes`.
void apply_reload(const Config& next, const ReloadTargets& targets, ReloadChanges& changes);

}  // namespace evfly
