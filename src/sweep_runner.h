// The sweep's stages in time: each stage's warm-up, then its measured time or sample count, cut
// short when it is hopeless (utilisation >= 1 and the backlog growing), and what the supervisor
// must do next (reload to the next value, or stop). Driven by the supervisor's sweep timer;
// supervisor thread only.
#pragma once

#include <chrono>
#include <cstdint>

#include "evfly/config.h"
#include "evfly/report.h"
#include "evfly/sweep.h"

namespace evfly {

class SweepRunner {
  public:
    using Clock = std::chrono::steady_clock;
    // How often the supervisor should call tick().
    static constexpr Nanos kTick = std::chrono::milliseconds(250);

    // `warmup`: each stage's, before its measurement starts.
    SweepRunner(SweepPlan plan, Nanos warmup);
    SweepRunner(const SweepRunner&) = delete;
    SweepRunner& operator=(const SweepRunner&) = delete;

    [[nodiscard]] const SweepPlan& plan() const noexcept { return plan_; }
    // The stage that ended last (after a tick that returned next or done).
    [[nodiscard]] const SweepStage& last() const noexcept { return result_.stages.back(); }

    // The value the current stage runs (the first one's is the config's from the start).
    [[nodiscard]] std::uint32_t value() const noexcept { return plan_.values[index_]; }
    // The stage's value now in force, from `now`: its warm-up begins.
    void begin_stage(Clock::time_point now);

    enum class Action { wait, next, done };
    // At `now`, with the engine's `report` and the producers in force: wait, reload to value()
    // (next), or stop (done).
    Action tick(Clock::time_point now, const Report& report,
                const std::vector<ProducerConfig>& producers);
    // The reload to the next value failed: the sweep ends here, saying why.
    void failed(const std::string& why);
    [[nodiscard]] SweepResult finish();

  private:
    void end_stage(Clock::time_point now, const Report& report,
                   const std::vector<ProducerConfig>& producers, std::string stopped_early);
    static std::uint64_t backlog(const Report& report) noexcept;

    SweepResult result_;
    SweepPlan& plan_ = result_.plan;
    Nanos warmup_;
    std::size_t index_ = 0;
    bool measuring_ = false;
    Clock::time_point warm_until_{};
    std::uint64_t draining_behind_ = 0;  // at the last look during the warm-up
    Clock::time_point started_{};
    Report start_;
    double start_cpu_s_ = 0;
    Clock::time_point checked_{};
    std::uint64_t checked_backlog_ = 0;
    int strikes_ = 0;
};

}  // namespace evfly
