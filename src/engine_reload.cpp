// A reload of the running engine as one transaction: everything new is started (and placed)
// before anything that runs is stopped, and a failure puts back what it changed.
#include <unistd.h>

#include <algorithm>

#include "engine_state.h"
#include "evfly/log.h"

namespace evfly {

using detail::ConsumerThread;
using detail::ProducerThread;
using detail::Shared;
using detail::Spec;

namespace {

// The longest a reload waits for the consumers that leave a shrinking pool.
constexpr std::chrono::seconds kLeaveWait{2};

}  // namespace

std::string Engine::Impl::replace_placements(
    const Placement& consumers_next,
    const std::vector<std::pair<Spec*, Placement>>& producers_next) {
    struct Undo {
        pid_t tid;
        std::uint32_t index;
        const Placement* old;
        std::string prefix;
    };
    std::vector<Undo> done;
    const auto put_back = [&] {
        for (const auto& u : done)
            (void)detail::apply_placement(*u.old, shared.placement_defaults, u.tid, u.index,
                                          u.prefix);
    };
    if (consumers_next != config.daemon.placement) {
        for (const auto& c : consumers) {
            if (c->exited()) continue;
            const pid_t tid = c->tid.load(std::memory_order_relaxed);
            if (std::string why = detail::apply_placement(consumers_next, shared.placement_defaults,
                                                          tid, c->index(), "daemon.");
                !why.empty()) {
                put_back();
                return why;
            }
            done.push_back({tid, c->index(), &config.daemon.placement, "daemon."});
        }
    }
    for (const auto& [spec, next] : producers_next) {
        const std::string prefix = "producer." + spec->config.name + ".";
        for (const auto& t : spec->threads) {
            const pid_t tid = t->tid.load(std::memory_order_relaxed);
            if (tid == 0 || t->finished()) continue;
            if (std::string why = detail::apply_placement(next, shared.placement_defaults, tid,
                                                          t->index(), prefix);
                !why.empty()) {
                put_back();
                return why;
            }
            done.push_back({tid, t->index(), &spec->config.placement, prefix});
        }
    }
    return {};
}

void Engine::Impl::resize_pool(std::uint32_t target, std::int64_t deadline_ns,
                               const Placement& placement) {
    reap_consumers();
    // Consumers still running, less those already asked to leave.
    const std::uint64_t pending = retire_requested - retired;
    std::uint64_t intended = consumers.size() - std::min<std::uint64_t>(pending, consumers.size());
    const std::uint64_t before = intended;
    if (before == target) return;
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
}

bool Engine::reconfigure(const Config& next) {
    Impl& impl = *impl_;
    ASSERT_ON_THREAD(impl.supervisor);
    bool changed = false;
    const std::int64_t deadline = detail::steady_ns() + next.daemon.shutdown_timeout.count();

    // Which running producers carry on untouched: same name, same table.
    std::vector<std::unique_ptr<Spec>*> unchanged(next.producers.size(), nullptr);
    std::uint64_t needed = 0;
    // A producer whose table differs only in its placement keeps its threads: they are placed
    // again where they run.
    const auto same_but_placement = [](ProducerConfig a, const ProducerConfig& b) {
        a.placement = b.placement;
        return a == b;
    };
    std::vector<std::pair<Spec*, Placement>> replaced;
    for (std::size_t j = 0; j < next.producers.size(); ++j) {
        for (auto& spec : impl.specs) {
            if (same_but_placement(spec->config, next.producers[j])) {
                unchanged[j] = &spec;
                if (spec->config.placement != next.producers[j].placement)
                    replaced.emplace_back(spec.get(), next.producers[j].placement);
            }
        }
        if (unchanged[j] == nullptr) needed += slots_needed(next.producers[j]);
    }
    impl.shared.slots.check_room(needed);

    // All or nothing: first start what is new (a bigger pool, new or retuned producers), and if
    // any thread cannot be started, stop what this reload started and leave everything that ran
    // as it was. Only then stop what goes, which cannot fail.
    const std::uint32_t consumers_before = impl.config.daemon.consumers;
    std::vector<std::unique_ptr<Spec>> fresh(next.producers.size());
    // Placement first: it is what most often fails (EPERM), and it is undone on a failure.
    if (const std::string why = impl.replace_placements(next.daemon.placement, replaced);
        !why.empty()) {
        log::emit(log::Level::err, "reload could not place its threads; nothing changed",
                  {{"error", why}});
        throw std::system_error(EPERM, std::generic_category(), why);
    }
    // Puts back the placement of every thread replace_placements() changed (their configs
    // still hold it until the commit below).
    const auto undo_placements = [&] {
        if (next.daemon.placement != impl.config.daemon.placement) {
            for (const auto& c : impl.consumers)
                if (!c->exited())
                    (void)detail::apply_placement(
                        impl.config.daemon.placement, impl.shared.placement_defaults,
                        c->tid.load(std::memory_order_relaxed), c->index(), "daemon.");
        }
        for (const auto& [spec, placement] : replaced)
            for (const auto& t : spec->threads)
                if (!t->finished())
                    (void)detail::apply_placement(
                        spec->config.placement, impl.shared.placement_defaults,
                        t->tid.load(std::memory_order_relaxed), t->index(),
                        "producer." + spec->config.name + ".");
    };
    try {
        if (next.daemon.consumers > consumers_before)
            impl.resize_pool(next.daemon.consumers, deadline, next.daemon.placement);
        for (std::size_t j = 0; j < next.producers.size(); ++j) {
            if (unchanged[j] != nullptr) continue;
            fresh[j] = impl.make_spec(next.producers[j]);
            fresh[j]->set_epoch();
            impl.start_spec(*fresh[j]);  // on failure, stops what of it started
        }
    } catch (const std::exception& e) {
        // Producers this reload started have stopped; their few fires stay accounted under their
        // name once drained. The pool goes back to its size.
        for (auto& spec : fresh) {
            if (!spec) continue;
            Impl::stop_spec(*spec, detail::steady_ns());
            impl.retiring.push_back(std::move(spec));
        }
        undo_placements();
        try {
            impl.resize_pool(consumers_before, deadline, impl.config.daemon.placement);
        } catch (const std::exception& again) {
            log::emit(log::Level::err, "cannot shrink the pool back after a failed reload",
                      {{"error", again.what()}});
        }
        log::emit(log::Level::err, "reload could not start its threads; nothing changed",
                  {{"error", e.what()}, {"consumers", impl.running_consumers()}});
        throw;
    }

    // Commit. What goes stops firing now, and drains in the background (within
    // shutdown_timeout): the supervisor does not wait for it, so signals and the watchdog are
    // served meanwhile; collect() joins it once drained.
    std::vector<std::unique_ptr<Spec>> kept(next.producers.size());
    for (std::size_t j = 0; j < next.producers.size(); ++j)
        kept[j] = unchanged[j] != nullptr ? std::move(*unchanged[j]) : std::move(fresh[j]);
    for (const auto& [spec, placement] : replaced) {
        spec->config.placement = placement;
        log::emit(log::Level::info, "producer placed anew", {{"producer", spec->config.name}});
        changed = true;
    }
    if (impl.config.daemon.placement != next.daemon.placement) {
        log::emit(log::Level::info, "consumers placed anew");
        changed = true;
    }
    for (auto& spec : impl.specs) {
        if (!spec) continue;
        for (auto& t : spec->threads) t->request_stop(deadline);
        const bool retuned =
            std::any_of(next.producers.begin(), next.producers.end(),
                        [&](const ProducerConfig& p) { return p.name == spec->config.name; });
        const ProducerReport r = impl.spec_report(*spec);
        log::emit(log::Level::info, retuned ? "producer stopped for retuning" : "producer removed",
                  {{"producer", r.name},
                   {"fired", r.fired},
                   {"value_written", r.value_written},
                   {"value_read", r.value_read},
                   {"in_flight", static_cast<std::int64_t>(r.value_written - r.value_read)}});
        impl.retiring.push_back(std::move(spec));
        changed = true;
    }
    impl.specs.clear();
    for (std::size_t j = 0; j < next.producers.size(); ++j) {
        if (unchanged[j] != nullptr) continue;
        const ProducerConfig& p = next.producers[j];
        log::emit(log::Level::info, "producer started",
                  {{"producer", p.name}, {"kind", to_string(p.kind)}, {"threads", p.threads}});
        changed = true;
    }
    if (next.daemon.consumers != consumers_before) {
        changed = true;
        if (next.daemon.consumers < consumers_before)
            impl.resize_pool(next.daemon.consumers, deadline, next.daemon.placement);
    }
    if (impl.config.daemon.max_events != next.daemon.max_events) {
        impl.shared.max_events.store(next.daemon.max_events, std::memory_order_relaxed);
        log::emit(log::Level::info, "max_events changed",
                  {{"from", impl.config.daemon.max_events}, {"to", next.daemon.max_events}});
        changed = true;
    }
    if (impl.config.daemon.spin != next.daemon.spin) {
        impl.shared.spin_ns.store(next.daemon.spin.count(), std::memory_order_relaxed);
        log::emit(log::Level::info, "spin changed",
                  {{"from_us", static_cast<double>(impl.config.daemon.spin.count()) / 1e3},
                   {"to_us", static_cast<double>(next.daemon.spin.count()) / 1e3}});
        changed = true;
    }
    if (impl.config.daemon.shutdown_timeout != next.daemon.shutdown_timeout) changed = true;
    impl.config.daemon = next.daemon;
    impl.config.producers.clear();
    for (auto& spec : kept) {
        impl.config.producers.push_back(spec->config);
        impl.specs.push_back(std::move(spec));
    }
    impl.release_drained();
    return changed;
}

}  // namespace evfly
