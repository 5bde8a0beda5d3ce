#include "metrics_http.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "clock.h"
#include "evfly/log.h"
#include "test_hook.h"

namespace evfly {
namespace {

MetricsServer& server_of(const mg_connection* conn) {
    return *static_cast<MetricsServer*>(mg_get_user_data(mg_get_context(conn)));
}

std::string client_of(const mg_connection* conn) {
    const mg_request_info* request = mg_get_request_info(conn);
    return request != nullptr ? request->remote_addr : "";
}

// What a client sent, fit for a log line: at most 64 printable ASCII characters.
std::string printable(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 64)) out += c >= 0x20 && c < 0x7f ? c : '?';
    return text.size() > 64 ? out + "..." : out;
}

// civetweb's own complaints.
int log_message(const mg_connection* conn, const char* message) {
    server_of(conn).trouble().fail(EndpointTrouble::kServer, message != nullptr ? message : "?",
                                   client_of(conn));
    return 1;  // handled: civetweb writes nothing itself
}

// Every accepted connection starts with no mark; handle() marks the ones it answers.
int init_connection(const mg_connection*, void** conn_data) {
    *conn_data = nullptr;
    return 0;
}
char answered_mark;

// A connection closed without reaching handle(): civetweb refused what it got (malformed, over
// max_request_size, slower than request_timeout_ms) or nothing came.
void connection_close(const mg_connection* conn) {
    MetricsServer& server = server_of(conn);
    if (server.stopping() || mg_get_user_connection_data(conn) != nullptr) return;
    server.trouble().fail(
        EndpointTrouble::kRefused,
        "closed without a complete request (malformed, over " +
            std::to_string(MetricsServer::kMaxRequestBytes) + " bytes, slower than " +
            std::to_string(MetricsServer::kTimeout.count()) + " ms, or none sent)",
        client_of(conn));
}

void send(mg_connection* conn, int status, const char* reason, const char* type,
          const std::string& body, bool head, const char* extra = "") {
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
              status, reason, type, body.size(), extra);
    if (!head && !body.empty()) mg_write(conn, body.data(), body.size());
}

constexpr const char* kIndex =
    "<html><head><title>evflyd</title></head><body><h1>evflyd</h1>"
    "<p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

// Every request: civetweb has parsed it within its limits; only GET (and HEAD) of /metrics and
// / answer.
int handle(mg_connection* conn, void* data) {
    auto& server = *static_cast<MetricsServer*>(data);
    mg_set_user_connection_data(conn, &answered_mark);
    const mg_request_info* request = mg_get_request_info(conn);
    const std::string_view method = request->request_method ? request->request_method : "";
    const std::string_view uri = request->local_uri_raw ? request->local_uri_raw : "";
    const auto refuse = [&](int status) {
        server.trouble().fail(
            EndpointTrouble::kRefused,
            std::to_string(status) + " " + printable(method) + " " + printable(uri),
            client_of(conn));
        return status;
    };
    if (uri != "/metrics" && uri != "/") {
        send(conn, 404, "Not Found", "text/plain; charset=utf-8", "not found; try /metrics\n",
             method == "HEAD");
        return refuse(404);
    }
    if (method != "GET" && method != "HEAD") {
        send(conn, 405, "Method Not Allowed", "text/plain; charset=utf-8", "only GET and HEAD\n",
             false, "Allow: GET, HEAD\r\n");
        return refuse(405);
    }
    if (uri == "/") {
        send(conn, 200, "OK", "text/html; charset=utf-8", kIndex, method == "HEAD");
        return 200;
    }
    const std::optional<std::string> text = server.broker().request(MetricsServer::kTimeout);
    if (!text) {
        send(conn, 503, "Service Unavailable", "text/plain; charset=utf-8",
             "evflyd is stopping or busy; try again\n", method == "HEAD");
        // At the stop a 503 is the answer, not a failure.
        if (!server.broker().closed())
            server.trouble().fail(EndpointTrouble::kUnanswered,
                                  "no metrics within " +
                                      std::to_string(MetricsServer::kTimeout.count()) +
                                      " ms: the supervisor is busy",
                                  client_of(conn));
        return 503;
    }
    send(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", *text, method == "HEAD");
    server.trouble().succeed();
    return 200;
}

struct TroubleText {
    const char* first;  // the first failure of an episode
    const char* ended;  // the success that ends it
    const char* count;  // the field that counts the episode's failures
};
constexpr std::array<TroubleText, EndpointTrouble::kKinds> kTroubleText{{
    {"metrics endpoint refused a request; more are counted, not logged, until 10 s pass "
     "without one",
     "metrics endpoint refusals ended", "refused"},
    {"metrics scrape unanswered (503); more are counted, not logged, until 10 s pass without "
     "one",
     "metrics scrapes answered again", "unanswered"},
    {"metrics endpoint trouble; more is counted, not logged, until 10 s pass without any",
     "metrics endpoint trouble ended", "failures"},
}};

// Binds and closes a socket at `address`, as civetweb will, for the errno it would meet: civetweb
// only reports text.
int try_bind(const ListenAddress& address) {
    const int fd = ::socket(address.ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    int err = 0;
    if (address.ipv6) {
        sockaddr_in6 sa{};
        sa.sin6_family = AF_INET6;
        sa.sin6_port = htons(address.port);
        ::inet_pton(AF_INET6, address.host.c_str(), &sa.sin6_addr);
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) err = errno;
    } else {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(address.port);
        ::inet_pton(AF_INET, address.host.c_str(), &sa.sin_addr);
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) err = errno;
    }
    ::close(fd);
    return err;
}

}  // namespace

std::string ListenAddress::to_string() const {
    return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<ListenAddress> parse_listen(const std::string& text, std::string* why) {
    const auto fail = [&](const std::string& what) -> std::optional<ListenAddress> {
        *why = "'" + text + "': " + what +
               " (expected an IPv4 address and a port, 127.0.0.1:9464, or an IPv6 one in "
               "brackets, [::1]:9464)";
        return std::nullopt;
    };
    ListenAddress a;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find("]:");
        if (close == std::string::npos) return fail("no ]:PORT after the IPv6 address");
        a.host = text.substr(1, close - 1);
        a.ipv6 = true;
        port = text.substr(close + 2);
        in6_addr addr{};
        if (::inet_pton(AF_INET6, a.host.c_str(), &addr) != 1)
            return fail("'" + a.host + "' is not an IPv6 address");
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos) return fail("no :PORT");
        a.host = text.substr(0, colon);
        port = text.substr(colon + 1);
        in_addr addr{};
        if (::inet_pton(AF_INET, a.host.c_str(), &addr) != 1)
            return fail("'" + a.host + "' is not an IPv4 address (names are not resolved)");
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535)
        return fail("the port must be 1 to 65535");
    a.port = static_cast<std::uint16_t>(value);
    return a;
}

ScrapeBroker::ScrapeBroker() : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!wake_) throw std::system_error(errno, std::generic_category(), "eventfd (metrics)");
    slow_renders_ = detail::test_hook("EVFLY_TEST_SLOW_SCRAPES");
}

std::optional<std::string> ScrapeBroker::request(std::chrono::milliseconds timeout) {
    detail::MutexLock lock(mutex_);
    if (closed_) return std::nullopt;
    const std::uint64_t ticket = ++requested_;
    const std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    const bool answered = done_.wait_for(
        lock, timeout, [&]() REQUIRES(mutex_) { return closed_ || rendered_ >= ticket; });
    if (!answered || rendered_ < ticket) return std::nullopt;
    return text_;
}

void ScrapeBroker::serve(const std::function<std::string()>& render) {
    std::uint64_t drained = 0;
    (void)!::read(wake_.get(), &drained, sizeof drained);
    std::uint64_t target = 0;
    {
        detail::MutexLock lock(mutex_);
        if (rendered_ >= requested_) return;  // answered already
        target = requested_;
    }
    if (slow_renders_ > 0) {
        --slow_renders_;
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    }
    std::string text = render();
    detail::MutexLock lock(mutex_);
    text_ = std::move(text);
    rendered_ = target;
    done_.notify_all();
}

void EndpointTrouble::fail(Kind kind, const std::string& detail, const std::string& client) {
    bool tell = false;
    {
        detail::MutexLock lock(mutex_);
        tell = episodes_[kind].fail(detail::steady_ns());
    }
    if (tell)
        log::emit(log::Level::warn, kTroubleText[kind].first,
                  {{"error", detail}, {"client", client}});
}

void EndpointTrouble::succeed() {
    std::array<std::uint64_t, kKinds> ended{};
    {
        detail::MutexLock lock(mutex_);
        const std::int64_t now = detail::steady_ns();
        for (std::size_t k = 0; k < kKinds; ++k)
            if (episodes_[k].active()) ended[k] = episodes_[k].succeed(now);
    }
    for (std::size_t k = 0; k < kKinds; ++k)
        if (ended[k] != 0)
            log::emit(log::Level::info, kTroubleText[k].ended, {{kTroubleText[k].count, ended[k]}});
}

bool ScrapeBroker::closed() {
    detail::MutexLock lock(mutex_);
    return closed_;
}

void ScrapeBroker::close() {
    detail::MutexLock lock(mutex_);
    closed_ = true;
    done_.notify_all();
}

MetricsServer::MetricsServer(const ListenAddress& address, ScrapeBroker& broker)
    : address_(address), broker_(broker) {
    static std::once_flag library;
    std::call_once(library, [] { mg_init_library(0); });
    const std::string where = "metrics.listen " + address.to_string();
    if (const int err = try_bind(address); err != 0)
        throw std::system_error(err, std::generic_category(), where);
    const std::string port = address.to_string();
    const std::string threads = std::to_string(kThreads);
    const std::string queue = std::to_string(kQueue);
    const std::string request_size = std::to_string(kMaxRequestBytes);
    const std::string timeout = std::to_string(kTimeout.count());
    const char* options[] = {"listening_ports",
                             port.c_str(),
                             "num_threads",
                             threads.c_str(),
                             "connection_queue",
                             queue.c_str(),
                             "listen_backlog",
                             queue.c_str(),
                             "max_request_size",
                             request_size.c_str(),
                             "request_timeout_ms",
                             timeout.c_str(),
                             "linger_timeout_ms",
                             "0",
                             "enable_keep_alive",
                             "no",
                             "decode_url",
                             "no",
                             nullptr};
    mg_callbacks callbacks{};
    callbacks.log_message = log_message;
    callbacks.init_connection = init_connection;
    callbacks.connection_close = connection_close;
    char error_text[256] = {};
    mg_error_data error{};
    error.text = error_text;
    error.text_buffer_size = sizeof error_text;
    mg_init_data init{};
    init.callbacks = &callbacks;
    init.user_data = this;
    init.configuration_options = options;
    context_ = mg_start2(&init, &error);
    if (context_ == nullptr)
        throw std::system_error(EADDRNOTAVAIL, std::generic_category(),
                                where + ": " + (error_text[0] != 0 ? error_text : "cannot start"));
    mg_set_request_handler(context_, "/", handle, this);
}

MetricsServer::~MetricsServer() {
    stopping_.store(true, std::memory_order_release);
    if (context_ != nullptr) mg_stop(context_);
}

}  // namespace evfly
