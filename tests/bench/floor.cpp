// evfly_floor: each benchmark workload done with raw syscalls and nothing else, the physical limit
// of this machine for it. With --pipe the channels are pipes instead of eventfds.
//
//   persistent  P producers each write 1 to their own channel (flat out, or --rate per producer);
//               C consumers epoll_wait on one EPOLLET epoll and read. With --rate, the latency from
//               the oldest unread write to the read that drains it is recorded.
//   per-event   a fresh channel per event: create, register (EPOLLET|EPOLLONESHOT), write; the
//               consumer reads and closes. At most --max-in-flight outstanding per producer.
//               With --create: eventfd(1) born fired, registered, read, closed (4 syscalls).
//   overload    per-event at --rate per producer, each event costing the consumer --work-us:
//               more than the pool can take. Latency is counted the honest way, from when each
//               event was due (latency_ns), and apart from it from the write (delivery_ns, what a
//               write-stamped measurement reports); fires more than 1 s behind are skipped and
//               counted, as evflyd does.
//   timer       --timers timerfds of period --period-us on absolute expiries; lateness per read.
//   idle        C consumers blocked in epoll_wait with nothing due.
//   channels    --channels channels registered at once: fds and kernel memory per channel, then
//               P producers write round-robin across them flat out.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <thread>

#include "bench_common.h"

namespace {

using bench::Options;
using bench::Padded;
using bench::Samples;

constexpr std::uint64_t kStopToken = ~std::uint64_t{0};

struct Channel {
    int read_fd = -1;
    int write_fd = -1;
    std::atomic<std::int64_t> stamp{0};    // due time of the oldest unread write, 0 if none
    std::atomic<std::int64_t> written{0};  // and when it was written (paced only)
};

struct Consumer {
    Padded<std::uint64_t> values;
    Padded<std::uint64_t> reads;
    Padded<std::uint64_t> wakeups;
    Samples latency;
    Samples delivery;  // overload and paced: write to consumed
};

class Floor {
  public:
    explicit Floor(const Options& o) : o_(o) {
        epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
        stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (epfd_ < 0 || stop_fd_ < 0) bench::die("epoll/eventfd");
        epoll_event ev{};
        ev.events = EPOLLIN;  // level-triggered and never read: every consumer sees it
        ev.data.u64 = kStopToken;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, stop_fd_, &ev) != 0) bench::die("epoll_ctl stop");
        consumers_ = std::make_unique<Consumer[]>(static_cast<std::size_t>(o.consumers));
    }

    void open_channel(Channel& c, std::uint64_t token, std::uint32_t events) const {
        make_channel(c);
        watch(c.read_fd, events, token);
    }

    void make_channel(Channel& c) const {
        if (o_.pipe) {
            int fds[2];
            if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) bench::die("pipe2");
            c.read_fd = fds[0];
            c.write_fd = fds[1];
        } else {
            c.read_fd = c.write_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (c.read_fd < 0) bench::die("eventfd");
        }
    }

    void watch(int fd, std::uint32_t events, std::uint64_t token) const {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = token;
        if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) bench::die("epoll_ctl add");
    }

    // One write of one unit: 8 bytes to an eventfd, 1 byte to a pipe.
    void fire(int fd) const {
        const std::uint64_t one = 1;
        const std::size_t size = o_.pipe ? 1 : sizeof one;
        while (::write(fd, &one, size) != static_cast<ssize_t>(size)) {
            if (errno != EAGAIN) bench::die("write");
            std::this_thread::yield();  // a full pipe: let a consumer drain it
        }
    }

    // One read: the eventfd's counter, or every byte queued in the pipe.
    std::uint64_t drain(int fd) const {
        if (o_.pipe) {
            char buf[65536];
            const ssize_t n = ::read(fd, buf, sizeof buf);
            return n > 0 ? static_cast<std::uint64_t>(n) : 0;
        }
        std::uint64_t value = 0;
        return ::read(fd, &value, sizeof value) == sizeof value ? value : 0;
    }

    template <typename Handle>
    void run_consumers(Handle handle) {
        for (int i = 0; i < o_.consumers; ++i) {
            threads_.emplace_back([this, i, handle] {
                bench::name_thread(("consumer-" + std::to_string(i)).c_str());
                bench::pin(o_.consumer_cpus, i);
                bench::set_policy(o_.consumer_policy, o_.consumer_priority);
                Consumer& me = consumers_[static_cast<std::size_t>(i)];
                std::vector<epoll_event> events(static_cast<std::size_t>(o_.max_events));
                std::int64_t spin_until = 0;  // --spin-us: poll after work, as evflyd's spin
                for (;;) {
                    int n = 0;
                    if (spin_until != 0 && bench::now_ns() < spin_until) {
                        n = ::epoll_wait(epfd_, events.data(), o_.max_events, 0);
                        if (n == 0) continue;
                    } else {
                        n = ::epoll_wait(epfd_, events.data(), o_.max_events, -1);
                    }
                    if (n <= 0) continue;
                    if (o_.spin_ns != 0) spin_until = bench::now_ns() + o_.spin_ns;
                    ++me.wakeups.value;
                    for (int k = 0; k < n; ++k) {
                        const std::uint64_t token = events[static_cast<std::size_t>(k)].data.u64;
                        if (token == kStopToken) return;
                        handle(me, token);
                    }
                }
            });
        }
    }

    void stop_consumers() {
        const std::uint64_t one = 1;
        if (::write(stop_fd_, &one, sizeof one) != sizeof one) bench::die("write stop");
        for (auto& t : threads_) t.join();
        threads_.clear();
    }

    bench::Result totals(double elapsed) {
        std::uint64_t values = 0, reads = 0, wakeups = 0;
        Samples all;
        for (int i = 0; i < o_.consumers; ++i) {
            Consumer& c = consumers_[static_cast<std::size_t>(i)];
            values += c.values.value;
            reads += c.reads.value;
            wakeups += c.wakeups.value;
            all.merge(c.latency);
        }
        bench::Result r = bench::totals(elapsed, values, reads, all);
        r.num("wakeups_per_s", static_cast<double>(wakeups) / elapsed);
        return r;
    }

    void persistent() {
        const auto n = static_cast<std::size_t>(o_.producers);
        auto channels = std::make_unique<Channel[]>(n);
        const std::uint32_t events = EPOLLIN | EPOLLET | (o_.oneshot ? EPOLLONESHOT : 0u);
        for (std::size_t i = 0; i < n; ++i) open_channel(channels[i], i, events);
        if (o_.pipe) {  // a blocking write end: a full pipe parks the producer in the kernel
            for (std::size_t i = 0; i < n; ++i) ::fcntl(channels[i].write_fd, F_SETFL, 0);
        }
        const bool paced = o_.rate > 0;
        run_consumers([this, &channels, paced, events](Consumer& me, std::uint64_t token) {
            Channel& c = channels[token];
            const std::uint64_t v = drain(c.read_fd);
            if (v != 0) {
                me.values.value += v;
                ++me.reads.value;
                if (paced) {
                    const std::int64_t stamp = c.stamp.exchange(0, std::memory_order_acq_rel);
                    const std::int64_t written = c.written.load(std::memory_order_relaxed);
                    if (stamp != 0) {
                        const std::int64_t now = bench::now_ns();
                        me.latency.add(now - stamp);
                        me.delivery.add(now - written);
                    }
                }
            }
            if (o_.oneshot) {
                epoll_event ev{};
                ev.events = events;
                ev.data.u64 = token;
                ::epoll_ctl(epfd_, EPOLL_CTL_MOD, c.read_fd, &ev);
            }
        });
        std::atomic<bool> stop{false};
        std::vector<std::thread> producers;
        const std::int64_t start = bench::now_ns();
        for (std::size_t i = 0; i < n; ++i) {
            producers.emplace_back([this, &channels, &stop, i, n, start] {
                bench::name_thread("producer");
                bench::pin(o_.producer_cpus, static_cast<int>(i));
                Channel& c = channels[i];
                bench::Pacer pacer(o_.rate, start, i, n);
                while (!stop.load(std::memory_order_relaxed)) {
                    pacer.wait();
                    // As evflyd: only the producer stores a non-zero stamp, so a load decides.
                    if (pacer.paced() && c.stamp.load(std::memory_order_relaxed) == 0) {
                        c.written.store(bench::now_ns(), std::memory_order_relaxed);
                        c.stamp.store(pacer.due(), std::memory_order_release);
                    }
                    fire(c.write_fd);
                }
            });
        }
        bench::sleep_until_ns(start + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop = true;
        for (auto& t : producers) t.join();
        const double elapsed = static_cast<double>(bench::now_ns() - start) / 1e9;
        // Whatever the consumers have not read yet still counts as delivered at the end.
        for (std::size_t i = 0; i < n; ++i)
            consumers_[0].values.value += drain(channels[i].read_fd);
        stop_consumers();
        bench::Result r = totals(elapsed);
        if (paced) {
            Samples delivery;
            for (int i = 0; i < o_.consumers; ++i)
                delivery.merge(consumers_[static_cast<std::size_t>(i)].delivery);
            r.latency("delivery_ns", delivery);
        }
        r.str("workload", o_.pipe ? "persistent-pipe" : "persistent").resources().print();
    }

    void per_event() {
        const auto n = static_cast<std::size_t>(o_.producers);
        auto outstanding = std::make_unique<Padded<std::atomic<int>>[]>(n);
        // Token: the producer in the high half, the read fd in the low half.
        run_consumers([this, &outstanding](Consumer& me, std::uint64_t token) {
            const int fd = static_cast<int>(token & 0xffffffffu);
            me.values.value += drain(fd);
            ++me.reads.value;
            ::close(fd);
            auto& count = outstanding[token >> 32].value;
            // Wake the producer when it may be waiting: at its limit, or for its last fd at the
            // end.
            const int before = count.fetch_sub(1, std::memory_order_release);
            if (before == o_.max_in_flight || before == 1) count.notify_one();
        });
        std::atomic<bool> stop{false};
        std::vector<std::thread> producers;
        const std::int64_t start = bench::now_ns();
        for (std::size_t i = 0; i < n; ++i) {
            producers.emplace_back([this, &outstanding, &stop, i] {
                bench::name_thread("producer");
                bench::pin(o_.producer_cpus, static_cast<int>(i));
                auto& count = outstanding[i].value;
                while (!stop.load(std::memory_order_relaxed)) {
                    int current = count.load(std::memory_order_acquire);
                    while (current >= o_.max_in_flight) {
                        count.wait(current, std::memory_order_acquire);
                        current = count.load(std::memory_order_acquire);
                    }
                    count.fetch_add(1, std::memory_order_relaxed);
                    Channel c;
                    if (o_.create) {
                        // The 4-syscall lifecycle: born fired, registering it is the fire.
                        c.read_fd = c.write_fd = ::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
                        if (c.read_fd < 0) bench::die("eventfd");
                    } else {
                        make_channel(c);
                    }
                    watch(c.read_fd, EPOLLIN | EPOLLET | EPOLLONESHOT,
                          (std::uint64_t{i} << 32) | static_cast<std::uint32_t>(c.read_fd));
                    if (!o_.create) fire(c.write_fd);
                    if (o_.pipe) ::close(c.write_fd);
                }
                // Wait for the consumers to close every fd this producer made.
                for (int left = count.load(); left != 0; left = count.load()) count.wait(left);
            });
        }
        bench::sleep_until_ns(start + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop = true;
        for (auto& t : producers) t.join();
        const double elapsed = static_cast<double>(bench::now_ns() - start) / 1e9;
        stop_consumers();
        totals(elapsed)
            .str("workload", o_.pipe ? "per-event-pipe" : "per-event")
            .resources()
            .print();
    }

    void overload() {
        constexpr std::int64_t kMaxCatchUpNs = 1'000'000'000;
        constexpr std::size_t kMaxFd = std::size_t{1} << 17;
        struct Stamps {
            std::atomic<std::int64_t> due{0};
            std::atomic<std::int64_t> written{0};
        };
        auto stamps = std::make_unique<Stamps[]>(kMaxFd);
        const auto n = static_cast<std::size_t>(o_.producers);
        auto outstanding = std::make_unique<Padded<std::atomic<int>>[]>(n);
        run_consumers([this, &outstanding, &stamps](Consumer& me, std::uint64_t token) {
            const int fd = static_cast<int>(token & 0xffffffffu);
            me.values.value += drain(fd);
            ++me.reads.value;
            Stamps& st = stamps[static_cast<std::size_t>(fd)];
            const std::int64_t written = st.written.load(std::memory_order_acquire);
            const std::int64_t due = st.due.load(std::memory_order_relaxed);
            const std::int64_t now = bench::now_ns();
            me.latency.add(now - due);
            me.delivery.add(now - written);
            for (const std::int64_t until = now + o_.work_ns; bench::now_ns() < until;) {
            }
            ::close(fd);
            auto& count = outstanding[token >> 32].value;
            const int before = count.fetch_sub(1, std::memory_order_release);
            if (before == o_.max_in_flight || before == 1) count.notify_one();
        });
        std::atomic<bool> stop{false};
        std::vector<std::thread> producers;
        std::vector<Padded<std::uint64_t>> fired(n), skipped(n);
        const std::int64_t period = 1'000'000'000 / static_cast<std::int64_t>(o_.rate);
        const std::int64_t start = bench::now_ns();
        for (std::size_t i = 0; i < n; ++i) {
            producers.emplace_back([&, i] {
                bench::name_thread("producer");
                bench::pin(o_.producer_cpus, static_cast<int>(i));
                auto& count = outstanding[i].value;
                std::int64_t due =
                    start + period * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(n);
                while (!stop.load(std::memory_order_relaxed)) {
                    bench::sleep_until_ns(due);
                    if (const std::int64_t behind = bench::now_ns() - due; behind > kMaxCatchUpNs) {
                        skipped[i].value += static_cast<std::uint64_t>(behind / period);
                        due += behind / period * period;
                    }
                    int current = count.load(std::memory_order_acquire);
                    while (current >= o_.max_in_flight) {
                        count.wait(current, std::memory_order_acquire);
                        current = count.load(std::memory_order_acquire);
                    }
                    count.fetch_add(1, std::memory_order_relaxed);
                    Channel c;
                    make_channel(c);
                    Stamps& st = stamps[static_cast<std::size_t>(c.read_fd)];
                    st.due.store(due, std::memory_order_relaxed);
                    st.written.store(bench::now_ns(), std::memory_order_release);
                    watch(c.read_fd, EPOLLIN | EPOLLET | EPOLLONESHOT,
                          (std::uint64_t{i} << 32) | static_cast<std::uint32_t>(c.read_fd));
                    fire(c.write_fd);
                    ++fired[i].value;
                    due += period;
                }
                for (int left = count.load(); left != 0; left = count.load()) count.wait(left);
            });
        }
        const std::int64_t end = start + static_cast<std::int64_t>(o_.seconds * 1e9);
        bench::sleep_until_ns(end);
        stop = true;
        for (auto& t : producers) t.join();
        const double elapsed = static_cast<double>(bench::now_ns() - start) / 1e9;
        stop_consumers();
        std::uint64_t total_fired = 0, total_skipped = 0;
        for (std::size_t i = 0; i < n; ++i) {
            total_fired += fired[i].value;
            total_skipped += skipped[i].value;
        }
        // Due: every fire the schedules called for before the stop, as evflyd counts it (a fire
        // due within the last period is not yet owed).
        const auto due = static_cast<std::uint64_t>((end - period - start) / period) * n + n;
        Samples delivery;
        for (int i = 0; i < o_.consumers; ++i)
            delivery.merge(consumers_[static_cast<std::size_t>(i)].delivery);
        bench::Result r = totals(elapsed);
        r.latency("delivery_ns", delivery)
            .num("due", static_cast<double>(due))
            .num("fired", static_cast<double>(total_fired))
            .num("skipped", static_cast<double>(std::max(due, total_fired) - total_fired))
            .num("skipped_catching_up", static_cast<double>(total_skipped))
            .str("workload", "overload")
            .resources()
            .print();
    }

    void timer() {
        const auto n = static_cast<std::size_t>(o_.timers);
        struct Timer {
            int fd = -1;
            std::int64_t due = 0;
            std::uint64_t expirations = 0;
        };
        std::vector<Timer> timers(n);
        // One phase for all: the first expiry one period from now, as evflyd arms its timers.
        const std::int64_t first = bench::now_ns() + o_.period_ns;
        for (std::size_t i = 0; i < n; ++i) {
            timers[i].fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
            if (timers[i].fd < 0) bench::die("timerfd_create");
            timers[i].due = first;
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLET | EPOLLONESHOT;  // one consumer per timer at a time
            ev.data.u64 = i;
            if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, timers[i].fd, &ev) != 0) bench::die("add");
            itimerspec spec{};
            spec.it_value = bench::to_timespec(first);
            spec.it_interval = bench::to_timespec(o_.period_ns);
            if (::timerfd_settime(timers[i].fd, TFD_TIMER_ABSTIME, &spec, nullptr) != 0)
                bench::die("timerfd_settime");
        }
        std::vector<Padded<std::uint64_t>> overruns(static_cast<std::size_t>(o_.consumers));
        run_consumers([this, &timers](Consumer& me, std::uint64_t token) {
            Timer& t = timers[token];
            std::uint64_t ticks = 0;
            if (::read(t.fd, &ticks, sizeof ticks) == sizeof ticks && ticks > 0) {
                me.latency.add(bench::now_ns() - t.due);
                t.due += static_cast<std::int64_t>(ticks) * o_.period_ns;
                t.expirations += ticks;
                me.values.value += ticks;
                ++me.reads.value;
            }
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLET | EPOLLONESHOT;
            ev.data.u64 = token;
            ::epoll_ctl(epfd_, EPOLL_CTL_MOD, t.fd, &ev);
        });
        const std::int64_t start = bench::now_ns();
        bench::sleep_until_ns(start + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop_consumers();
        const double elapsed = static_cast<double>(bench::now_ns() - start) / 1e9;
        bench::Result r = totals(elapsed);
        std::uint64_t expirations = 0, reads = 0;
        for (int i = 0; i < o_.consumers; ++i)
            reads += consumers_[static_cast<std::size_t>(i)].reads.value;
        for (const Timer& t : timers) expirations += t.expirations;
        r.num("expirations", static_cast<double>(expirations))
            .num("overruns", static_cast<double>(expirations - reads))
            .str("workload", "timer")
            .resources()
            .print();
    }

    void idle() {
        Channel never;
        open_channel(never, 0, EPOLLIN | EPOLLET);
        run_consumers([](Consumer&, std::uint64_t) {});
        const std::int64_t start = bench::now_ns();
        bench::sleep_until_ns(start + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop_consumers();
        totals(o_.seconds).str("workload", "idle").resources().print();
    }

    void channels() {
        const auto n = static_cast<std::size_t>(o_.channels);
        const long slab_before = meminfo_kib("Slab:");
        const long free_before = meminfo_kib("MemFree:");
        const int fds_before = count_fds();
        auto channels = std::make_unique<Channel[]>(n);
        for (std::size_t i = 0; i < n; ++i) open_channel(channels[i], i, EPOLLIN | EPOLLET);
        const double fds_per_channel =
            static_cast<double>(count_fds() - fds_before) / static_cast<double>(n);
        const long slab_idle = meminfo_kib("Slab:");
        const long free_idle = meminfo_kib("MemFree:");
        for (std::size_t i = 0; i < n; ++i) fire(channels[i].write_fd);  // one unit queued in each
        const long free_queued = meminfo_kib("MemFree:");
        for (std::size_t i = 0; i < n; ++i) drain(channels[i].read_fd);
        run_consumers([this, &channels](Consumer& me, std::uint64_t token) {
            const std::uint64_t v = drain(channels[token].read_fd);
            if (v == 0) return;
            me.values.value += v;
            ++me.reads.value;
        });
        std::atomic<bool> stop{false};
        std::vector<std::thread> producers;
        const std::int64_t start = bench::now_ns();
        const std::size_t per = n / static_cast<std::size_t>(o_.producers);
        producers.reserve(static_cast<std::size_t>(o_.producers));
        for (int p = 0; p < o_.producers; ++p) {
            producers.emplace_back([this, &channels, &stop, per, p] {
                const std::size_t first = per * static_cast<std::size_t>(p);
                for (std::size_t k = 0; !stop.load(std::memory_order_relaxed); k = (k + 1) % per)
                    fire(channels[first + k].write_fd);
            });
        }
        bench::sleep_until_ns(start + static_cast<std::int64_t>(o_.seconds * 1e9));
        stop = true;
        for (auto& t : producers) t.join();
        const double elapsed = static_cast<double>(bench::now_ns() - start) / 1e9;
        stop_consumers();
        const double per_channel = static_cast<double>(n);
        totals(elapsed)
            .str("workload", o_.pipe ? "channels-pipe" : "channels")
            .num("channels", per_channel)
            .num("fds_per_channel", fds_per_channel)
            .num("slab_kib_per_channel", static_cast<double>(slab_idle - slab_before) / per_channel)
            .num("kernel_kib_per_channel",
                 static_cast<double>(free_before - free_idle) / per_channel)
            .num("queued_kib_per_channel",
                 static_cast<double>(free_idle - free_queued) / per_channel)
            .resources()
            .print();
    }

  private:
    static long meminfo_kib(const std::string& field) {
        std::ifstream in("/proc/meminfo");
        std::string key;
        long value = 0;
        std::string unit;
        while (in >> key >> value >> unit)
            if (key == field) return value;
        return 0;
    }
    static int count_fds() {
        int n = 0;
        for (int fd = 0; fd < 1 << 17; ++fd)
            if (::fcntl(fd, F_GETFD) >= 0) ++n;
        return n;
    }

    const Options& o_;
    int epfd_ = -1;
    int stop_fd_ = -1;
    std::unique_ptr<Consumer[]> consumers_;
    std::vector<std::thread> threads_;
};

}  // namespace

int main(int argc, char** argv) {
    Options o = bench::parse_options(argc, argv);
    // 10 000 pipes need 20 000 fds. Raise the limit as far as this process may; where the hard
    // limit is lower, measure as many channels as fit (the result says how many).
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    const int per_channel = o.pipe ? 2 : 1;
    const rlim_t want = static_cast<rlim_t>(o.channels) * static_cast<rlim_t>(per_channel) + 256;
    rlimit raised{std::max(lim.rlim_cur, want), std::max(lim.rlim_max, want)};
    if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
        if (lim.rlim_cur < want)
            o.channels = static_cast<int>((lim.rlim_cur - 256) / static_cast<rlim_t>(per_channel));
    }
    Floor floor(o);
    if (o.workload == "persistent" || o.workload == "paced")
        floor.persistent();
    else if (o.workload == "per-event")
        floor.per_event();
    else if (o.workload == "overload")
        floor.overload();
    else if (o.workload == "timer")
        floor.timer();
    else if (o.workload == "idle")
        floor.idle();
    else if (o.workload == "channels")
        floor.channels();
    else {
        std::fprintf(stderr, "evfly_floor: unknown workload '%s'\n", o.workload.c_str());
        return 64;
    }
    return 0;
}
