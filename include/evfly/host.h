// Host context: what a summary needs so that two runs can be compared honestly (the kernel, the
// CPU, how many CPUs, the clocksource, whether it runs virtualised) plus evfly's version and a
// hash of the effective config. Read once at start from /proc and /sys; nothing here fails:
// what cannot be read is "unknown".
#pragma once

#include <cstdint>
#include <string>

#include "evfly/config.h"

namespace evfly {

struct HostInfo {
    std::string kernel;     // uname release, e.g. "6.1.0-26-amd64"
    std::string cpu_model;  // /proc/cpuinfo "model name"
    std::uint32_t online_cpus = 0;
    std::string clocksource;   // /sys/devices/system/clocksource/clocksource0/current_clocksource
    bool virtualized = false;  // the CPU reports a hypervisor, or a known hypervisor's DMI vendor
    std::string hypervisor;    // e.g. "KVM", "QEMU", "Microsoft", "none", "unknown"
    std::string evfly_version;
    std::string config_hash;  // FNV-1a 64 of the effective config as TOML, hex
};

HostInfo host_info(const Config& config);
// The hash of the effective config (to_toml: every default filled in, the source path left out).
std::string config_hash(const Config& config);

}  // namespace evfly
