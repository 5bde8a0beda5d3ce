// A reload's placement transaction, on real threads of this process, checked by the kernel's
// own view of them (sched_getaffinity).
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <thread>

#include "placement.h"

using evfly::Placement;
using evfly::SchedPolicy;
using evfly::detail::PlacementDefaults;
using evfly::detail::PlacementTxn;

namespace {

int cpu_count_of(pid_t tid) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(tid, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
}

// A thread that waits until told to end, and says its kernel id.
class Idle {
  public:
    Idle()
        : thread_([this] {
              tid_.store(evfly::detail::current_tid());
              while (!done_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }) {
        while (tid_.load() == 0) std::this_thread::yield();
    }
    ~Idle() {
        done_.store(true);
        thread_.join();
    }
    [[nodiscard]] pid_t tid() const { return tid_.load(); }

  private:
    std::atomic<pid_t> tid_{0};
    std::atomic<bool> done_{false};
    std::thread thread_;
};

}  // namespace

// tid 0 is a thread that has not started yet: to the kernel it would be the calling thread (the
// supervisor), so the transaction leaves it alone.
TEST(PlacementTxn, AThreadNotStartedYetIsLeftAlone) {
    const PlacementDefaults defaults = PlacementDefaults::of_this_process();
    if (defaults.cpus.size() < 2) GTEST_SKIP() << "needs two CPUs to see a change";
    const int before = cpu_count_of(0);
    PlacementTxn txn(defaults);
    Placement one;
    one.cpus = {defaults.cpus.back()};
    EXPECT_EQ(txn.place(0, 0, one, Placement{}, "daemon."), "");
    EXPECT_EQ(cpu_count_of(0), before);
    EXPECT_EQ(txn.threads(), 0u);
}

// A placement that fails halfway (the CPUs are set, then the policy is refused) is put back too.
TEST(PlacementTxn, RollbackPutsBackEveryThreadTouchedTheFailingOneIncluded) {
    const PlacementDefaults defaults = PlacementDefaults::of_this_process();
    if (defaults.cpus.size() < 2) GTEST_SKIP() << "needs two CPUs to see a change";
    const int all = static_cast<int>(defaults.cpus.size());
    Idle placed;
    Idle failing;
    PlacementTxn txn(defaults);
    Placement one;
    one.cpus = {defaults.cpus.front()};
    ASSERT_EQ(txn.place(placed.tid(), 0, one, Placement{}, "daemon."), "");
    EXPECT_EQ(cpu_count_of(placed.tid()), 1);
    Placement refused = one;
    refused.policy = SchedPolicy::fifo;  // priority 0 is not a real-time priority: EINVAL
    const std::string why = txn.place(failing.tid(), 1, refused, Placement{}, "daemon.");
    ASSERT_NE(why, "");
    EXPECT_NE(why.find("daemon.policy"), std::string::npos) << why;
    EXPECT_EQ(cpu_count_of(failing.tid()), 1);  // halfway: its CPUs were set
    EXPECT_EQ(txn.rollback(), "");
    EXPECT_EQ(cpu_count_of(placed.tid()), all);
    EXPECT_EQ(cpu_count_of(failing.tid()), all);
    EXPECT_EQ(txn.threads(), 0u);
}

// A thread a reload started placed itself; a failed reload puts it back as the pool was.
TEST(PlacementTxn, AStartedThreadIsPutBackToThePreviousPlacement) {
    const PlacementDefaults defaults = PlacementDefaults::of_this_process();
    if (defaults.cpus.size() < 2) GTEST_SKIP() << "needs two CPUs to see a change";
    Idle started;
    Placement one;
    one.cpus = {defaults.cpus.back()};
    ASSERT_EQ(evfly::detail::apply_placement(one, defaults, started.tid(), 0, "daemon."), "");
    PlacementTxn txn(defaults);
    txn.started(started.tid(), 0, Placement{}, "daemon.");
    EXPECT_EQ(txn.rollback(), "");
    EXPECT_EQ(cpu_count_of(started.tid()), static_cast<int>(defaults.cpus.size()));
}
