// The scheduling policies evfly knows: each one's config name and its sched(7) number, in one
// table for the config, the placement code and the report of every thread.
#pragma once

#include <sched.h>

#include <array>

#include "evfly/config.h"

namespace evfly::detail {

struct SchedPolicyName {
    SchedPolicy policy;
    const char* name;
    int number;  // SCHED_*
};

inline constexpr std::array<SchedPolicyName, 5> kSchedPolicies{{
    {SchedPolicy::other, "other", SCHED_OTHER},
    {SchedPolicy::batch, "batch", SCHED_BATCH},
    {SchedPolicy::idle, "idle", SCHED_IDLE},
    {SchedPolicy::fifo, "fifo", SCHED_FIFO},
    {SchedPolicy::rr, "rr", SCHED_RR},
}};

// The entry for `number` (a SCHED_* value); "other" for one evfly does not know.
[[nodiscard]] constexpr const SchedPolicyName& sched_policy_of(int number) noexcept {
    for (const auto& p : kSchedPolicies)
        if (p.number == number) return p;
    return kSchedPolicies[0];
}
[[nodiscard]] constexpr const SchedPolicyName& sched_policy_of(SchedPolicy policy) noexcept {
    for (const auto& p : kSchedPolicies)
        if (p.policy == policy) return p;
    return kSchedPolicies[0];
}

}  // namespace evfly::detail
