// Notifier: what evflyd tells the service manager that started it: ready, reloading, stopping,
// a status line, and the watchdog's pings. The daemon uses systemd's (sd_notify, a no-op when
// not started by systemd); a test may hand it another.
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace evfly {

class Notifier {
  public:
    virtual ~Notifier() = default;
    // The daemon serves (after the start, and after every reload, failed or not).
    virtual void ready(const std::string& status) = 0;
    // A reload begins.
    virtual void reloading() = 0;
    // The daemon stops, and needs up to `drain` for it: the service manager's stop timeout is
    // extended to that, so a long shutdown_timeout is not cut short.
    virtual void stopping(std::chrono::microseconds drain) = 0;
    virtual void status(const std::string& status) = 0;
    // The pool makes progress: the watchdog may be fed.
    virtual void watchdog() = 0;
    // The watchdog interval the service manager expects pings within; 0 when it expects none.
    [[nodiscard]] virtual std::chrono::microseconds watchdog_interval() const = 0;
};

// sd_notify(3) to $NOTIFY_SOCKET; does nothing when there is none.
std::unique_ptr<Notifier> systemd_notifier();

}  // namespace evfly
