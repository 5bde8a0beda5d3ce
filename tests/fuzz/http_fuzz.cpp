// The /metrics endpoint's request path under libFuzzer: each input goes raw to a real
// MetricsServer on loopback (civetweb's parser, then evfly's handler and ScrapeBroker, answered
// by a thread that stands in for the supervisor). The answer must be nothing or an HTTP status
// line, and the server must still answer a plain scrape afterwards.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "metrics_http.h"

namespace {

int port_ = 0;

void start() {
    static evfly::ScrapeBroker broker;
    // A port of the kernel's choosing, let go for the server to take.
    const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    ::getsockname(probe, reinterpret_cast<sockaddr*>(&sa), &len);
    ::close(probe);
    port_ = ntohs(sa.sin_port);
    static evfly::MetricsServer server(
        evfly::ListenAddress{"127.0.0.1", false, static_cast<std::uint16_t>(port_)}, broker);
    std::thread([] {
        for (;;) {
            pollfd p{broker.fd(), POLLIN, 0};
            if (::poll(&p, 1, -1) > 0)
                broker.serve([] {
                    return std::string("# TYPE evfly_consumers gauge\nevfly_consumers 1\n");
                });
        }
    }).detach();
}

std::string exchange(const std::uint8_t* data, std::size_t size) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port_));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        __builtin_trap();  // the server is gone
    }
    std::size_t sent = 0;
    while (sent < size) {
        const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 3000) <= 0) break;
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const bool started = (start(), true);
    (void)started;
    const std::string answer = exchange(data, size);
    // An answer begins HTTP/ (civetweb echoes the client's version token in its own error
    // answers, "HTTP/2.1 505", even one holding CR LF, so nothing more can be said of the line),
    // and the server still serves a scrape.
    if (!answer.empty() && answer.rfind("HTTP/", 0) != 0) __builtin_trap();
    static const std::string scrape = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    // A few tries: a worker may still be closing the connection before (seen once in CI, not
    // reproducible alone), so one refused scrape is not yet a server that stopped serving.
    std::string after;
    for (int attempt = 0; attempt < 5; ++attempt) {
        after = exchange(reinterpret_cast<const std::uint8_t*>(scrape.data()), scrape.size());
        if (after.rfind("HTTP/1.1 200 OK\r\n", 0) == 0) return 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::fprintf(stderr, "no scrape answered after this input; the last answer: %.200s\n",
                 after.c_str());
    __builtin_trap();
    return 0;
}
