#include "evfly/host.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace evfly {
namespace {

std::string first_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    if (!std::getline(in, line)) return {};
    while (!line.empty() && (line.back() == ' ' || line.back() == '\n')) line.pop_back();
    return line;
}

// The value of the first "key\t: value" line of /proc/cpuinfo with this key.
std::string cpuinfo(const std::string& key) {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) != 0) continue;
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        const auto start = line.find_first_not_of(' ', colon + 1);
        return start == std::string::npos ? std::string() : line.substr(start);
    }
    return {};
}

}  // namespace

std::string config_hash(const Config& config) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (const char c : to_toml(config)) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 0x100000001b3ULL;
    }
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
    return text;
}

HostInfo host_info(const Config& config) {
    HostInfo h;
    utsname name{};
    h.kernel = ::uname(&name) == 0 ? name.release : "unknown";
    h.cpu_model = cpuinfo("model name");
    if (h.cpu_model.empty()) h.cpu_model = "unknown";
    const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    h.online_cpus = cpus > 0 ? static_cast<std::uint32_t>(cpus) : 0;
    h.clocksource = first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    if (h.clocksource.empty()) h.clocksource = "unknown";
    // x86 guests see the CPUID hypervisor bit as the "hypervisor" flag; the DMI vendor names it.
    const std::string flags = " " + cpuinfo("flags") + " ";
    h.virtualized = flags.find(" hypervisor ") != std::string::npos;
    std::string vendor = first_line("/sys/hypervisor/type");
    if (vendor.empty()) vendor = first_line("/sys/class/dmi/id/sys_vendor");
    if (h.virtualized) {
        h.hypervisor = vendor.empty() ? "unknown" : vendor;
    } else {
        h.hypervisor = flags.size() > 2 ? "none" : "unknown";
    }
    h.evfly_version = EVFLY_VERSION;
    h.config_hash = config_hash(config);
    return h;
}

}  // namespace evfly
