# Venue book checksums computed straight from a compiled Book (ticks and lots), with no Python
# object per level: each level is written as the venue's decimal text into one stack buffer,
# and the buffer goes through a table-driven CRC-32 once.

from libc.stdint cimport int32_t, uint32_t

from arbengine._core.book cimport Book
from arbengine._core.fixed cimport FORMAT_BUFSIZE, Grid

cdef enum:
    KRAKEN_LEVELS = 10           # levels per side in a Kraken checksum, whatever the depth
    OKX_LEVELS = 25              # levels per side in an OKX checksum
    # Kraken writes each value as the digits of an integer (see checksum.pyx): at most 19.
    KRAKEN_TEXT_MAX = 2 * KRAKEN_LEVELS * 2 * 19
    # OKX writes each value with format_decimal (at most FORMAT_BUFSIZE bytes) and a colon
    # between values.
    OKX_TEXT_MAX = 2 * OKX_LEVELS * 2 * (FORMAT_BUFSIZE + 1)

# CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the same function as zlib.crc32:
# crc32_update(crc32_update(0, a), b) == zlib.crc32(a + b).
cdef uint32_t crc32_update(uint32_t crc, const char* p, Py_ssize_t n) noexcept nogil

# Error convention for both checksums: ``except? 0``. Every 32-bit value is a valid checksum,
# so there is no free sentinel; 0 is returned on error with an exception set, and Cython checks
# PyErr_Occurred() only when 0 comes back (1 call in 2**32). 0 is also what OKX sends for "no
# checksum" since its deprecation, so callers never compare against it anyway.

# Kraken (WebSocket v2, and v1): the unsigned CRC-32 of the top 10 asks (low to high) then the
# top 10 bids (high to low), each price and qty written at the wire precision with the point
# removed and leading zeros stripped. ``price``/``size`` are the book's grids;
# ``price_decimals``/``qty_decimals`` are the wire's (v2: the instrument's price_precision and
# qty_precision; v1: the decimals of the texts the venue sends), each >= its grid's decimals
# and <= 18. Raises ValueError on bad decimals and FixedPointError when a value does not fit
# int64 at the wire precision.
cdef uint32_t kraken_checksum(Book book, Grid price, Grid size, int price_decimals,
                              int qty_decimals) except? 0

# OKX v5 ``books``: the CRC-32, as a signed int32, of the first 25 bids and asks interleaved
# "bid1px:bid1sz:ask1px:ask1sz:..." (a side that runs out is skipped), each value the trimmed
# decimal text OKX sends ("30244", "0.08"). Raises FixedPointError on an int64 overflow.
cdef int32_t okx_checksum(Book book, Grid price, Grid size) except? 0
