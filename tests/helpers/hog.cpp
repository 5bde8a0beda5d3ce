// evfly_test_hog: holds a CPU in bursts, for the tests of [explain] (a task that runs instead of
// a consumer). Started by the tests under chrt and taskset.
//   evfly_test_hog BURST_MS EVERY_MS SECONDS: busy for BURST_MS, then asleep until the next
//   EVERY_MS, for SECONDS in all.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: evfly_test_hog BURST_MS EVERY_MS SECONDS\n");
        return 64;
    }
    using Clock = std::chrono::steady_clock;
    const auto burst = std::chrono::milliseconds(std::atoi(argv[1]));
    const auto every = std::chrono::milliseconds(std::atoi(argv[2]));
    const auto end = Clock::now() + std::chrono::seconds(std::atoi(argv[3]));
    for (auto next = Clock::now(); next < end; next += every) {
        std::this_thread::sleep_until(next);
        const auto until = Clock::now() + burst;
        while (Clock::now() < until) {
        }
    }
    return 0;
}
