# Per-venue clock offset: how far the local wall clock is from the venue's event clock.

from libc.stdint cimport int64_t

cdef enum:
    CLOCK_BUCKETS = 8


cdef class ClockOffset:
    cdef readonly int64_t bucket_ns          # width of one bucket of the window
    cdef int64_t mins[CLOCK_BUCKETS]         # min(recv - exch) per bucket
    cdef int64_t epochs[CLOCK_BUCKETS]       # which bucket of time each slot holds
    cdef readonly int64_t samples

    # O(1): fold one message's (local receive, venue event) pair into the window.
    cdef inline void observe(self, int64_t recv_wall_ns, int64_t exch_ts_ns) noexcept:
        cdef int64_t d, epoch
        cdef int slot
        if exch_ts_ns <= 0:
            return
        d = recv_wall_ns - exch_ts_ns
        epoch = recv_wall_ns // self.bucket_ns
        slot = <int>(epoch % CLOCK_BUCKETS)
        if self.epochs[slot] != epoch:
            self.epochs[slot] = epoch
            self.mins[slot] = d
        elif d < self.mins[slot]:
            self.mins[slot] = d
        self.samples += 1

    cdef bint estimate(self, int64_t now_wall_ns, int64_t* offset) noexcept
