// The /metrics endpoint ([metrics] listen): the Prometheus text over HTTP, freshly rendered at
// each scrape. civetweb (Debian's libcivetweb) parses the requests on a small, bounded pool of
// its own threads; a scrape is handed to the supervisor thread, which alone reads the engine,
// through a ScrapeBroker, and the text handed back. Only GET /metrics and / answer.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "episode.h"
#include "evfly/fd.h"
#include "thread_annotations.h"

struct mg_context;

namespace evfly {

// An address to listen on: an IPv4 literal or a bracketed IPv6 literal, and a port.
struct ListenAddress {
    std::string host;  // "127.0.0.1", "::1"
    bool ipv6 = false;
    std::uint16_t port = 0;
    [[nodiscard]] std::string to_string() const;  // "127.0.0.1:9464", "[::1]:9464"
};
// "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464"; nullopt and `why` when malformed.
std::optional<ListenAddress> parse_listen(const std::string& text, std::string* why);

// Scrapes from the server's threads to the supervisor and the text back. Every request waits for
// a render that began after it was made; concurrent ones share it.
class ScrapeBroker {
  public:
    ScrapeBroker();
    // Readable when a scrape waits: the supervisor watches it.
    [[nodiscard]] int fd() const noexcept { return wake_.get(); }
    // From a server thread: the text, or nullopt after `timeout` or once closed.
    std::optional<std::string> request(std::chrono::milliseconds timeout) EXCLUDES(mutex_);
    // Supervisor thread: renders once for every request made so far.
    void serve(const std::function<std::string()>& render) EXCLUDES(mutex_);
    // No more renders: waiting requests return nullopt at once, new ones too.
    void close() EXCLUDES(mutex_);
    [[nodiscard]] bool closed() EXCLUDES(mutex_);

  private:
    Fd wake_;
    // Test hook (EVFLY_TEST_SLOW_SCRAPES=N): the first N renders begin 1.5 s late, as a
    // supervisor too busy to answer would.
    std::uint64_t slow_renders_ = 0;
    detail::Mutex mutex_;
    std::condition_variable_any done_;
    std::uint64_t requested_ GUARDED_BY(mutex_) = 0;
    std::uint64_t rendered_ GUARDED_BY(mutex_) = 0;
    std::string text_ GUARDED_BY(mutex_);
    bool closed_ GUARDED_BY(mutex_) = false;
};

// The endpoint's failures, from civetweb's threads, each kind told once per episode: the first
// failure of an episode is logged with its detail, and the success that ends it (a scrape
// answered once `kGap` has passed without a failure of that kind) with how many there were. A
// hostile or broken client thus costs a line per episode, never a line per request.
class EndpointTrouble {
  public:
    enum Kind : std::size_t {
        kRefused,     // a request refused: malformed, too large, too slow, or not GET /metrics
        kUnanswered,  // a scrape the supervisor did not answer in time (503)
        kServer,      // civetweb's own complaints
        kKinds
    };
    static constexpr std::chrono::seconds kGap{10};

    void fail(Kind kind, const std::string& detail, const std::string& client) EXCLUDES(mutex_);
    // A scrape answered: ends the episodes that have been quiet for kGap.
    void succeed() EXCLUDES(mutex_);

  private:
    detail::Mutex mutex_;
    std::array<detail::Episode, kKinds> episodes_ GUARDED_BY(mutex_){
        detail::Episode(std::chrono::nanoseconds(kGap).count()),
        detail::Episode(std::chrono::nanoseconds(kGap).count()),
        detail::Episode(std::chrono::nanoseconds(kGap).count())};
};

// The server, listening from construction to destruction. Limits: 4 worker threads, a queue of
// 32 accepted connections, 8 KiB of request, 1 s to send it, no keep-alive; a scrape the
// supervisor does not answer within 1 s gets 503.
class MetricsServer {
  public:
    static constexpr int kThreads = 4;
    static constexpr int kQueue = 32;
    static constexpr int kMaxRequestBytes = 8192;
    static constexpr std::chrono::milliseconds kTimeout{1000};

    // Throws std::system_error (the errno, when civetweb says which) naming the address when it
    // cannot listen there.
    MetricsServer(const ListenAddress& address, ScrapeBroker& broker);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;
    [[nodiscard]] const ListenAddress& address() const noexcept { return address_; }

    // From civetweb's callbacks.
    [[nodiscard]] ScrapeBroker& broker() noexcept { return broker_; }
    [[nodiscard]] EndpointTrouble& trouble() noexcept { return trouble_; }
    // Set before the server stops: connections it closes then are not refusals.
    [[nodiscard]] bool stopping() const noexcept {
        return stopping_.load(std::memory_order_acquire);
    }

  private:
    ListenAddress address_;
    ScrapeBroker& broker_;
    EndpointTrouble trouble_;
    std::atomic<bool> stopping_{false};
    mg_context* context_ = nullptr;
};

}  // namespace evfly
