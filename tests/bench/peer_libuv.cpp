// evfly_peer_libuv: the benchmark workloads as a libuv user would write them. One uv_loop per
// consumer thread; producer threads signal with uv_async_send (libuv's only cross-thread wake-up,
// itself an eventfd that coalesces like evflyd's persistent mode, so the value travels in an
// atomic beside it); timers are uv_timer repeats. libuv cannot create a handle from a foreign
// thread, so there is no per-event workload.
#include <uv.h>

#include <memory>
#include <thread>

#include "bench_common.h"

namespace {

using bench::Options;
using bench::Padded;
using bench::Samples;

struct Consumer {
    uv_loop_t loop{};
    uv_async_t stop{};
    std::uint64_t values = 0;
    std::uint64_t reads = 0;
    Samples latency;
};

struct Channel {
    uv_async_t async{};
    Consumer* consumer = nullptr;
    alignas(64) std::atomic<std::uint64_t> pending{0};
    std::atomic<std::int64_t> stamp{0};
};

struct Timer {
    uv_timer_t handle{};
    Consumer* consumer = nullptr;
    std::int64_t period_ns = 0;
    std::int64_t due = 0;
    std::uint64_t expirations = 0;
};

void on_stop(uv_async_t* async) { uv_stop(async->loop); }

void on_async(uv_async_t* async) {
    auto* c = static_cast<Channel*>(async->data);
    const std::uint64_t v = c->pending.exchange(0, std::memory_order_acquire);
    if (v == 0) return;
    c->consumer->values += v;
    ++c->consumer->reads;
    const std::int64_t stamp = c->stamp.exchange(0, std::memory_order_relaxed);
    if (stamp != 0) c->consumer->latency.add(bench::now_ns() - stamp);
}

void on_timer(uv_timer_t* handle) {
    auto* t = static_cast<Timer*>(handle->data);
    const std::int64_t now = bench::now_ns();
    t->consumer->latency.add(now - t->due);
    ++t->consumer->values;
    ++t->consumer->reads;
    ++t->expirations;
    // libuv re-arms a repeating timer from the loop's cached time when the callback runs, so its
    // next due time is this run plus the period: lateness is measured against that schedule.
    t->due = now + t->period_ns;
}

class Peer {
  public:
    explicit Peer(const Options& o) : o_(o), consumers_(static_cast<std::size_t>(o.consumers)) {
        for (auto& c : consumers_) {
            c = std::make_unique<Consumer>();
            uv_loop_init(&c->loop);
            uv_async_init(&c->loop, &c->stop, on_stop);
        }
    }

    void start() {
        for (std::size_t i = 0; i < consumers_.size(); ++i) {
            threads_.emplace_back([this, i] {
                bench::name_thread(("consumer-" + std::to_string(i)).c_str());
                uv_run(&consumers_[i]->loop, UV_RUN_DEFAULT);
            });
        }
    }

    void stop() {
        for (auto& c : consumers_) uv_async_send(&c->stop);
        for (auto& t : threads_) t.join();
    }

    bench::Result totals(double elapsed) {
        std::uint64_t values = 0, reads = 0;
        Samples all;
        for (auto& c : consumers_) {
            values += c->values;
            reads += c->reads;
            all.merge(c->latency);
        }
        return bench::totals(elapsed, values, reads, all);
    }

    void persistent() {
        const auto n = static_cast<std::size_t>(o_.producers);
        auto channels = std::make_unique<Channel[]>(n);
        for (std::size_t i = 0; i < n; ++i) {
            Consumer& c = *consumers_[i % consumers_.size()];
            channels[i].consumer = &c;
            channels[i].async.data = &channels[i];
            uv_async_init(&c.loop, &channels[i].async, on_async);
        }
        start();
        std::atomic<bool> stop_flag{false};
        std::vector<std::thread> producers;
        const std::int64_t begin = bench::now_ns();
        for (std::size_t i = 0; i < n; ++i) {
            producers.emplace_back([this, &channels, &stop_flag, i, n, begin] {
                Channel& c = channels[i];
                bench::Pacer pacer(o_.rate, begin, i, n);
                while (!stop_flag.load(std::memory_order_relaxed)) {
                    pacer.wait();
                    if (pacer.paced()) bench::stamp_if_unset(c.stamp, pacer.due());
                    c.pending.fetch_add(1, std::memory_order_release);
                    uv_async_send(&c.async);
                }
            });
        }
        bench::sleep_until_ns(begin + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop_flag = true;
        for (auto& t : producers) t.join();
        const double elapsed = static_cast<double>(bench::now_ns() - begin) / 1e9;
        stop();
        for (std::size_t i = 0; i < n; ++i) consumers_[0]->values += channels[i].pending.load();
        totals(elapsed).str("workload", "persistent").resources().print();
    }

    void timer() {
        const auto n = static_cast<std::size_t>(o_.timers);
        auto timers = std::make_unique<Timer[]>(n);
        const auto period_ms = static_cast<std::uint64_t>(o_.period_ns / 1'000'000);
        const std::int64_t begin = bench::now_ns();
        for (std::size_t i = 0; i < n; ++i) {
            Consumer& c = *consumers_[i % consumers_.size()];
            Timer& t = timers[i];
            t.consumer = &c;
            t.period_ns = o_.period_ns;
            t.due = begin + o_.period_ns;
            t.handle.data = &t;
            uv_timer_init(&c.loop, &t.handle);
            uv_timer_start(&t.handle, on_timer, period_ms, period_ms);
        }
        start();
        bench::sleep_until_ns(begin + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop();
        const double elapsed = static_cast<double>(bench::now_ns() - begin) / 1e9;
        std::uint64_t expirations = 0;
        for (std::size_t i = 0; i < n; ++i) expirations += timers[i].expirations;
        totals(elapsed)
            .str("workload", "timer")
            .num("expirations", static_cast<double>(expirations))
            .num("overruns", 0)
            .resources()
            .print();
    }

    void idle() {
        start();
        bench::sleep_until_ns(bench::now_ns() + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop();
        totals(o_.seconds).str("workload", "idle").resources().print();
    }

  private:
    const Options& o_;
    std::vector<std::unique_ptr<Consumer>> consumers_;
    std::vector<std::thread> threads_;
};

}  // namespace

int main(int argc, char** argv) {
    const Options o = bench::parse_options(argc, argv);
    Peer peer(o);
    if (o.workload == "persistent" || o.workload == "paced")
        peer.persistent();
    else if (o.workload == "timer")
        peer.timer();
    else if (o.workload == "idle")
        peer.idle();
    else {
        std::fprintf(stderr, "evfly_peer_libuv: workload '%s' has no libuv equivalent\n",
                     o.workload.c_str());
        return 65;
    }
    return 0;
}
