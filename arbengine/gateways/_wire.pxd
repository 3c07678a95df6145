# Order requests rendered from pre-built templates and written to the order WebSocket.
#
# A gateway renders each (instrument, side, time in force) order request of its venue once,
# as text with slots; per order only the slots are filled (request id, client id, price,
# size, timestamp, signature), in C, into one buffer that picows frames in place.

from libc.stdint cimport int64_t

from arbengine._core.fixed cimport Grid

cdef extern from "openssl/evp.h" nogil:
    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    const EVP_MD* EVP_sha256()
    EVP_MD_CTX* EVP_MD_CTX_new()
    void EVP_MD_CTX_free(EVP_MD_CTX* ctx)
    int EVP_DigestInit_ex(EVP_MD_CTX* ctx, const EVP_MD* md, void* engine)
    int EVP_DigestUpdate(EVP_MD_CTX* ctx, const void* data, size_t n)
    int EVP_DigestFinal_ex(EVP_MD_CTX* ctx, unsigned char* out, unsigned int* n)
    int EVP_MD_CTX_copy_ex(EVP_MD_CTX* out, const EVP_MD_CTX* src)

cdef enum:
    WIRE_MAX_SLOTS = 12      # slots in one template
    WIRE_CAPACITY = 4096     # longest rendered request, bytes
    WIRE_HEADER = 14         # room picows needs in front of a frame for its header
    WIRE_MAX_ID = 64         # longest request id or client id

cdef enum SlotKind:
    SLOT_ID = 0       # the request id (text, checked)
    SLOT_CID = 1      # the venue's client order id (text, checked)
    SLOT_PX = 2       # price units, as the price grid's decimal text
    SLOT_SZ = 3       # size units, as the size grid's decimal text
    SLOT_TS = 4       # an integer (a timestamp or an expiry, ms)
    SLOT_SIG = 5      # hex HMAC-SHA256 of the rendered payload template


cdef class HmacSha256:
    cdef EVP_MD_CTX* _inner  # SHA-256 state after (key ^ ipad)
    cdef EVP_MD_CTX* _outer  # SHA-256 state after (key ^ opad)
    cdef EVP_MD_CTX* _work   # the message's hash, copied from one of them

    # The 32-byte digest of ``n`` bytes at ``data`` into ``out``.
    cdef int digest_into(self, const char* data, size_t n, unsigned char* out) except -1


cdef class OrderTemplate:
    cdef bytes _text                          # the literal text, slots cut out
    cdef Py_ssize_t _cut[WIRE_MAX_SLOTS + 1]  # literal i ends at _cut[i] in _text
    cdef SlotKind _kinds[WIRE_MAX_SLOTS]
    cdef readonly int slots
    cdef readonly bint signed                 # has a SLOT_SIG
    cdef readonly Grid price
    cdef readonly Grid size

    # Writes at most ``cap`` bytes at ``out``; the length, or raises ValueError.
    cdef Py_ssize_t render(self, char* out, Py_ssize_t cap,
                           const char* rid, Py_ssize_t rid_n,
                           const char* cid, Py_ssize_t cid_n,
                           int64_t price, int64_t size, int64_t ts,
                           const char* sig) except -1


cdef class OrderWire:
    cdef HmacSha256 _signer
    cdef bytearray _frame         # WIRE_HEADER spare bytes, then the rendered request
    cdef char _payload[WIRE_CAPACITY]   # the signed payload of the order being rendered
    cdef char _out[WIRE_CAPACITY]       # the request, before it is copied behind the header
    cdef char _sig[64]
    cdef readonly int64_t written  # requests written

    cdef Py_ssize_t _render(self, OrderTemplate frame, OrderTemplate payload, str rid,
                            str cid, int64_t price, int64_t size, int64_t ts) except -1

    cdef Py_ssize_t _checked(self, OrderTemplate frame, OrderTemplate payload, str rid,
                             str cid, object price, object size, object ts) except -1

    cpdef bytes render(self, OrderTemplate frame, OrderTemplate payload, str rid, str cid,
                       object price, object size, object ts)
    cpdef Py_ssize_t write(self, object transport, OrderTemplate frame,
                           OrderTemplate payload, str rid, str cid, object price,
                           object size, object ts) except -1


cdef class WsRequest:
    # A venue's order request for one (instrument, side, time in force), with the per-order
    # rules: {ts} = venue clock ms + ts_add_ms; {cid} = id_map(client id) (None: as is);
    # remember[client id] = {ts} (None: nothing kept).
    cdef readonly OrderTemplate frame
    cdef readonly OrderTemplate payload
    cdef readonly int64_t ts_add_ms
    cdef readonly object id_map
    cdef readonly dict remember


cdef class GatewayCounters:
    # What the metrics and tests read (``LiveGateway.counters``).
    cdef public int64_t submitted      # orders handed to the gateway
    cdef public int64_t ws_sent        # written to the order WebSocket
    cdef public int64_t rest_sent      # REST placements, re-sends included
    cdef public int64_t retries
    cdef public int64_t rejects
    cdef public int64_t unknown
    cdef public int64_t rate_limited
    cdef public int64_t clock_resyncs
    cdef public int64_t usage_pauses   # sends paused because usage counters were full
    cdef public int64_t queries
    cdef public dict reject_codes      # venue code -> count


cdef class Tracked:
    # What a gateway has told its listener about one order, so nothing goes twice.
    cdef public object order
    cdef public bint acked
    cdef public bint done
    cdef public set trades                # trade ids reported
    cdef public str venue_order_id
    cdef public object task               # a REST placement in flight
    # A WebSocket request not yet answered: the clock ns after which the gateway's sweep
    # takes the order to REST (0: none waiting).
    cdef public int64_t ws_deadline


cdef class OrderEntry:
    # LiveGateway.submit, compiled: checks, tracking, and the WebSocket write or REST.
    cdef object _gw                       # the LiveGateway: its venue and REST hooks
    cdef dict _instruments                # the gateway's (shared, not copied)
    cdef dict _tracked                    # client id -> Tracked (the gateway's)
    cdef dict _pending                    # request id -> client id (the gateway's)
    cdef dict _templates                  # symbol -> [WsRequest | None] x (side, tif)
    cdef object _clock
    cdef object _wall                     # wall clock ns (the venue's clock is offset_ms off)
    cdef readonly OrderWire wire
    cdef readonly GatewayCounters counters
    cdef public object ws                 # the order WsFeed, once started
    # The WsFeed's direct transport while connected (the gateway sets it on connect and
    # clears it on disconnect); None with a send limiter: then ``ws.send`` queues.
    cdef public object transport
    cdef public bint ws_ok                # logged in (or no login needed)
    cdef public int64_t blocked_until_ns  # a 429/418 wait: no request before then
    cdef public int64_t offset_ms         # venue clock minus ours, from the last sync
    cdef public int64_t timeout_ns        # a WebSocket request's answer deadline
    cdef int64_t _next_req                # request ids: "1", "2", ... per gateway

    cdef WsRequest _request(self, object order)
    cdef int64_t _ts(self, WsRequest request) except? -1
    cdef str _venue_id(self, WsRequest request, str client_id, int64_t ts, bint keep)

    cpdef int64_t submit(self, object order) except -2
    cpdef bytes render(self, object order, str req_id)
    cpdef bint warm(self, object order) except -1
