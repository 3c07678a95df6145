# cython: language_level=3
"""Order requests from pre-built templates, rendered and written in C.

Building an order request in Python (a dict, ``Grid.format`` twice, ``orjson.dumps``, and
for Binance a sorted ``k=v&...`` payload and an HMAC) costs 4-15 µs warm and several
times that with the caches cold, as they are when an arb fires between book updates. A
gateway therefore renders each (instrument, side, time in force) request of its venue
once, as text with slots; per order only the slots are filled in:

* ``{id}``: the request id; ``{cid}``: the venue's client order id. Both are text checked
  to be ASCII letters, digits or ``-_.:``: they go into JSON strings and signed
  ``k=v&`` payloads unescaped.
* ``{px}`` / ``{sz}``: price / size units as the instrument grid's exact decimal text
  (``Grid.format_chars``; never a float).
* ``{ts}``: an integer (a timestamp or an expiry, ms).
* ``{sig}``: the lowercase hex HMAC-SHA256 of the same order rendered through a second
  template, the venue's signed payload (Binance's WebSocket API).

``OrderWire.write`` renders into a buffer with room in front for the WebSocket header and
hands it to picows' ``send_reuse_external_bytearray``, which frames and masks it in place
and writes it to the socket at once (copying only what the kernel does not take).
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from arbengine._core.fixed cimport FORMAT_BUFSIZE, Grid, format_decimal
from arbengine._core.ints cimport as_int64

import hashlib

from picows import WSMsgType

cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)

cdef object _TEXT = WSMsgType.TEXT
_SLOT_NAMES = {
    "id": SLOT_ID,
    "cid": SLOT_CID,
    "px": SLOT_PX,
    "sz": SLOT_SZ,
    "ts": SLOT_TS,
    "sig": SLOT_SIG,
}

# Characters an id may hold: safe unescaped in a JSON string and in a k=v& payload.
cdef bint _ID_OK[128]
for _c in range(128):
    _ID_OK[_c] = chr(_c).isalnum() or chr(_c) in "-_.:"

cdef const char* _HEX = b"0123456789abcdef"


@cython.auto_pickle(False)
cdef class HmacSha256:
    """HMAC-SHA256 (RFC 2104) with the key's two pads hashed once: per message, two copies
    of a hash state instead of a fresh keyed context."""

    def __init__(self, key):
        if not isinstance(key, bytes):
            raise TypeError(f"HMAC key must be bytes, got {type(key).__name__}")
        cdef bytes k = key if len(key) <= 64 else hashlib.sha256(key).digest()
        k = k.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes([b ^ 0x36 for b in k]))
        self._outer = hashlib.sha256(bytes([b ^ 0x5C for b in k]))

    cdef bytes digest(self, object data):
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def hexdigest(self, data) -> str:
        """Lowercase hex HMAC of ``data`` (bytes-like)."""
        return self.digest(data).hex()


@cython.auto_pickle(False)
cdef class OrderTemplate:
    """One order request of a venue with its per-order parts as slots (module docstring).

    ``text`` is the request with ``{id}``, ``{cid}``, ``{px}``, ``{sz}``, ``{ts}`` and
    ``{sig}`` where those go; other braces are literal (JSON). ``price`` and ``size`` are
    the instrument's grids."""

    def __init__(self, str text, Grid price, Grid size):
        if price is None or size is None:
            raise TypeError("an order template needs the instrument's price and size grids")
        cdef list parts = []
        cdef int slots = 0
        cdef Py_ssize_t at = 0, start = 0, close
        cdef bint signed = False
        while True:
            at = text.find("{", at)
            if at < 0:
                break
            close = text.find("}", at + 1)
            name = text[at + 1 : close] if close > 0 else ""
            kind = _SLOT_NAMES.get(name)
            if kind is None:
                at += 1  # JSON's own brace
                continue
            if slots == WIRE_MAX_SLOTS:
                raise ValueError(f"order template has more than {WIRE_MAX_SLOTS} slots")
            parts.append(text[start:at])
            self._kinds[slots] = kind
            signed = signed or kind == SLOT_SIG
            slots += 1
            at = start = close + 1
        parts.append(text[start:])
        try:
            encoded = [p.encode("ascii") for p in parts]
        except UnicodeEncodeError:
            raise ValueError("order template text must be ASCII") from None
        cdef Py_ssize_t end = 0
        for i, p in enumerate(encoded):
            end += len(p)
            self._cut[i] = end
        self._text = b"".join(encoded)
        self.slots = slots
        self.signed = signed
        self.price = price
        self.size = size

    cdef Py_ssize_t render(self, char* out, Py_ssize_t cap,
                           const char* rid, Py_ssize_t rid_n,
                           const char* cid, Py_ssize_t cid_n,
                           int64_t price, int64_t size, int64_t ts,
                           const char* sig) except -1:
        cdef const char* text = PyBytes_AS_STRING(self._text)
        cdef char num[FORMAT_BUFSIZE]
        cdef const char* src
        cdef Py_ssize_t at = 0, start = 0, n
        cdef int i
        for i in range(self.slots + 1):
            n = self._cut[i] - start
            if at + n > cap:
                raise ValueError(f"order request longer than {cap} bytes")
            memcpy(out + at, text + start, n)
            at += n
            start = self._cut[i]
            if i == self.slots:
                break
            kind = self._kinds[i]
            if kind == SLOT_ID:
                src, n = rid, rid_n
            elif kind == SLOT_CID:
                src, n = cid, cid_n
            elif kind == SLOT_PX:
                n = self.price.format_chars(price, False, num)
                src = num
            elif kind == SLOT_SZ:
                n = self.size.format_chars(size, False, num)
                src = num
            elif kind == SLOT_TS:
                n = format_decimal(ts, 0, 1, False, num)
                src = num
            else:
                src, n = sig, 64
            if n < 0:
                raise ValueError("order price or size overflows its grid")
            if at + n > cap:
                raise ValueError(f"order request longer than {cap} bytes")
            memcpy(out + at, src, n)
            at += n
        return at


cdef inline const char* _id_chars(str text, str what, Py_ssize_t* n) except NULL:
    if not PyUnicode_IS_COMPACT_ASCII(text):
        raise ValueError(f"{what} {text!r} is not ASCII")
    cdef Py_ssize_t length = PyUnicode_GET_LENGTH(text)
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_DATA(text)
    cdef Py_ssize_t i
    if length == 0 or length > WIRE_MAX_ID:
        raise ValueError(f"{what} {text!r} must have 1-{WIRE_MAX_ID} characters")
    for i in range(length):
        if not _ID_OK[p[i]]:
            raise ValueError(f"{what} {text!r}: {chr(p[i])!r} is not a letter, digit or -_.:")
    n[0] = length
    return <const char*>p


@cython.auto_pickle(False)
cdef class OrderWire:
    """Renders and writes one gateway's order requests. ``key``: the HMAC-SHA256 secret
    for templates with a ``{sig}`` slot (None: the venue signs nothing per order)."""

    def __init__(self, key=None):
        self._signer = HmacSha256(key) if key is not None else None
        self._frame = bytearray(WIRE_HEADER)
        self.written = 0

    cdef Py_ssize_t _render(self, OrderTemplate frame, OrderTemplate payload, str rid,
                            str cid, int64_t price, int64_t size, int64_t ts) except -1:
        cdef Py_ssize_t rid_n = 0, cid_n = 0, n, i
        cdef const char* r = _id_chars(rid, "request id", &rid_n)
        cdef const char* c = _id_chars(cid, "client id", &cid_n)
        cdef bytes digest
        cdef const unsigned char* d
        if price <= 0 or size <= 0 or ts < 0:
            raise ValueError(f"order price {price} and size {size} must be > 0, ts {ts} >= 0")
        if frame.signed:
            if payload is None or payload.signed or self._signer is None:
                raise ValueError("a {sig} template needs a payload template and a key")
            n = payload.render(self._payload, WIRE_CAPACITY, r, rid_n, c, cid_n,
                               price, size, ts, NULL)
            digest = self._signer.digest(PyBytes_FromStringAndSize(self._payload, n))
            d = <const unsigned char*>PyBytes_AS_STRING(digest)
            for i in range(32):
                self._sig[2 * i] = _HEX[d[i] >> 4]
                self._sig[2 * i + 1] = _HEX[d[i] & 15]
        n = frame.render(self._out, WIRE_CAPACITY, r, rid_n, c, cid_n, price, size, ts,
                         self._sig)
        # Rendered aside and copied: sizing the bytearray to the longest request first and
        # then down would reallocate it twice per order.
        if PyByteArray_Resize(self._frame, WIRE_HEADER + n) < 0:
            raise MemoryError()
        memcpy(PyByteArray_AS_STRING(self._frame) + WIRE_HEADER, self._out, n)
        return n

    cpdef bytes render(self, OrderTemplate frame, OrderTemplate payload, str rid, str cid,
                       object price, object size, object ts):
        """The request ``write`` would send, as bytes (unframed)."""
        if frame is None:
            raise TypeError("render needs a frame template")
        cdef Py_ssize_t n = self._render(frame, payload, rid, cid, as_int64(price, "price"),
                                         as_int64(size, "size"), as_int64(ts, "ts"))
        return PyByteArray_AS_STRING(self._frame)[WIRE_HEADER : WIRE_HEADER + n]

    cpdef Py_ssize_t write(self, object transport, OrderTemplate frame,
                           OrderTemplate payload, str rid, str cid, object price,
                           object size, object ts) except -1:
        """Render the request and write it to ``transport`` (a picows ``WSTransport``) as
        one text frame; returns its length. Raises (and writes nothing) when a slot's
        value is refused."""
        if frame is None:
            raise TypeError("write needs a frame template")
        cdef Py_ssize_t n = self._render(frame, payload, rid, cid, as_int64(price, "price"),
                                         as_int64(size, "size"), as_int64(ts, "ts"))
        transport.send_reuse_external_bytearray(_TEXT, self._frame, WIRE_HEADER)
        self.written += 1
        return n
