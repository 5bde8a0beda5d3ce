// A small HTTP/1.1 client for the tests: raw requests over loopback TCP, answers as text.
#pragma once

#include <chrono>
#include <string>

namespace evfly::test {

// A loopback port nothing listens on now (the kernel's pick, let go).
int free_port();
// A connected loopback socket, or -1.
int connect_to(int port);
// Sends `request` raw and reads the whole answer (until the server closes, or `timeout`);
// "" when the connection was refused.
std::string http(int port, const std::string& request,
                 std::chrono::milliseconds timeout = std::chrono::seconds(5));
// `method` `path` with a Host header.
std::string get(int port, const std::string& path, const std::string& method = "GET");
// The status code of an answer (0 when there is none).
int status_of(const std::string& response);
// What follows the headers.
std::string body_of(const std::string& response);

}  // namespace evfly::test
