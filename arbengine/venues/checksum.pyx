# cython: language_level=3
"""Venue order-book checksums (Kraken, OKX) computed from a compiled ``Book``.

Venues attach a CRC-32 of the top of their book to book messages so that a client can prove
its local copy is identical. The checksum is defined over decimal *text*, while the book holds
int64 ticks and lots, so each level is written back as the venue's text into one stack buffer
(``format_decimal``, no Python object per level) and the buffer is hashed once with a
slicing-by-8 table CRC-32 (the zlib function, without linking zlib).

See checksum.pxd for the cdef API and the error convention; the ``def`` functions below wrap
it with argument validation for tests, tools and slow paths.
"""

from cpython.long cimport PyLong_Check
from libc.stdint cimport INT64_MAX, int32_t, int64_t, uint32_t

from arbengine._core.book cimport ASK, BID, Book, LevelIter
from arbengine._core.errors import FixedPointError
from arbengine._core.fixed cimport format_decimal

cdef enum:
    # Largest wire precision accepted: 10**18 still fits int64, like the grids' own limit.
    MAX_DECIMALS = 18

# --- CRC-32 --------------------------------------------------------------------------------
#
# _CRC[0] is the classic byte table of the reflected IEEE polynomial; _CRC[k][i] is the CRC
# state change of byte i followed by k zero bytes. With them, eight input bytes fold into the
# state with eight independent lookups (slicing-by-8) instead of eight dependent ones, which
# is what keeps a 300-byte checksum text well under a microsecond.

cdef uint32_t _CRC[8][256]


cdef void _init_crc_tables() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = <uint32_t>i
        for k in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        _CRC[0][i] = c
    for i in range(256):
        c = _CRC[0][i]
        for k in range(1, 8):
            c = (c >> 8) ^ _CRC[0][c & 0xFF]
            _CRC[k][i] = c


_init_crc_tables()


cdef uint32_t crc32_update(uint32_t crc, const char* p, Py_ssize_t n) noexcept nogil:
    cdef const unsigned char* b = <const unsigned char*>p
    # zlib's convention: the state is kept inverted, and crc is the previous *result*, so
    # updates chain and crc32_update(0, ...) is the plain CRC-32.
    cdef uint32_t c = ~crc
    cdef uint32_t lo, hi
    while n >= 8:
        # Bytes assembled explicitly (little-endian order, whatever the host): compilers turn
        # this into plain 32-bit loads on x86 and it stays correct on big-endian machines.
        lo = c ^ (<uint32_t>b[0] | (<uint32_t>b[1] << 8) | (<uint32_t>b[2] << 16)
                  | (<uint32_t>b[3] << 24))
        hi = (<uint32_t>b[4] | (<uint32_t>b[5] << 8) | (<uint32_t>b[6] << 16)
              | (<uint32_t>b[7] << 24))
        c = (_CRC[7][lo & 0xFF] ^ _CRC[6][(lo >> 8) & 0xFF]
             ^ _CRC[5][(lo >> 16) & 0xFF] ^ _CRC[4][lo >> 24]
             ^ _CRC[3][hi & 0xFF] ^ _CRC[2][(hi >> 8) & 0xFF]
             ^ _CRC[1][(hi >> 16) & 0xFF] ^ _CRC[0][hi >> 24])
        b += 8
        n -= 8
    while n > 0:
        c = (c >> 8) ^ _CRC[0][(c ^ b[0]) & 0xFF]
        b += 1
        n -= 1
    return ~c


# --- errors (out of line: the hot loops only test a return code) --------------------------

cdef str _where(Book book):
    return f"{book.name}: " if book.name else ""


cdef int _raise_decimals(Grid grid, object decimals, str what) except -1:
    raise ValueError(
        f"{what} must be between the grid's {grid.decimals} ({grid.step}) and "
        f"{MAX_DECIMALS}, got {decimals}"
    )


cdef int _raise_overflow(Book book, Grid grid, int64_t units, int decimals) except -1:
    raise FixedPointError(
        f"{_where(book)}{units} units of {grid.step} overflow int64 when written with "
        f"{decimals} decimals"
    )


# --- Kraken --------------------------------------------------------------------------------
#
# Kraken writes every value with a fixed number of decimals, removes the point and strips the
# leading zeros: "0.00100000" -> "100000", "45281.0" -> "452810". That is exactly the decimal
# digits of the integer value * 10**decimals, so each value is written as an integer:
# units * (mantissa * 10**(decimals - grid decimals)) with format_decimal at 0 decimals. This
# does the point removal and the stripping in one go and cannot differ from them, and its
# overflow check is the int64 bound of the wire value. Zero (never in a book) would strip to
# the empty string, and writes nothing.

cdef int64_t _wire_mantissa(Grid grid, int decimals, str what) except -1:
    """The grid step counted in units of 10**-decimals (the wire's last digit)."""
    cdef int64_t m = grid.mantissa
    cdef int k
    if decimals < grid.decimals or decimals > MAX_DECIMALS:
        _raise_decimals(grid, decimals, what)
    for k in range(decimals - grid.decimals):
        if m > INT64_MAX // 10:
            raise FixedPointError(
                f"grid step {grid.step} does not fit int64 at {decimals} decimals"
            )
        m *= 10
    return m


cdef inline Py_ssize_t _kraken_value(Book book, Grid grid, int decimals, int64_t units,
                                     int64_t wire_mantissa, char* out,
                                     Py_ssize_t n) except -1:
    cdef Py_ssize_t w
    if units == 0:
        return n
    w = format_decimal(units, 0, wire_mantissa, False, out + n)
    if w < 0:
        _raise_overflow(book, grid, units, decimals)
    return n + w


cdef Py_ssize_t _kraken_side(Book book, int side, Grid price, Grid size, int price_decimals,
                             int qty_decimals, int64_t pm, int64_t qm, char* out,
                             Py_ssize_t n) except -1:
    cdef LevelIter it
    cdef int k = 0
    if not book.iter_first(side, &it):
        return n
    while True:
        n = _kraken_value(book, price, price_decimals, it.price, pm, out, n)
        n = _kraken_value(book, size, qty_decimals, it.size, qm, out, n)
        k += 1
        if k == KRAKEN_LEVELS or not book.iter_next(side, &it):
            return n


cdef Py_ssize_t _kraken_text(Book book, Grid price, Grid size, int price_decimals,
                             int qty_decimals, char* out) except -1:
    """Write the checksum text into ``out`` (KRAKEN_TEXT_MAX bytes suffice); its length."""
    cdef int64_t pm = _wire_mantissa(price, price_decimals, "price_decimals")
    cdef int64_t qm = _wire_mantissa(size, qty_decimals, "qty_decimals")
    # Asks first, low to high, then bids, high to low: both are "from the best" in the book.
    cdef Py_ssize_t n = _kraken_side(book, ASK, price, size, price_decimals, qty_decimals,
                                     pm, qm, out, 0)
    return _kraken_side(book, BID, price, size, price_decimals, qty_decimals, pm, qm, out, n)


cdef uint32_t kraken_checksum(Book book, Grid price, Grid size, int price_decimals,
                              int qty_decimals) except? 0:
    # Every value is at most 19 digits (int64), so KRAKEN_TEXT_MAX bounds the text; the
    # extra FORMAT_BUFSIZE is slack in case that contract of format_decimal ever loosens.
    cdef char buf[KRAKEN_TEXT_MAX + FORMAT_BUFSIZE]
    cdef Py_ssize_t n = _kraken_text(book, price, size, price_decimals, qty_decimals, buf)
    return crc32_update(0, buf, n)


# --- OKX -----------------------------------------------------------------------------------
#
# OKX hashes its strings as sent, and it sends trimmed decimal text ("30244", "0.08",
# "5.14"): format_decimal with trim=True writes exactly that for any grid value.

cdef inline Py_ssize_t _okx_value(Book book, Grid grid, int64_t units, char* out,
                                  Py_ssize_t n) except -1:
    cdef Py_ssize_t w = format_decimal(units, grid.decimals, grid.mantissa, True, out + n)
    if w < 0:
        _raise_overflow(book, grid, units, grid.decimals)
    out[n + w] = c':'
    return n + w + 1


cdef Py_ssize_t _okx_text(Book book, Grid price, Grid size, char* out) except -1:
    """Write the checksum text into ``out`` (OKX_TEXT_MAX bytes suffice); its length."""
    cdef LevelIter b, a
    cdef bint has_bid = book.iter_first(BID, &b)
    cdef bint has_ask = book.iter_first(ASK, &a)
    cdef Py_ssize_t n = 0
    cdef int k
    for k in range(OKX_LEVELS):
        if not has_bid and not has_ask:
            break
        # Interleaved bid, ask, bid, ask...; once a side runs out the other goes on alone.
        if has_bid:
            n = _okx_value(book, price, b.price, out, n)
            n = _okx_value(book, size, b.size, out, n)
            has_bid = book.iter_next(BID, &b)
        if has_ask:
            n = _okx_value(book, price, a.price, out, n)
            n = _okx_value(book, size, a.size, out, n)
            has_ask = book.iter_next(ASK, &a)
    # Every value was followed by a colon: the last one is not part of the text.
    return n - 1 if n else 0


cdef int32_t okx_checksum(Book book, Grid price, Grid size) except? 0:
    cdef char buf[OKX_TEXT_MAX]
    cdef Py_ssize_t n = _okx_text(book, price, size, buf)
    # OKX compares the CRC as a signed 32-bit integer (two's complement reinterpretation).
    return <int32_t>crc32_update(0, buf, n)


# --- Python API ----------------------------------------------------------------------------

cdef int _decimals_arg(Grid grid, object value, str what) except -1:
    """A wire precision from Python: a real int in [grid decimals, 18], or a clear error."""
    if not PyLong_Check(value) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if not grid.decimals <= value <= MAX_DECIMALS:
        _raise_decimals(grid, value, what)
    return value


def crc32(const unsigned char[::1] data, object value=0):
    """CRC-32 of ``data`` continuing from ``value``: the same result as ``zlib.crc32``."""
    if not PyLong_Check(value) or not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"value must be an int in [0, 2**32), got {value!r}")
    if data.shape[0] == 0:
        return <uint32_t>value
    return crc32_update(<uint32_t>value, <const char*>&data[0], data.shape[0])


def kraken_book_checksum(Book book not None, Grid price not None, Grid size not None,
                         object price_decimals, object qty_decimals):
    """Kraken's unsigned CRC-32 of ``book`` (top 10 levels a side), values written at the
    wire precision: ``price_decimals`` and ``qty_decimals``, each >= its grid's decimals."""
    cdef int pd = _decimals_arg(price, price_decimals, "price_decimals")
    cdef int qd = _decimals_arg(size, qty_decimals, "qty_decimals")
    return kraken_checksum(book, price, size, pd, qd)


def kraken_checksum_text(Book book not None, Grid price not None, Grid size not None,
                         object price_decimals, object qty_decimals):
    """The text ``kraken_book_checksum`` hashes (debugging aid: builds a Python str)."""
    cdef char buf[KRAKEN_TEXT_MAX + FORMAT_BUFSIZE]
    cdef int pd = _decimals_arg(price, price_decimals, "price_decimals")
    cdef int qd = _decimals_arg(size, qty_decimals, "qty_decimals")
    cdef Py_ssize_t n = _kraken_text(book, price, size, pd, qd, buf)
    return buf[:n].decode("ascii")


def okx_book_checksum(Book book not None, Grid price not None, Grid size not None):
    """OKX's signed CRC-32 of ``book`` (first 25 levels a side, interleaved)."""
    return okx_checksum(book, price, size)


def okx_checksum_text(Book book not None, Grid price not None, Grid size not None):
    """The text ``okx_book_checksum`` hashes (debugging aid: builds a Python str)."""
    cdef char buf[OKX_TEXT_MAX]
    cdef Py_ssize_t n = _okx_text(book, price, size, buf)
    return buf[:n].decode("ascii")
