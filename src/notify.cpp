// systemd's notification protocol (sd_notify): the only file that includes libsystemd's daemon
// API.
#include "evfly/notify.h"

#include <systemd/sd-daemon.h>

#include <ctime>

namespace evfly {
namespace {

class SystemdNotifier final : public Notifier {
  public:
    void ready(const std::string& status) override {
        ::sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
    }
    void reloading() override {
        // MONOTONIC_USEC: systemd 253 and later match it with the READY=1 that ends the reload.
        timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now);
        ::sd_notifyf(0, "RELOADING=1\nSTATUS=reloading the config\nMONOTONIC_USEC=%llu",
                     static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL +
                         static_cast<unsigned long long>(now.tv_nsec / 1000));
    }
    void stopping(std::chrono::microseconds drain) override {
        // EXTEND_TIMEOUT_USEC (systemd 236 and later) only ever extends TimeoutStopSec=.
        ::sd_notifyf(0, "STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu",
                     static_cast<unsigned long long>(drain.count()));
    }
    void status(const std::string& status) override {
        ::sd_notifyf(0, "STATUS=%s", status.c_str());
    }
    void watchdog() override { ::sd_notify(0, "WATCHDOG=1"); }
    [[nodiscard]] std::chrono::microseconds watchdog_interval() const override {
        std::uint64_t usec = 0;
        if (::sd_watchdog_enabled(0, &usec) > 0) return std::chrono::microseconds(usec);
        return std::chrono::microseconds(0);
    }
};

}  // namespace

std::unique_ptr<Notifier> systemd_notifier() { return std::make_unique<SystemdNotifier>(); }

}  // namespace evfly
