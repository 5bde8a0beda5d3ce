#include "evfly/report.h"

namespace evfly {

Totals Report::totals() const noexcept {
    Totals t;
    for (const auto& p : producers) {
        t.fired += p.fired;
        t.value_written += p.value_written;
        t.value_read += p.value_read;
        t.expirations += p.expirations;
        t.overruns += p.overruns;
        t.fd_exhaustion += p.fd_exhaustion;
        t.due += p.due;
        t.late += p.late;
        t.skipped += p.skipped;
        t.stalls += p.stalls;
        t.clock_jumps += p.clock_jumps;
    }
    t.lost = static_cast<std::int64_t>(t.value_written - t.value_read);
    return t;
}

}  // namespace evfly
