// What evflyd sets up for the whole process before its first thread starts: the signal mask,
// the fd limit and the threads' stack size.
#pragma once

#include <cstdint>

namespace evfly {

// Blocks every signal in the calling thread; threads started later inherit the mask.
void block_all_signals();
// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the limit now in force.
std::uint64_t raise_fd_limit();
// Gives every thread created from now on a small stack (sanitized builds excepted); called
// before the first thread starts.
void set_thread_stack_size();

}  // namespace evfly
