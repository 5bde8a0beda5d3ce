// Thread-safety rules in the code, checked by clang's -Wthread-safety (tests/run threadsafety):
// GUARDED_BY(m) on shared state, REQUIRES(m) on what must run under m, and Mutex / MutexLock,
// annotated stand-ins for std::mutex and std::lock_guard/std::unique_lock (libstdc++'s are not
// annotated). With other compilers the macros are empty and Mutex is a plain std::mutex.
//
// ASSERT_ON_THREAD(owner) states, in debug builds, which thread a function belongs to.
#pragma once

#include <cassert>
#include <condition_variable>
#include <mutex>
#include <thread>

#if defined(__clang__)
#define EVFLY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define EVFLY_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) EVFLY_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY EVFLY_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) EVFLY_THREAD_ANNOTATION(guarded_by(x))
#define REQUIRES(...) EVFLY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) EVFLY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) EVFLY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define EXCLUDES(...) EVFLY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS EVFLY_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace evfly::detail {

class CAPABILITY("mutex") Mutex {
  public:
    void lock() ACQUIRE() { mutex_.lock(); }
    void unlock() RELEASE() { mutex_.unlock(); }

  private:
    std::mutex mutex_;
};

// Holds a Mutex for its scope; also what a std::condition_variable_any waits with (it unlocks
// and relocks through lock()/unlock(), which the analysis does not follow into the library).
class SCOPED_CAPABILITY MutexLock {
  public:
    explicit MutexLock(Mutex& mutex) ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
    ~MutexLock() RELEASE() { mutex_.unlock(); }
    MutexLock(const MutexLock&) = delete;
    MutexLock& operator=(const MutexLock&) = delete;
    // BasicLockable, for std::condition_variable_any::wait*.
    void lock() NO_THREAD_SAFETY_ANALYSIS { mutex_.lock(); }
    void unlock() NO_THREAD_SAFETY_ANALYSIS { mutex_.unlock(); }

  private:
    Mutex& mutex_;
};

// The thread a part of the engine belongs to, fixed by the first call (debug builds only).
class ThreadOwner {
  public:
    [[nodiscard]] bool is_current() const noexcept {
#ifndef NDEBUG
        if (owner_ == std::thread::id()) owner_ = std::this_thread::get_id();
        return owner_ == std::this_thread::get_id();
#else
        return true;
#endif
    }

  private:
    mutable std::thread::id owner_;
};

}  // namespace evfly::detail

#define ASSERT_ON_THREAD(owner) assert((owner).is_current())
