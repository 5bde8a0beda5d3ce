// A reload of the running engine as one transaction: everything new is started (and placed)
// before anything that runs is stopped, and a failure puts back what it changed.
#include <unistd.h>

#include <algorithm>

#include "engine_state.h"
#include "evfly/log.h"

namespace evfly {

using detail::ConsumerThread;
using detail::Spec;

namespace {

// The longest a reload waits for the consumers that leave a shrinking pool.
constexpr std::chrono::seconds kLeaveWait{2};

}  // namespace

std::vector<ConsumerThread*> Engine::Impl::resize_pool(std::uint32_t target,
                                                       std::int64_t deadline_ns,
                                                       const Placement& placement) {
    std::vector<ConsumerThread*> joined;
    reap_consumers();
    // Consumers still running, less those already asked to leave.
    const std::uint64_t pending = retire_requested - retired;
    std::uint64_t intended = consumers.size() - std::min<std::uint64_t>(pending, consumers.size());
    const std::uint64_t before = intended;
    if (before == target) return joined;
    const int retire = shared.retire_fd.get();
    // Growing while some are still asked to leave: take the requests back first.
    std::uint64_t unit = 0;
    while (intended < target && retire_requested > retired &&
           ::read(retire, &unit, sizeof unit) == static_cast<ssize_t>(sizeof unit)) {
        --retire_requested;
        ++intended;
    }
    if (intended < target) {
        std::vector<std::uint32_t> used;
        for (const auto& c : consumers) used.push_back(c->index());
        std::sort(used.begin(), used.end());
        std::vector<std::unique_ptr<ConsumerThread>> fresh;
        for (std::uint32_t index = 0, u = 0; fresh.size() < target - intended; ++index) {
            while (u < used.size() && used[u] < index) ++u;
            if (u < used.size() && used[u] == index) continue;
            fresh.push_back(std::make_unique<ConsumerThread>(shared, index, placement));
        }
        // A consumer joins the pool once it runs; one that could not be started is dropped.
        start_threads(fresh.size(), [&](std::size_t i) {
            fresh[i]->start();
            joined.push_back(fresh[i].get());
            consumers.push_back(std::move(fresh[i]));
        });
    } else if (intended > target) {
        const std::uint64_t leave = intended - target;
        if (::write(retire, &leave, sizeof leave) != static_cast<ssize_t>(sizeof leave))
            throw_errno("write (retire eventfd)");
        retire_requested += leave;
        // Each leaving consumer first finishes the batch in hand; wait for them, within reason:
        // at most kLeaveWait, so that the supervisor is back to its signals and watchdog soon. A
        // consumer still busy then leaves after its batch and is joined by collect().
        const auto deadline =
            std::min(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(deadline_ns)),
                     std::chrono::steady_clock::now() + kLeaveWait);
        {
            detail::MutexLock lock(shared.lifecycle_mutex);
            shared.lifecycle_cv.wait_until(lock, deadline, [&] {
                const auto gone = static_cast<std::uint64_t>(std::count_if(
                    consumers.begin(), consumers.end(), [](const auto& c) { return c->exited(); }));
                return gone >= retire_requested - retired;
            });
        }
        reap_consumers();
    }
    log::emit(log::Level::info, "consumer pool resized",
              {{"from", before}, {"to", target}, {"running", running_consumers()}});
    return joined;
}

namespace {

// What a reload does to the producers: which carry on untouched (same name, same table), which
// keep their threads but are placed anew (their table differs only in its placement), and the
// slots the new and retuned ones need.
struct ProducerPlan {
    std::vector<std::unique_ptr<Spec>*> unchanged;  // by index in next.producers; null: new
    std::vector<std::pair<Spec*, Placement>> replaced;
    std::uint64_t slots_needed = 0;
};

ProducerPlan plan_producers(std::vector<std::unique_ptr<Spec>>& specs, const Config& next) {
    ProducerPlan plan;
    plan.unchanged.assign(next.producers.size(), nullptr);
    const auto same_but_placement = [](ProducerConfig a, const ProducerConfig& b) {
        a.placement = b.placement;
        return a == b;
    };
    for (std::size_t j = 0; j < next.producers.size(); ++j) {
        for (auto& spec : specs) {
            if (same_but_placement(spec->config, next.producers[j])) {
                plan.unchanged[j] = &spec;
                if (spec->config.placement != next.producers[j].placement)
                    plan.replaced.emplace_back(spec.get(), next.producers[j].placement);
            }
        }
        if (plan.unchanged[j] == nullptr) plan.slots_needed += slots_needed(next.producers[j]);
    }
    return plan;
}

// A placement the process may not make: the reload is refused with this.
class PlacementRefused : public std::system_error {
  public:
    explicit PlacementRefused(const std::string& why)
        : std::system_error(EPERM, std::generic_category(), why) {}
};

}  // namespace

void Engine::Impl::place_running(const Config& next,
                                 const std::vector<std::pair<Spec*, Placement>>& replaced,
                                 detail::PlacementTxn& placements) {
    if (next.daemon.placement != config.daemon.placement) {
        for (const auto& c : consumers) {
            if (c->exited()) continue;
            if (std::string why =
                    placements.place(c->tid.load(std::memory_order_relaxed), c->index(),
                                     next.daemon.placement, config.daemon.placement, "daemon.");
                !why.empty())
                throw PlacementRefused(why);
        }
    }
    for (const auto& [spec, placement] : replaced) {
        const std::string prefix = "producer." + spec->config.name + ".";
        for (const auto& t : spec->threads) {
            if (t->finished()) continue;
            if (std::string why =
                    placements.place(t->tid.load(std::memory_order_relaxed), t->index(), placement,
                                     spec->config.placement, prefix);
                !why.empty())
                throw PlacementRefused(why);
        }
    }
}

void Engine::Impl::start_new(const Config& next,
                             const std::vector<std::unique_ptr<Spec>*>& unchanged,
                             std::vector<std::unique_ptr<Spec>>& fresh,
                             detail::PlacementTxn& placements, std::int64_t deadline) {
    if (next.daemon.consumers > config.daemon.consumers) {
        const std::vector<ConsumerThread*> joined =
            resize_pool(next.daemon.consumers, deadline, next.daemon.placement);
        if (next.daemon.placement != config.daemon.placement) {
            // They placed themselves as the new config says; a failed reload puts them back as
            // the rest of the pool is.
            for (const ConsumerThread* c : joined)
                placements.started(c->tid.load(std::memory_order_relaxed), c->index(),
                                   config.daemon.placement, "daemon.");
        }
        for (const ConsumerThread* c : joined)
            if (!c->placement_error.empty()) throw PlacementRefused(c->placement_error);
    }
    for (std::size_t j = 0; j < next.producers.size(); ++j) {
        if (unchanged[j] != nullptr) continue;
        fresh[j] = make_spec(next.producers, j);
        fresh[j]->set_epoch();
        start_spec(*fresh[j]);  // on failure, stops what of it started
        for (const auto& t : fresh[j]->threads)
            if (!t->placement_error.empty()) throw PlacementRefused(t->placement_error);
    }
}

void Engine::Impl::undo_start(std::vector<std::unique_ptr<Spec>>& fresh,
                              detail::PlacementTxn& placements, std::int64_t deadline) {
    // Producers this reload started stop; their few fires stay accounted under their name once
    // drained. Every thread placed anew gets its placement back, and the pool its size.
    for (auto& spec : fresh) {
        if (!spec) continue;
        Impl::stop_spec(*spec, detail::steady_ns());
        retiring.push_back(std::move(spec));
    }
    if (const std::string why = placements.rollback(); !why.empty())
        log::emit(log::Level::err, "cannot put a thread's placement back after a failed reload",
                  {{"error", why}});
    try {
        (void)resize_pool(config.daemon.consumers, deadline, config.daemon.placement);
    } catch (const std::exception& again) {
        log::emit(log::Level::err, "cannot shrink the pool back after a failed reload",
                  {{"error", again.what()}});
    }
}

bool Engine::reconfigure(const Config& next) {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    const std::int64_t deadline = detail::steady_ns() + next.daemon.shutdown_timeout.count();
    ProducerPlan plan = plan_producers(impl.specs, next);
    impl.shared.slots.check_room(plan.slots_needed);

    // All or nothing: first place what runs anew and start what is new (a bigger pool, new or
    // retuned producers), checking that every thread started could place itself. If anything
    // fails, put back every thread placed, stop what this reload started, and leave everything
    // that ran as it was. Only then stop what goes, which cannot fail.
    detail::PlacementTxn placements(impl.shared.placement_defaults);
    std::vector<std::unique_ptr<Spec>> fresh(next.producers.size());
    try {
        impl.place_running(next, plan.replaced, placements);
        impl.start_new(next, plan.unchanged, fresh, placements, deadline);
    } catch (const std::exception& e) {
        impl.undo_start(fresh, placements, deadline);
        const bool refused = dynamic_cast<const PlacementRefused*>(&e) != nullptr;
        log::emit(log::Level::err,
                  refused ? "reload could not place its threads; nothing changed"
                          : "reload could not start its threads; nothing changed",
                  {{"error", e.what()}, {"consumers", impl.running_consumers()}});
        throw;
    }
    return impl.commit(next, plan.unchanged, plan.replaced, fresh, deadline);
}

bool Engine::Impl::commit(const Config& next, const std::vector<std::unique_ptr<Spec>*>& unchanged,
                          const std::vector<std::pair<Spec*, Placement>>& replaced,
                          std::vector<std::unique_ptr<Spec>>& fresh, std::int64_t deadline) {
    // What goes stops firing now, and drains in the background (within shutdown_timeout): the
    // supervisor does not wait for it, so signals and the watchdog are served meanwhile;
    // collect() joins it once drained.
    bool changed = false;
    std::vector<std::unique_ptr<Spec>> kept(next.producers.size());
    for (std::size_t j = 0; j < next.producers.size(); ++j)
        kept[j] = unchanged[j] != nullptr ? std::move(*unchanged[j]) : std::move(fresh[j]);
    for (const auto& [spec, placement] : replaced) {
        spec->config.placement = placement;
        log::emit(log::Level::info, "producer placed anew", {{"producer", spec->config.name}});
        changed = true;
    }
    if (config.daemon.placement != next.daemon.placement) {
        log::emit(log::Level::info, "consumers placed anew");
        changed = true;
    }
    for (auto& spec : specs) {
        if (!spec) continue;
        for (auto& t : spec->threads) t->request_stop(deadline);
        const bool retuned =
            std::any_of(next.producers.begin(), next.producers.end(),
                        [&](const ProducerConfig& p) { return p.name == spec->config.name; });
        const ProducerReport r = spec_report(*spec);
        log::emit(log::Level::info, retuned ? "producer stopped for retuning" : "producer removed",
                  {{"producer", r.name},
                   {"fired", r.fired},
                   {"value_written", r.value_written},
                   {"value_read", r.value_read},
                   {"in_flight", static_cast<std::int64_t>(r.value_written - r.value_read -
                                                           r.drained_at_stop)}});
        retiring.push_back(std::move(spec));
        changed = true;
    }
    specs.clear();
    for (std::size_t j = 0; j < next.producers.size(); ++j) {
        if (unchanged[j] != nullptr) continue;
        const ProducerConfig& p = next.producers[j];
        log::emit(log::Level::info, "producer started",
                  {{"producer", p.name}, {"kind", to_string(p.kind)}, {"threads", p.threads}});
        changed = true;
    }
    if (next.daemon.consumers != config.daemon.consumers) {
        changed = true;
        if (next.daemon.consumers < config.daemon.consumers)
            (void)resize_pool(next.daemon.consumers, deadline, next.daemon.placement);
    }
    if (config.daemon.max_events != next.daemon.max_events) {
        shared.max_events.store(next.daemon.max_events, std::memory_order_relaxed);
        log::emit(log::Level::info, "max_events changed",
                  {{"from", config.daemon.max_events}, {"to", next.daemon.max_events}});
        changed = true;
    }
    if (config.daemon.spin != next.daemon.spin) {
        shared.spin_ns.store(next.daemon.spin.count(), std::memory_order_relaxed);
        log::emit(log::Level::info, "spin changed",
                  {{"from_us", static_cast<double>(config.daemon.spin.count()) / 1e3},
                   {"to_us", static_cast<double>(next.daemon.spin.count()) / 1e3}});
        changed = true;
    }
    if (config.daemon.shutdown_timeout != next.daemon.shutdown_timeout) changed = true;
    config.daemon = next.daemon;
    config.producers.clear();
    for (auto& spec : kept) {
        config.producers.push_back(spec->config);
        specs.push_back(std::move(spec));
    }
    release_drained();
    return changed;
}

}  // namespace evfly
