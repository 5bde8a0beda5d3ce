// The one /proc helper of the tests: the threads of a process, by kernel thread id and name
// (comm, as top -H shows it).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace evfly::test {

// {tid: name} of the threads of `pid` whose name starts with `prefix`.
inline std::map<std::string, std::string> threads_of(pid_t pid, const std::string& prefix = "") {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::ifstream comm(entry.path() / "comm");
        std::string name;
        if (!std::getline(comm, name) || name.rfind(prefix, 0) != 0) continue;
        out[entry.path().filename().string()] = name;
    }
    return out;
}

}  // namespace evfly::test
