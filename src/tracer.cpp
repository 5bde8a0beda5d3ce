// The tracer: libtracefs through tracefs_shim.h, libtraceevent for the records.
#include "tracer.h"

#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <traceevent/event-parse.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>

#include "clock.h"
#include "evfly/fd.h"
#include "evfly/log.h"
#include "trace_analysis.h"
#include "tracefs_shim.h"

namespace evfly::detail {
namespace {

constexpr const char* kInstancePrefix = "evfly-";
constexpr auto kTracefsMagic = TRACEFS_MAGIC;

struct EventName {
    const char* system;
    const char* name;
    TraceEvent::Type type;
};
constexpr std::array<EventName, 9> kEvents{{
    {"sched", "sched_waking", TraceEvent::Type::sched_waking},
    {"sched", "sched_wakeup", TraceEvent::Type::sched_wakeup},
    {"sched", "sched_switch", TraceEvent::Type::sched_switch},
    {"sched", "sched_migrate_task", TraceEvent::Type::migrate},
    {"irq", "irq_handler_entry", TraceEvent::Type::irq_entry},
    {"irq", "irq_handler_exit", TraceEvent::Type::irq_exit},
    {"irq", "softirq_entry", TraceEvent::Type::softirq_entry},
    {"irq", "softirq_exit", TraceEvent::Type::softirq_exit},
    {"timer", "hrtimer_expire_entry", TraceEvent::Type::hrtimer_expire},
}};

// Reads the ring's records into TraceEvents: events and fields looked up once.
struct Decoder {
    struct Known {
        TraceEvent::Type type;
        tep_format_field* pid = nullptr;         // waking, wakeup, migrate
        tep_format_field* comm = nullptr;        // waking, wakeup, migrate, irq name
        tep_format_field* target_cpu = nullptr;  // waking, wakeup; migrate: dest_cpu
        tep_format_field* prev_pid = nullptr;
        tep_format_field* prev_comm = nullptr;
        tep_format_field* prev_state = nullptr;
        tep_format_field* next_pid = nullptr;
        tep_format_field* next_comm = nullptr;
        tep_format_field* irq = nullptr;  // irq, or softirq vec
        tep_event* event = nullptr;
    };
    tep_handle* tep = nullptr;
    std::map<int, Known> by_id;
    std::int64_t from = 0;  // records before this are skipped
    std::vector<TraceEvent> events;
    std::uint64_t missed = 0;

    explicit Decoder(tep_handle* handle) : tep(handle) {
        for (const EventName& n : kEvents) {
            tep_event* ev = tep_find_event_by_name(tep, n.system, n.name);
            if (ev == nullptr) continue;
            Known k;
            k.type = n.type;
            k.event = ev;
            k.pid = tep_find_field(ev, "pid");
            k.comm = tep_find_field(ev, n.type == TraceEvent::Type::irq_entry ? "name" : "comm");
            k.target_cpu =
                tep_find_field(ev, n.type == TraceEvent::Type::migrate ? "dest_cpu" : "target_cpu");
            k.prev_pid = tep_find_field(ev, "prev_pid");
            k.prev_comm = tep_find_field(ev, "prev_comm");
            k.prev_state = tep_find_field(ev, "prev_state");
            k.next_pid = tep_find_field(ev, "next_pid");
            k.next_comm = tep_find_field(ev, "next_comm");
            k.irq = tep_find_field(ev, n.type == TraceEvent::Type::softirq_entry ||
                                               n.type == TraceEvent::Type::softirq_exit
                                           ? "vec"
                                           : "irq");
            by_id[ev->id] = k;
        }
    }

    static long long number(tep_format_field* f, const tep_record* rec) {
        unsigned long long v = 0;
        if (f == nullptr || tep_read_number_field(f, rec->data, &v) != 0) return 0;
        return static_cast<long long>(v);
    }
    // A char array field, or a __data_loc string.
    static std::string text(tep_format_field* f, const tep_record* rec) {
        if (f == nullptr) return {};
        const char* base = static_cast<const char*>(rec->data);
        if ((f->flags & TEP_FIELD_IS_DYNAMIC) != 0) {
            unsigned long long loc = 0;
            if (tep_read_number_field(f, rec->data, &loc) != 0) return {};
            const auto offset = static_cast<std::size_t>(loc & 0xffff);
            const auto length = static_cast<std::size_t>((loc >> 16) & 0xffff);
            if (offset + length > static_cast<std::size_t>(rec->size)) return {};
            return std::string(base + offset, ::strnlen(base + offset, length));
        }
        const auto size = static_cast<std::size_t>(f->size);
        return std::string(base + f->offset, ::strnlen(base + f->offset, size));
    }

    static int take(tep_event* event, tep_record* rec, int cpu, void* context) {
        auto& d = *static_cast<Decoder*>(context);
        if (rec->missed_events != 0)
            d.missed += rec->missed_events > 0 ? static_cast<std::uint64_t>(rec->missed_events) : 1;
        const auto ts = static_cast<std::int64_t>(rec->ts);
        if (ts < d.from) return 0;
        const auto it = d.by_id.find(event->id);
        if (it == d.by_id.end()) return 0;
        const Known& k = it->second;
        TraceEvent e;
        e.type = k.type;
        e.ts = ts;
        e.cpu = cpu;
        e.common_pid = tep_data_pid(d.tep, rec);
        switch (k.type) {
            case TraceEvent::Type::sched_switch:
                e.prev_pid = static_cast<int>(number(k.prev_pid, rec));
                e.prev_comm = text(k.prev_comm, rec);
                e.prev_state = static_cast<long>(number(k.prev_state, rec));
                e.next_pid = static_cast<int>(number(k.next_pid, rec));
                e.comm = text(k.next_comm, rec);
                break;
            case TraceEvent::Type::irq_entry:
                e.irq = static_cast<int>(number(k.irq, rec));
                e.comm = text(k.comm, rec);
                break;
            case TraceEvent::Type::irq_exit:
            case TraceEvent::Type::softirq_entry:
            case TraceEvent::Type::softirq_exit:
                e.irq = static_cast<int>(number(k.irq, rec));
                break;
            case TraceEvent::Type::hrtimer_expire:
                break;
            default:  // waking, wakeup, migrate
                e.pid = static_cast<int>(number(k.pid, rec));
                e.comm = text(k.comm, rec);
                e.target_cpu = static_cast<int>(number(k.target_cpu, rec));
                break;
        }
        d.events.push_back(std::move(e));
        return 0;
    }
};

std::string failed(const char* what, int err) {
    std::string why = std::string("key 'explain.trace': ") + what + ": " + errno_text(err);
    if (err == EACCES || err == EPERM || err == EROFS)
        why += " (tracing needs root, or a granted tracefs; see the README's drop-in)";
    return why;
}

}  // namespace

int Tracer::remove_stale_instances() {
    // Every instance, filtered here: libtracefs 1.6.4 leaks the regular expression it would
    // compile for a pattern.
    char** names = evfly_tracefs_instances(nullptr);
    if (names == nullptr) return 0;
    int removed = 0;
    const std::string_view prefix = kInstancePrefix;
    for (char** n = names; *n != nullptr; ++n) {
        const std::string_view name = *n;
        if (!name.starts_with(prefix) || name.size() == prefix.size() ||
            name.find_first_not_of("0123456789", prefix.size()) != std::string_view::npos)
            continue;
        const pid_t pid = static_cast<pid_t>(std::atoi(*n + prefix.size()));
        if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
        if (tracefs_instance* stale = evfly_tracefs_instance_alloc(*n)) {
            if (evfly_tracefs_instance_destroy(stale) == 0) ++removed;
            evfly_tracefs_instance_free(stale);
        }
    }
    evfly_tracefs_list_free(names);
    return removed;
}

Tracer::Tracer(const Config::Explain& explain, OutlierStore& store)
    : store_(store),
      name_(kInstancePrefix + std::to_string(::getpid())),
      every_ns_(explain.trace_every.count()) {}

std::unique_ptr<Tracer> Tracer::open(const Config::Explain& explain, const std::vector<int>& cpus,
                                     OutlierStore& store, std::string* why) {
    // Found once per process, and told to libtracefs: it would look for it in /proc/mounts,
    // which the hardened unit hides (ProcSubset=pid), and 1.6.4 leaks the path each time it
    // looks again, which it does on every call when the caller may not stat the directory.
    static const std::string dir = [] {
        for (const char* known : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
            struct statfs fs {};
            if (::statfs(known, &fs) == 0 && fs.f_type == kTracefsMagic &&
                evfly_tracefs_set_tracing_dir(known) == 0)
                return std::string(known);
        }
        const char* found = evfly_tracefs_tracing_dir();
        return found != nullptr ? std::string(found) : std::string();
    }();
    if (dir.empty()) {
        *why =
            failed("no tracefs (mount -t tracefs nodev /sys/kernel/tracing, then restart)", ENOENT);
        return nullptr;
    }
    // Asked before any other libtracefs call, so that the common refusal (unprivileged, or a
    // read-only tracefs under the hardened unit) is said without libtracefs's failure paths,
    // which leak.
    if (::access((dir + "/instances").c_str(), W_OK) != 0) {
        *why = failed("tracefs_instance_create", errno);
        return nullptr;
    }
    if (const int removed = remove_stale_instances(); removed > 0)
        log::emit(log::Level::info, "removed trace instances left by stopped evflyd processes",
                  {{"instances", removed}});
    std::unique_ptr<Tracer> t(new Tracer(explain, store));
    errno = 0;
    t->instance_ = evfly_tracefs_instance_create(t->name_.c_str());
    if (t->instance_ == nullptr) {
        *why = failed("tracefs_instance_create", errno != 0 ? errno : EACCES);
        return nullptr;
    }
    // From here the destructor removes the instance, whatever fails.
    const auto fail = [&](const char* what) {
        *why = failed(what, errno != 0 ? errno : EIO);
        return nullptr;
    };
    errno = 0;
    if (evfly_tracefs_trace_off(t->instance_) != 0) return fail("tracing_on");
    if (evfly_tracefs_instance_file_write(t->instance_, "trace_clock", "mono") < 0)
        return fail("trace_clock");
    if (evfly_tracefs_instance_set_buffer_size(t->instance_, explain.trace_buffer_kb) != 0)
        return fail("buffer_size_kb");
    if (!cpus.empty()) {
        std::string list;
        for (const int cpu : cpus) list += (list.empty() ? "" : ",") + std::to_string(cpu);
        if (evfly_tracefs_instance_set_affinity(t->instance_, list.c_str()) != 0)
            return fail("tracing_cpumask");
    }
    t->tep_ = evfly_tracefs_event_formats();
    if (t->tep_ == nullptr) return fail("events/header_page");
    for (const EventName& e : kEvents) {
        // hrtimer events only add timer context; a kernel without them is still traced.
        const bool optional = e.type == TraceEvent::Type::hrtimer_expire;
        if ((evfly_tracefs_event_enable(t->instance_, e.system, e.name) != 0 ||
             evfly_tracefs_parse_event_format(t->tep_, e.system, e.name) != 0) &&
            !optional)
            return fail(e.name);
    }
    if (evfly_tracefs_trace_on(t->instance_) != 0) return fail("tracing_on");
    {
        MutexLock lock(t->mutex_);
        t->status_.state = "on";
    }
    t->thread_ = std::jthread([p = t.get()](const std::stop_token& stop) { p->run(stop); });
    return t;
}

Tracer::~Tracer() {
    if (thread_.joinable()) {
        thread_.request_stop();
        wake_.notify_all();
        thread_.join();
    }
    if (tep_ != nullptr) tep_free(tep_);
    if (instance_ != nullptr) {
        (void)evfly_tracefs_trace_off(instance_);
        (void)evfly_tracefs_instance_destroy(instance_);
        evfly_tracefs_instance_free(instance_);
    }
}

void Tracer::offer(const Outlier& o) {
    {
        MutexLock lock(mutex_);
        const std::int64_t now = steady_ns();
        if (pending_ || (last_analysis_ns_ != 0 && now - last_analysis_ns_ < every_ns_)) {
            ++status_.skipped;
            return;
        }
        last_analysis_ns_ = now;
        pending_ = o;
    }
    wake_.notify_one();
}

TraceStatus Tracer::status() const {
    MutexLock lock(mutex_);
    return status_;
}

void Tracer::run(const std::stop_token& stop) {
    log::set_thread_name("tracer");
    // Decoding must never compete with the pool: the lowest priority there is.
    sched_param param{};
    (void)::sched_setscheduler(0, SCHED_IDLE, &param);
    for (;;) {
        Outlier o;
        {
            MutexLock lock(mutex_);
            wake_.wait(lock, stop, [this]() REQUIRES(mutex_) { return pending_.has_value(); });
            if (stop.stop_requested()) return;
            o = std::move(*pending_);
            pending_.reset();
        }
        try {
            analyze(o);
        } catch (const std::exception& e) {
            log::emit(log::Level::err, "trace analysis failed", {{"error", e.what()}});
        }
    }
}

void Tracer::analyze(const Outlier& o) {
    // Stop the ring so that what is read is the window around the outlier, not what follows;
    // reading consumes it, and tracing resumes after.
    (void)evfly_tracefs_trace_off(instance_);
    Decoder decoder(tep_);
    decoder.from = o.due_ns - 2'000'000;
    (void)evfly_tracefs_iterate_raw_events(tep_, instance_, &Decoder::take, &decoder);
    (void)evfly_tracefs_trace_on(instance_);
    TraceExplanation e = analyze_trace(decoder.events, o);
    e.missed_events = decoder.missed;
    store_.attach_trace(o.id, to_json(e, o));
    {
        MutexLock lock(mutex_);
        ++status_.analyses;
        status_.missed_events += decoder.missed;
    }
    const TaskTime top = e.ran_instead.empty() ? TaskTime{} : e.ran_instead.front();
    const TaskTime irq = e.irqs.empty() ? TaskTime{} : e.irqs.front();
    log::emit(log::Level::warn, "outlier explained",
              {{"id", o.id},
               {"producer", o.producer},
               {"cause", to_string(o.cause)},
               {"latency_us", static_cast<double>(o.latency_ns) / 1e3},
               {"found_wakeup", e.found_wakeup},
               {"waker", e.waker_comm},
               {"waker_pid", e.waker_pid},
               {"wakee_cpu", e.wakee_cpu},
               {"from_idle", e.from_idle},
               {"runnable_us", static_cast<double>(e.runnable_ns) / 1e3},
               {"ran_instead", top.comm},
               {"ran_instead_pid", top.pid},
               {"ran_instead_us", static_cast<double>(top.ns) / 1e3},
               {"top_irq", irq.comm},
               {"top_irq_us", static_cast<double>(irq.ns) / 1e3},
               {"handler_preempted_us", static_cast<double>(e.handler_preempted_ns) / 1e3},
               {"missed_events", decoder.missed}});
}

}  // namespace evfly::detail
