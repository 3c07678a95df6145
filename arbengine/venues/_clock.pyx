# cython: language_level=3
"""Clock offset between the local wall clock and a venue's event timestamps.

recv_wall - exch_ts = (local clock - venue clock) + one-way latency. Latency is never
negative and its minimum over a short window is close to the network floor, so the window
minimum of recv - exch estimates offset + floor latency: subtracting it from a later
message's recv - exch leaves that message's latency above the floor, i.e. how stale the
data is beyond what the network always costs. The window slides in buckets so one update is
O(1) and an old minimum (a clock step, a route change) ages out.
"""

from libc.stdint cimport INT64_MAX, int64_t

from arbengine._core.ints cimport as_int64


cdef class ClockOffset:
    """Windowed-minimum estimate of (local wall clock - venue clock + floor latency)."""

    def __init__(self, double window_s=60.0):
        if not window_s > 0:
            raise ValueError(f"clock offset window must be positive, got {window_s}")
        self.bucket_ns = max(1, <int64_t>(window_s * 1e9 / CLOCK_BUCKETS))
        for i in range(CLOCK_BUCKETS):
            self.epochs[i] = -1
            self.mins[i] = INT64_MAX
        self.samples = 0

    cdef bint estimate(self, int64_t now_wall_ns, int64_t* offset) noexcept:
        cdef int64_t now_epoch = now_wall_ns // self.bucket_ns
        cdef int64_t best = INT64_MAX
        cdef int i
        for i in range(CLOCK_BUCKETS):
            if now_epoch - CLOCK_BUCKETS < self.epochs[i] <= now_epoch and self.mins[i] < best:
                best = self.mins[i]
        if best == INT64_MAX:
            return False
        offset[0] = best
        return True

    def add(self, recv_wall_ns, exch_ts_ns):
        """Python entry for tools and tests."""
        self.observe(as_int64(recv_wall_ns, "recv_wall_ns"), as_int64(exch_ts_ns, "exch_ts_ns"))

    def offset_ns(self, now_wall_ns):
        """The current estimate in ns, or None before any sample in the window."""
        cdef int64_t out
        if self.estimate(as_int64(now_wall_ns, "now_wall_ns"), &out):
            return out
        return None

    def data_age_ns(self, exch_ts_ns, now_wall_ns):
        """How old a message is by the venue's clock, corrected for the offset: its age
        beyond the floor latency. None before the estimate exists."""
        cdef int64_t off
        if not self.estimate(as_int64(now_wall_ns, "now_wall_ns"), &off):
            return None
        return as_int64(now_wall_ns, "now_wall_ns") - as_int64(exch_ts_ns, "exch_ts_ns") - off
