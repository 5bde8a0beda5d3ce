// evfly_peer_asio: the benchmark workloads as a Boost.Asio user would write them. One io_context
// run by every consumer thread; producers post() a handler per event (no fd per event: a
// different job from evflyd's, done in a mutex-guarded queue), at most --max-in-flight per
// producer outstanding; timers are steady_timers re-armed on absolute expiries.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <thread>

#include "bench_common.h"

namespace {

using bench::Options;
using bench::Padded;
using bench::Samples;
namespace asio = boost::asio;

struct Consumer {
    std::uint64_t values = 0;
    std::uint64_t reads = 0;
    Samples latency;
};

thread_local Consumer* t_consumer = nullptr;

struct Timer {
    explicit Timer(asio::io_context& ctx) : timer(ctx) {}
    asio::steady_timer timer;
    std::chrono::steady_clock::time_point due;
    std::chrono::nanoseconds period{};
    std::uint64_t expirations = 0;
};

void arm(Timer& t) {
    t.timer.expires_at(t.due);
    t.timer.async_wait([&t](const boost::system::error_code& ec) {
        if (ec) return;
        const auto late = std::chrono::steady_clock::now() - t.due;
        t_consumer->latency.add(std::chrono::duration_cast<std::chrono::nanoseconds>(late).count());
        ++t_consumer->values;
        ++t_consumer->reads;
        ++t.expirations;
        t.due += t.period;
        arm(t);
    });
}

class Peer {
  public:
    explicit Peer(const Options& o)
        : o_(o),
          ctx_(o.consumers),
          work_(asio::make_work_guard(ctx_)),
          consumers_(static_cast<std::size_t>(o.consumers)) {}

    void start() {
        for (std::size_t i = 0; i < consumers_.size(); ++i) {
            consumers_[i] = std::make_unique<Consumer>();
            threads_.emplace_back([this, i] {
                bench::name_thread(("consumer-" + std::to_string(i)).c_str());
                t_consumer = consumers_[i].get();
                ctx_.run();
            });
        }
    }

    void stop() {
        work_.reset();
        ctx_.stop();
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

    // Both eventfd workloads are one post() per event here: there is no fd to create or reuse.
    void post_events(const char* workload) {
        start();
        const auto n = static_cast<std::size_t>(o_.producers);
        auto outstanding = std::make_unique<Padded<std::atomic<int>>[]>(n);
        const bool paced = o_.rate > 0;
        std::atomic<bool> stop_flag{false};
        std::vector<std::thread> producers;
        const std::int64_t begin = bench::now_ns();
        for (std::size_t i = 0; i < n; ++i) {
            producers.emplace_back([this, &outstanding, &stop_flag, i, n, paced, begin] {
                auto& count = outstanding[i].value;
                bench::Pacer pacer(o_.rate, begin, i, n);
                while (!stop_flag.load(std::memory_order_relaxed)) {
                    pacer.wait();
                    int current = count.load(std::memory_order_acquire);
                    while (current >= o_.max_in_flight) {
                        count.wait(current, std::memory_order_acquire);
                        current = count.load(std::memory_order_acquire);
                    }
                    count.fetch_add(1, std::memory_order_relaxed);
                    const std::int64_t stamp = paced ? pacer.due() : 0;
                    asio::post(ctx_, [this, &count, stamp] {
                        ++t_consumer->values;
                        ++t_consumer->reads;
                        if (stamp != 0) t_consumer->latency.add(bench::now_ns() - stamp);
                        const int before = count.fetch_sub(1, std::memory_order_release);
                        if (before == o_.max_in_flight || before == 1) count.notify_one();
                    });
                }
                for (int left = count.load(); left != 0; left = count.load()) count.wait(left);
            });
        }
        bench::sleep_until_ns(begin + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop_flag = true;
        for (auto& t : producers) t.join();
        const double elapsed = static_cast<double>(bench::now_ns() - begin) / 1e9;
        stop();
        totals(elapsed).str("workload", workload).resources().print();
    }

    void timer() {
        start();
        std::vector<std::unique_ptr<Timer>> timers;
        const std::int64_t begin = bench::now_ns();
        for (int i = 0; i < o_.timers; ++i) {
            auto t = std::make_unique<Timer>(ctx_);
            t->period = std::chrono::nanoseconds(o_.period_ns);
            timers.push_back(std::move(t));
        }
        // One phase for all: the first expiry one period from now, as evflyd arms its timers.
        const auto first =
            std::chrono::steady_clock::now() + std::chrono::nanoseconds(o_.period_ns);
        for (auto& t : timers) {
            t->due = first;
            asio::post(ctx_, [&t] { arm(*t); });
        }
        bench::sleep_until_ns(begin + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop();
        const double elapsed = static_cast<double>(bench::now_ns() - begin) / 1e9;
        std::uint64_t expirations = 0;
        for (auto& t : timers) expirations += t->expirations;
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
    asio::io_context ctx_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::vector<std::unique_ptr<Consumer>> consumers_;
    std::vector<std::thread> threads_;
};

}  // namespace

int main(int argc, char** argv) try {
    const Options o = bench::parse_options(argc, argv);
    Peer peer(o);
    if (o.workload == "persistent" || o.workload == "paced" || o.workload == "per-event")
        peer.post_events(o.workload.c_str());
    else if (o.workload == "timer")
        peer.timer();
    else if (o.workload == "idle")
        peer.idle();
    else {
        std::fprintf(stderr, "evfly_peer_asio: unknown workload '%s'\n", o.workload.c_str());
        return 65;
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "evfly_peer_asio: %s\n", e.what());
    return 1;
}
