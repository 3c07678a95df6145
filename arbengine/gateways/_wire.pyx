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
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t
from libc.string cimport memcpy

from arbengine._core.fixed cimport FORMAT_BUFSIZE, Grid, format_decimal
from arbengine._core.ints cimport as_int64

import hashlib

from picows import WSMsgType

from arbengine.orders import Side, TimeInForce

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
    """HMAC-SHA256 (RFC 2104) on OpenSSL's SHA-256 (the libcrypto Python's own hashlib
    uses), with the key's two pads hashed once: per message, two copies of a hash state
    and no Python object, where ``hmac.new`` builds a keyed context and ``hashlib`` copies
    allocate Python objects (12 µs per order, cache-cold, in the engine benchmark)."""

    def __cinit__(self):
        self._inner = EVP_MD_CTX_new()
        self._outer = EVP_MD_CTX_new()
        self._work = EVP_MD_CTX_new()
        if self._inner == NULL or self._outer == NULL or self._work == NULL:
            raise MemoryError()

    def __dealloc__(self):
        EVP_MD_CTX_free(self._inner)
        EVP_MD_CTX_free(self._outer)
        EVP_MD_CTX_free(self._work)

    def __init__(self, key):
        if not isinstance(key, bytes):
            raise TypeError(f"HMAC key must be bytes, got {type(key).__name__}")
        cdef bytes k = key if len(key) <= 64 else hashlib.sha256(key).digest()
        k = k.ljust(64, b"\0")
        cdef bytes ipad = bytes([b ^ 0x36 for b in k])
        cdef bytes opad = bytes([b ^ 0x5C for b in k])
        if not (
            EVP_DigestInit_ex(self._inner, EVP_sha256(), NULL)
            and EVP_DigestUpdate(self._inner, <const char*>ipad, 64)
            and EVP_DigestInit_ex(self._outer, EVP_sha256(), NULL)
            and EVP_DigestUpdate(self._outer, <const char*>opad, 64)
        ):
            raise RuntimeError("OpenSSL SHA-256 is not available")

    cdef int digest_into(self, const char* data, size_t n, unsigned char* out) except -1:
        cdef unsigned char inner[32]
        cdef unsigned int size = 0
        if not (
            EVP_MD_CTX_copy_ex(self._work, self._inner)
            and EVP_DigestUpdate(self._work, data, n)
            and EVP_DigestFinal_ex(self._work, inner, &size)
            and EVP_MD_CTX_copy_ex(self._work, self._outer)
            and EVP_DigestUpdate(self._work, inner, 32)
            and EVP_DigestFinal_ex(self._work, out, &size)
        ):
            raise RuntimeError("OpenSSL SHA-256 failed")
        return 0

    def hexdigest(self, data) -> str:
        """Lowercase hex HMAC of ``data`` (bytes-like)."""
        cdef bytes text = bytes(data)
        cdef unsigned char out[32]
        self.digest_into(PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), out)
        return (<bytes>out[:32]).hex()


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
        cdef unsigned char d[32]
        if price <= 0 or size <= 0 or ts < 0:
            raise ValueError(f"order price {price} and size {size} must be > 0, ts {ts} >= 0")
        if frame.signed:
            if payload is None or payload.signed or self._signer is None:
                raise ValueError("a {sig} template needs a payload template and a key")
            n = payload.render(self._payload, WIRE_CAPACITY, r, rid_n, c, cid_n,
                               price, size, ts, NULL)
            self._signer.digest_into(self._payload, n, d)
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

    cdef Py_ssize_t _checked(self, OrderTemplate frame, OrderTemplate payload, str rid,
                             str cid, object price, object size, object ts) except -1:
        # The Python-facing entries: exact ints only (a float would truncate), then render.
        if frame is None:
            raise TypeError("an order request needs a frame template")
        return self._render(frame, payload, rid, cid, as_int64(price, "price"),
                            as_int64(size, "size"), as_int64(ts, "ts"))

    cpdef bytes render(self, OrderTemplate frame, OrderTemplate payload, str rid, str cid,
                       object price, object size, object ts):
        """The request ``write`` would send, as bytes (unframed)."""
        cdef Py_ssize_t n = self._checked(frame, payload, rid, cid, price, size, ts)
        return PyByteArray_AS_STRING(self._frame)[WIRE_HEADER : WIRE_HEADER + n]

    cpdef Py_ssize_t write(self, object transport, OrderTemplate frame,
                           OrderTemplate payload, str rid, str cid, object price,
                           object size, object ts) except -1:
        """Render the request and write it to ``transport`` (a picows ``WSTransport``) as
        one text frame; returns its length. Raises (and writes nothing) when a slot's
        value is refused."""
        cdef Py_ssize_t n = self._checked(frame, payload, rid, cid, price, size, ts)
        transport.send_reuse_external_bytearray(_TEXT, self._frame, WIRE_HEADER)
        self.written += 1
        return n


@cython.auto_pickle(False)
@cython.final
cdef class WsRequest:
    """A venue's order request for one (instrument, side, time in force): the ``frame``
    template, the ``payload`` its ``{sig}`` signs (None: unsigned), and per order: ``{ts}``
    = the venue's clock in ms plus ``ts_add_ms`` (an expiry: OKX's expTime); ``{cid}`` =
    ``id_map(client id)`` (None: the client id as is); and ``remember[client id] = {ts}``
    when ``remember`` is given (what the venue's REST re-send checks)."""

    def __init__(self, OrderTemplate frame not None, OrderTemplate payload=None, *,
                 ts_add_ms=0, id_map=None, dict remember=None):
        if frame.signed and (payload is None or payload.signed):
            raise ValueError("a {sig} frame needs an unsigned payload template")
        if id_map is not None and not callable(id_map):
            raise TypeError("id_map must be callable")
        self.frame = frame
        self.payload = payload
        self.ts_add_ms = as_int64(ts_add_ms, "ts_add_ms")
        self.id_map = id_map
        self.remember = remember


_COUNTER_NAMES = (
    "submitted", "ws_sent", "rest_sent", "retries", "rejects", "unknown", "rate_limited",
    "clock_resyncs", "usage_pauses", "queries",
)


@cython.auto_pickle(False)
@cython.final
cdef class GatewayCounters:
    """A live gateway's counts, which the metrics and tests read: C integers, so that
    counting an order on the arb path is an add, not a Python attribute lookup."""

    def __init__(self):
        self.reject_codes = {}

    def as_dict(self) -> dict:
        out = {name: getattr(self, name) for name in _COUNTER_NAMES}
        out["reject_codes"] = dict(self.reject_codes)
        return out

    def __repr__(self) -> str:
        text = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"GatewayCounters({text})"


@cython.auto_pickle(False)
@cython.final
@cython.freelist(16)
cdef class Tracked:
    """What a gateway has told its listener about one order (``LiveGateway``)."""

    def __init__(self, order):
        self.order = order
        self.acked = False
        self.done = False
        self.trades = set()
        self.venue_order_id = ""
        self.task = None
        self.ws_deadline = 0


# (side, time in force) -> the slot of an instrument's request list.
cdef object _BUY = Side.BUY
cdef object _SELL = Side.SELL
cdef object _IOC = TimeInForce.IOC
cdef object _FOK = TimeInForce.FOK
# A template slot whose order goes over REST (the venue's hook said so).
cdef object _BY_REST = object()


@cython.auto_pickle(False)
@cython.final
cdef class OrderEntry:
    """``LiveGateway.submit``, compiled: the order checked and tracked and, when the order
    WebSocket is up and no 429/418 wait runs, its request written and a deadline set for
    the answer; otherwise the gateway's ``_rest_submit`` sends it. Returns the clock after
    the order's bytes are written (or it is handed to REST).

    The gateway binds ``submit`` as its own, so an arb's leg goes from the executor to
    here without a Python frame in between, and what it reads per order lives here as C
    fields (the counters, the venue clock offset, the timeout, the connected transport):
    with the caches cold after a few hundred book updates, every Python attribute lookup
    on the way costs a microsecond or more.

    The venue's part is its ``_ws_templates`` hook, called once per instrument, side and
    time in force: a ``WsRequest`` whose templates and per-order rules are applied here, or
    None when such orders go over REST."""

    def __init__(self, gw, dict instruments, dict tracked, dict pending, dict templates,
                 clock, wall, OrderWire wire, GatewayCounters counters):
        self._gw = gw
        self._wall = wall
        self._instruments = instruments
        self._tracked = tracked
        self._pending = pending
        self._templates = templates
        self._clock = clock
        self.wire = wire
        self.counters = counters
        self.ws = None
        self.transport = None
        self.ws_ok = False
        self.blocked_until_ns = 0
        self.offset_ms = 0
        self.timeout_ns = 0
        self._next_req = 0

    cpdef int64_t submit(self, object order) except -2:
        inst = order.instrument
        mine = self._instruments.get(inst.symbol)
        if mine is not inst and (mine is None or mine.name != inst.name):
            raise ValueError(f"{inst.name} is not traded through {self._gw.venue}")
        client_id = order.client_id
        if client_id in self._tracked:
            raise ValueError(f"client id {client_id} was already submitted")
        cdef Tracked tracked = Tracked(order)
        self._tracked[client_id] = tracked
        self.counters.submitted += 1
        # While a 429/418 wait lasts, orders take the REST path, where they are refused
        # without a request: venues count WebSocket order requests against the same limits.
        if not self.ws_ok:
            return self._gw._rest_submit(tracked)
        transport = self.transport
        ws = self.ws
        if transport is None and (ws is None or not ws.connected):
            return self._gw._rest_submit(tracked)
        cdef int64_t now = self._clock()
        if now < self.blocked_until_ns:
            return self._gw._rest_submit(tracked)
        cdef WsRequest request = self._request(order)
        if request is None:
            return self._gw._rest_submit(tracked)
        self._next_req += 1
        req_id = str(self._next_req)
        cdef int64_t ts = self._ts(request)
        venue_id = self._venue_id(request, client_id, ts, True)
        if transport is None:  # the socket has a send limiter: it queues the bytes
            ws.send(self.wire.render(request.frame, request.payload, req_id, venue_id,
                                     order.price, order.size, ts))
        else:
            self.wire.write(transport, request.frame, request.payload, req_id, venue_id,
                            order.price, order.size, ts)
        cdef int64_t sent = self._clock()
        self._pending[req_id] = client_id
        self.counters.ws_sent += 1
        # The answer may never come (a dropped connection): past this deadline the
        # gateway's sweep sends the order the REST way to find out, with the same client
        # id. A deadline, not a timer or a task per order: most answers come first.
        tracked.ws_deadline = sent + self.timeout_ns
        return sent

    cdef WsRequest _request(self, object order):
        """The venue's request for ``order``'s instrument, side and time in force (None:
        over REST), built on first use and again after the gateway clears them."""
        side, tif = order.side, order.tif
        cdef int slot
        if side is _BUY:
            slot = 0
        elif side is _SELL:
            slot = 2
        else:
            raise ValueError(f"order side {side!r} is not a Side")
        if tif is _FOK:
            slot += 1
        elif tif is not _IOC:
            raise ValueError(f"order time in force {tif!r} is not IOC or FOK")
        inst = order.instrument
        cdef list kinds = self._templates.get(inst.symbol)
        if kinds is None:
            kinds = self._templates[inst.symbol] = [None, None, None, None]
        request = kinds[slot]
        if request is None:
            request = self._gw._ws_templates(inst, side, tif)
            if request is None:
                request = _BY_REST
            elif not isinstance(request, WsRequest):
                raise TypeError(f"_ws_templates must give a WsRequest or None, not {request!r}")
            kinds[slot] = request
        return None if request is _BY_REST else <WsRequest>request

    cdef int64_t _ts(self, WsRequest request) except? -1:
        # The venue's clock in ms (our wall clock plus the last sync's offset), plus the
        # request's own addition (an expiry).
        return <int64_t>self._wall() // 1_000_000 + self.offset_ms + request.ts_add_ms

    cdef str _venue_id(self, WsRequest request, str client_id, int64_t ts, bint keep):
        """The client id as the venue takes it, with ``{ts}`` kept if the request asks and
        ``keep`` (not for a warm-up)."""
        venue_id = client_id if request.id_map is None else request.id_map(client_id)
        if keep and request.remember is not None:
            request.remember[client_id] = ts
        return venue_id

    cpdef bytes render(self, object order, str req_id):
        """The request ``submit`` would write for ``order`` as ``req_id`` now (with the
        venue's per-order record kept), unframed."""
        cdef WsRequest request = self._request(order)
        if request is None:
            raise ValueError(f"{order.tif} orders go over REST on {self._gw.venue}")
        cdef int64_t ts = self._ts(request)
        venue_id = self._venue_id(request, order.client_id, ts, True)
        return self.wire.render(request.frame, request.payload, req_id, venue_id,
                                order.price, order.size, ts)

    cpdef bint warm(self, object order) except -1:
        """Everything ``submit`` would do for ``order`` up to the write, with no effect: no
        tracking, count, request id or record, and nothing written (False: such orders go
        over REST, or its instrument is not this gateway's).

        Between two arbs a few hundred book updates go through the caches and evict this
        path's code and data, and a cold submit costs several times a warm one; the engine
        calls this every few book updates so that the next arb finds it warm (the order
        path's "warm-up" of latency-critical trading systems)."""
        inst = order.instrument
        if self._instruments.get(inst.symbol) is not inst:
            return False
        cdef WsRequest request = self._request(order)
        if request is None:
            return False
        cdef int64_t ts = self._ts(request)
        venue_id = self._venue_id(request, order.client_id, ts, False)
        self.wire._checked(request.frame, request.payload, "0", venue_id, order.price,
                           order.size, ts)
        return True
