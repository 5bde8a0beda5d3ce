#include "metrics_http.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <mutex>
#include <system_error>

#include "clock.h"
#include "episode.h"
#include "evfly/log.h"

namespace evfly {
namespace {

// civetweb's own complaints (a request timed out, a connection failed), one line per episode.
detail::Mutex log_mutex;
detail::Episode server_trouble GUARDED_BY(log_mutex){
    std::chrono::nanoseconds(std::chrono::seconds(10)).count()};

int log_message(const mg_connection*, const char* message) {
    bool tell = false;
    {
        detail::MutexLock lock(log_mutex);
        tell = server_trouble.fail(detail::steady_ns());
    }
    if (tell)
        log::emit(log::Level::warn, "metrics endpoint trouble; more within 10 s are not logged",
                  {{"error", message != nullptr ? message : "?"}});
    return 1;  // handled: civetweb writes nothing itself
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
    auto& broker = *static_cast<ScrapeBroker*>(data);
    const mg_request_info* request = mg_get_request_info(conn);
    const std::string_view method = request->request_method ? request->request_method : "";
    const std::string_view uri = request->local_uri_raw ? request->local_uri_raw : "";
    if (uri != "/metrics" && uri != "/") {
        send(conn, 404, "Not Found", "text/plain; charset=utf-8", "not found; try /metrics\n",
             method == "HEAD");
        return 404;
    }
    if (method != "GET" && method != "HEAD") {
        send(conn, 405, "Method Not Allowed", "text/plain; charset=utf-8", "only GET and HEAD\n",
             false, "Allow: GET, HEAD\r\n");
        return 405;
    }
    if (uri == "/") {
        send(conn, 200, "OK", "text/html; charset=utf-8", kIndex, method == "HEAD");
        return 200;
    }
    const std::optional<std::string> text = broker.request(MetricsServer::kTimeout);
    if (!text) {
        send(conn, 503, "Service Unavailable", "text/plain; charset=utf-8",
             "evflyd is stopping or busy; try again\n", method == "HEAD");
        return 503;
    }
    send(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", *text, method == "HEAD");
    return 200;
}

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
    std::string text = render();
    detail::MutexLock lock(mutex_);
    text_ = std::move(text);
    rendered_ = target;
    done_.notify_all();
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
    char error_text[256] = {};
    mg_error_data error{};
    error.text = error_text;
    error.text_buffer_size = sizeof error_text;
    mg_init_data init{};
    init.callbacks = &callbacks;
    init.configuration_options = options;
    context_ = mg_start2(&init, &error);
    if (context_ == nullptr)
        throw std::system_error(EADDRNOTAVAIL, std::generic_category(),
                                where + ": " + (error_text[0] != 0 ? error_text : "cannot start"));
    mg_set_request_handler(context_, "/", handle, &broker_);
}

MetricsServer::~MetricsServer() {
    if (context_ != nullptr) mg_stop(context_);
}

}  // namespace evfly
