#include "sweep_runner.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

#include "capacity.h"

namespace evfly {
namespace {

// A stage by sample count ends after this long all the same.
constexpr Nanos kLongestStage = std::chrono::minutes(10);
// A stage is judged hopeless after this many looks in a row, this far apart, found it saturated
// with its backlog grown: a second into it at the earliest.
constexpr int kHopelessStrikes = 2;
constexpr Nanos kHopelessEvery = std::chrono::milliseconds(500);
// A stage's warm-up also waits for what the stage before left in flight (a pool that could not
// keep up leaves a backlog the next one must drain before it is measured), at most this long.
constexpr Nanos kLongestDrain = std::chrono::seconds(30);

double cpu_seconds() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    const auto s = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    return s(usage.ru_utime) + s(usage.ru_stime);
}

const HistogramSnapshot& of_kind(const Report& r, const std::string& kind) {
    return kind == "eventfd"            ? r.eventfd_latency
           : kind == "eventfd_delivery" ? r.eventfd_delivery
                                        : r.timerfd_latency;
}

}  // namespace

SweepRunner::SweepRunner(SweepPlan plan, Nanos warmup) : warmup_(warmup) {
    result_.plan = std::move(plan);
}

void SweepRunner::begin_stage(Clock::time_point now) {
    measuring_ = false;
    draining_behind_ = UINT64_MAX;
    warm_until_ = now + warmup_;
}

std::uint64_t SweepRunner::backlog(const Report& report) noexcept {
    const Totals t = report.totals();
    return t.backlog() + t.skipped + t.in_flight();
}

SweepRunner::Action SweepRunner::tick(Clock::time_point now, const Report& report,
                                      const std::vector<ProducerConfig>& producers) {
    if (!measuring_) {
        if (now < warm_until_) return Action::wait;
        // Still draining the stage before: the oldest event in flight predates this warm-up, the
        // producers are behind their schedules by more than a burst or two, or more is in flight
        // than the pool holds in steady state.
        std::uint64_t allowance = 0;
        for (const auto& p : producers)
            allowance += 2 * std::uint64_t{p.threads} * std::max<std::uint64_t>(p.burst, 1);
        const Totals t = report.totals();
        const std::uint64_t in_flight = t.in_flight();
        const bool draining = report.oldest_in_flight.age_ns > warmup_.count() ||
                              t.backlog() > allowance ||
                              in_flight > allowance + 2 * std::uint64_t{report.consumers};
        // ... as long as the drain makes progress: a pool that cannot keep up never drains, and
        // its stage is measured (and found hopeless) at once.
        const std::uint64_t behind = t.backlog() + in_flight;
        const bool progressing = behind < draining_behind_;
        draining_behind_ = behind;
        if (draining && progressing && now < warm_until_ + kLongestDrain) return Action::wait;
        measuring_ = true;
        started_ = checked_ = now;
        start_ = report;
        start_cpu_s_ = cpu_seconds();
        checked_backlog_ = backlog(report);
        strikes_ = 0;
        return Action::wait;
    }
    const Nanos elapsed = now - started_;
    bool done = false;
    std::string stopped_early;
    if (plan_.stage_samples != 0) {
        const std::uint64_t samples = report.latency().count() - start_.latency().count();
        done = samples >= plan_.stage_samples || elapsed >= kLongestStage;
        if (samples < plan_.stage_samples && done)
            stopped_early =
                "only " + std::to_string(samples) + " samples in " + format_duration(kLongestStage);
    } else {
        done = elapsed >= plan_.stage;
    }
    if (!done && now - checked_ >= kHopelessEvery) {
        const double seconds = std::chrono::duration<double>(elapsed).count();
        const Capacity c = assess(capacity_input(report, &start_, producers, seconds));
        const std::uint64_t b = backlog(report);
        strikes_ = c.applies && c.model.saturated && b > checked_backlog_ ? strikes_ + 1 : 0;
        if (strikes_ >= kHopelessStrikes) {
            char why[160];
            std::snprintf(why, sizeof why,
                          "hopeless: utilisation %.2f >= 1 and the backlog grew from %llu to %llu",
                          c.model.utilisation, static_cast<unsigned long long>(checked_backlog_),
                          static_cast<unsigned long long>(b));
            stopped_early = why;
            done = true;
        }
        checked_ = now;
        checked_backlog_ = b;
    }
    if (!done) return Action::wait;
    end_stage(now, report, producers, std::move(stopped_early));
    if (++index_ >= plan_.values.size()) {
        index_ = plan_.values.size() - 1;
        return Action::done;
    }
    return Action::next;
}

void SweepRunner::end_stage(Clock::time_point now, const Report& report,
                            const std::vector<ProducerConfig>& producers,
                            std::string stopped_early) {
    SweepStage s;
    s.value = plan_.values[index_];
    s.seconds = std::chrono::duration<double>(now - started_).count();
    s.latency = report.latency().since(start_.latency());
    for (const auto& t : plan_.targets)
        s.by_target.push_back(
            t.kind.empty() ? s.latency : of_kind(report, t.kind).since(of_kind(start_, t.kind)));
    s.cpu_s = cpu_seconds() - start_cpu_s_;
    const Totals now_totals = report.totals();
    const Totals before = start_.totals();
    s.skipped = now_totals.skipped - before.skipped;
    s.late = now_totals.late - before.late;
    s.values_per_s =
        s.seconds > 0 ? static_cast<double>(now_totals.value_read - before.value_read) / s.seconds
                      : 0.0;
    const Capacity c = assess(capacity_input(report, &start_, producers, s.seconds));
    s.utilisation = c.applies ? c.model.utilisation : 0.0;
    s.saturated = c.applies && c.model.saturated;
    if (c.applies) {
        s.model = queue::to_string(c.model.model);
        s.model_p99_ns = c.model.wait_p99_ns;
    }
    s.stopped_early = std::move(stopped_early);
    judge(s, plan_.targets);
    result_.stages.push_back(std::move(s));
}

void SweepRunner::failed(const std::string& why) { result_.stopped = why; }

SweepResult SweepRunner::finish() {
    recommend(result_);
    return result_;
}

}  // namespace evfly
