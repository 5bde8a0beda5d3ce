#include "evfly/sweep.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>

#include "evfly/duration.h"

namespace evfly {
namespace {

constexpr std::uint32_t kMaxValue = 1024;  // daemon.consumers and producer threads alike
const std::set<std::string> kStats{"p50", "p90", "p99", "p999", "max"};
const std::set<std::string> kKinds{"", "eventfd", "timerfd", "eventfd_delivery"};

std::optional<std::uint32_t> number(std::string_view text) {
    std::uint32_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
}

double quantile_of(const std::string& stat) {
    if (stat == "p50") return 0.50;
    if (stat == "p90") return 0.90;
    if (stat == "p99") return 0.99;
    return 0.999;
}

std::string ms(double ns) {
    char buf[32];
    if (ns >= 1e6)
        std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
    else
        std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
    return buf;
}

}  // namespace

std::string SweepTarget::to_string() const {
    return (kind.empty() ? "" : kind + "_") + stat + " <= " + format_duration(limit);
}

std::optional<SweepPlan> parse_sweep(const std::string& text, std::string* why) {
    const auto fail = [why](std::string message) -> std::optional<SweepPlan> {
        *why = std::move(message);
        return std::nullopt;
    };
    const auto eq = text.find('=');
    if (eq == std::string::npos)
        return fail("'" + text + "': expected consumers=FIRST..LAST or consumers=A,B,C");
    SweepPlan plan;
    plan.parameter = text.substr(0, eq);
    if (plan.parameter != "consumers" && plan.parameter != "threads")
        return fail("'" + plan.parameter + "': only consumers and threads can be swept");
    const std::string list = text.substr(eq + 1);
    const auto in_range = [](std::uint32_t v) { return v >= 1 && v <= kMaxValue; };
    if (const auto dots = list.find(".."); dots != std::string::npos) {
        const auto first = number(std::string_view(list).substr(0, dots));
        const auto last = number(std::string_view(list).substr(dots + 2));
        if (!first || !last || !in_range(*first) || !in_range(*last) || *first > *last)
            return fail("'" + list + "': a range is FIRST..LAST with 1 <= FIRST <= LAST <= " +
                        std::to_string(kMaxValue));
        for (std::uint32_t v = *first; v <= *last; ++v) plan.values.push_back(v);
    } else {
        std::size_t from = 0;
        while (from <= list.size()) {
            const auto comma = std::min(list.find(',', from), list.size());
            const auto v = number(std::string_view(list).substr(from, comma - from));
            if (!v || !in_range(*v))
                return fail("'" + list + "': each value must be a whole number from 1 to " +
                            std::to_string(kMaxValue));
            if (std::find(plan.values.begin(), plan.values.end(), *v) != plan.values.end())
                return fail("'" + list + "': " + std::to_string(*v) + " is listed twice");
            plan.values.push_back(*v);
            from = comma + 1;
        }
    }
    if (plan.values.size() > 64) return fail("'" + list + "': at most 64 stages");
    return plan;
}

bool parse_stage(const std::string& text, SweepPlan& plan, std::string* why) {
    if (const auto samples = number(text)) {
        if (*samples < 100) {
            *why = "'" + text + "': a stage needs at least 100 samples";
            return false;
        }
        plan.stage_samples = *samples;
        return true;
    }
    std::string duration_why;
    const auto d = parse_duration(text, &duration_why);
    if (!d || *d < std::chrono::milliseconds(100)) {
        *why = "'" + text + "': a stage is a duration of at least 100ms (e.g. 10s) or a " +
               "sample count of at least 100" +
               (duration_why.empty() ? std::string() : " (" + duration_why + ")");
        return false;
    }
    plan.stage = *d;
    plan.stage_samples = 0;
    return true;
}

std::optional<SweepTarget> parse_target(const std::string& text, std::string* why) {
    const auto eq = text.find('=');
    const std::string key = text.substr(0, eq);
    const auto split = key.rfind('_');
    SweepTarget t;
    t.kind = split == std::string::npos ? "" : key.substr(0, split);
    t.stat = split == std::string::npos ? key : key.substr(split + 1);
    if (eq == std::string::npos || !kKinds.count(t.kind) || !kStats.count(t.stat)) {
        *why = "'" + text +
               "': expected STAT=DURATION, STAT one of p50 p90 p99 p999 max, optionally after "
               "eventfd_, timerfd_ or eventfd_delivery_ (e.g. p99=2ms)";
        return std::nullopt;
    }
    std::string duration_why;
    const auto limit = parse_duration(text.substr(eq + 1), &duration_why);
    if (!limit || limit->count() <= 0) {
        *why = "'" + text + "': the bound must be a positive duration" +
               (duration_why.empty() ? std::string() : " (" + duration_why + ")");
        return std::nullopt;
    }
    t.limit = *limit;
    return t;
}

std::vector<SweepTarget> targets_of(const Config::Slo& slo) {
    std::vector<SweepTarget> out;
    for (const auto& [key, limit] : slo.latency) {
        const auto split = key.rfind('_');
        out.push_back({key.substr(0, split), key.substr(split + 1), limit});
    }
    return out;
}

void impose(const SweepPlan& plan, std::uint32_t value, Config& config) {
    if (plan.parameter == "consumers") {
        config.daemon.consumers = value;
    } else {
        for (auto& p : config.producers) p.threads = value;
    }
}

void judge(SweepStage& stage, const std::vector<SweepTarget>& targets) {
    stage.meets = !targets.empty();
    stage.misses.clear();
    const auto miss = [&stage](const std::string& what) {
        stage.meets = false;
        stage.misses += (stage.misses.empty() ? "" : "; ") + what;
    };
    for (std::size_t i = 0; i < targets.size(); ++i) {
        const SweepTarget& t = targets[i];
        const HistogramSnapshot& h =
            i < stage.by_target.size() ? stage.by_target[i] : stage.latency;
        if (h.count() == 0) {
            miss(t.to_string() + ": no samples");
            continue;
        }
        const auto limit = static_cast<std::uint64_t>(t.limit.count());
        if (t.stat == "max") {
            if (h.max() > limit) miss(t.to_string() + ": max " + ms(static_cast<double>(h.max())));
            continue;
        }
        const auto interval = h.quantile_interval(quantile_of(t.stat));
        if (!interval.upper)
            miss(t.to_string() + ": " + std::to_string(h.count()) +
                 " samples cannot bound it from above");
        else if (*interval.upper > limit)
            miss(t.to_string() + ": upper confidence bound " +
                 ms(static_cast<double>(*interval.upper)));
    }
    if (stage.skipped > 0) miss(std::to_string(stage.skipped) + " fires skipped");
    if (!stage.stopped_early.empty()) miss("stopped early");
}

void recommend(SweepResult& result) {
    std::vector<const SweepStage*> order;
    for (const auto& s : result.stages) order.push_back(&s);
    std::sort(order.begin(), order.end(),
              [](const SweepStage* a, const SweepStage* b) { return a->value < b->value; });
    // The knee: the smallest value no larger value improves on by more than 10 % (p99), among
    // the stages that kept up.
    std::vector<const SweepStage*> kept;
    for (const SweepStage* s : order)
        if (s->stopped_early.empty() && s->skipped == 0 && s->latency.count() > 0)
            kept.push_back(s);
    for (std::size_t i = 0; i < kept.size() && !result.knee; ++i) {
        const double p99 = static_cast<double>(kept[i]->latency.quantile(0.99));
        bool better_later = false;
        for (std::size_t j = i + 1; j < kept.size(); ++j)
            better_later =
                better_later || static_cast<double>(kept[j]->latency.quantile(0.99)) < 0.9 * p99;
        if (!better_later) result.knee = kept[i]->value;
    }
    const std::string parameter = result.plan.parameter;
    if (result.plan.targets.empty()) {
        result.recommended = result.knee;
        result.reason = result.knee ? "no target given (--target or [slo]): the knee, where more " +
                                          parameter + " stop improving the p99 by more than 10 %"
                                    : "no target given, and no stage kept up with its load";
        return;
    }
    std::string targets;
    for (const auto& t : result.plan.targets)
        targets += (targets.empty() ? "" : ", ") + t.to_string();
    for (const SweepStage* s : order) {
        if (s->meets) {
            result.recommended = s->value;
            result.reason = "the smallest " + parameter;
            result.reason += " whose upper confidence bound meets ";
            result.reason += targets;
            return;
        }
    }
    result.reason = "no stage meets " + targets;
    if (!order.empty())
        result.reason +=
            " (at " + std::to_string(order.back()->value) + ": " + order.back()->misses + ")";
}

std::string sweep_table(const SweepResult& r) {
    std::string out;
    char line[512];
    std::string targets;
    for (const auto& t : r.plan.targets) targets += (targets.empty() ? "" : ", ") + t.to_string();
    out += "sweep of " + r.plan.parameter + ", stages of " +
           (r.plan.stage_samples != 0 ? std::to_string(r.plan.stage_samples) + " samples"
                                      : format_duration(r.plan.stage)) +
           (targets.empty() ? std::string(", no target") : ", target " + targets) + "\n";
    std::snprintf(line, sizeof line, "%9s %10s %10s %10s %23s %10s %11s %5s %7s %8s %6s  %s\n",
                  r.plan.parameter.c_str(), "values/s", "seconds", "p50", "p99 [95% CI]", "p999",
                  "model p99", "rho", "cpu_s", "skipped", "late", "meets");
    out += line;
    for (const auto& s : r.stages) {
        const auto ci = s.latency.quantile_interval(0.99);
        const std::string interval =
            "[" + (ci.lower ? ms(static_cast<double>(*ci.lower)) : std::string("?")) + ", " +
            (ci.upper ? ms(static_cast<double>(*ci.upper)) : std::string("?")) + "]";
        const std::string p99 = ms(static_cast<double>(s.latency.quantile(0.99)));
        std::snprintf(line, sizeof line,
                      "%9u %10.0f %10.1f %10s %10s %12s %10s %11s %5.2f %7.2f %8llu %6llu  %s\n",
                      s.value, s.values_per_s, s.seconds,
                      ms(static_cast<double>(s.latency.quantile(0.5))).c_str(), p99.c_str(),
                      interval.c_str(), ms(static_cast<double>(s.latency.quantile(0.999))).c_str(),
                      s.saturated      ? "rho >= 1"
                      : s.model_p99_ns ? ms(*s.model_p99_ns).c_str()
                                       : "-",
                      s.utilisation, s.cpu_s, static_cast<unsigned long long>(s.skipped),
                      static_cast<unsigned long long>(s.late),
                      s.stopped_early.empty() ? (r.plan.targets.empty() ? "-"
                                                 : s.meets              ? "yes"
                                                                        : "no")
                                              : "stopped early");
        out += line;
    }
    if (!r.stopped.empty()) out += "sweep stopped: " + r.stopped + "\n";
    out += "recommended: " +
           (r.recommended ? std::to_string(*r.recommended) + " " + r.plan.parameter
                          : std::string("none")) +
           " (" + r.reason + ")";
    out += r.knee ? "; knee: " + std::to_string(*r.knee) + "\n" : "; knee: none\n";
    return out;
}

}  // namespace evfly
