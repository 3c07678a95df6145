"""The compiled order wire (``arbengine.gateways._wire``): each venue's templated WebSocket
order request against the plain-Python builder it replaced (``tests/reference/
order_frames.py``), the HMAC against the stdlib and Binance's published example, refusals,
and the write through a real picows connection on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import picows
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine._core.fixed import Grid
from arbengine._core.instrument import Instrument
from arbengine.config_schema import CredentialRef
from arbengine.config_secrets import Secret
from arbengine.gateways._wire import HmacSha256, OrderTemplate, OrderWire, Tracked, WsRequest
from arbengine.gateways.base import LiveGateway, VenueCredentials
from arbengine.gateways.binance import BinanceGateway, BinanceUsdmGateway
from arbengine.gateways.bybit import BybitGateway
from arbengine.gateways.kraken import KrakenGateway
from arbengine.gateways.okx import OkxGateway, cl_ord_id, client_id_of
from arbengine.orders import Order, Side, TimeInForce
from tests.reference import order_frames
from tests.waiting import until

REF = CredentialRef(source="env", name="TEST_WIRE")
# Binance's documentation key pair (web-socket-api.md "SIGNED request example (HMAC)").
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
CREDS = VenueCredentials(Secret(DOC_KEY, REF), Secret(DOC_SECRET, REF), Secret("pass-phrase", REF))

PRICE_STEPS = ["0.01", "0.1", "0.5", "1", "10", "0.00001", "0.05"]
SIZE_STEPS = ["0.001", "0.00000001", "1", "0.5", "0.01"]
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


WALL_NS = 1_763_800_000_123_456_789  # the gateways' wall clock in these tests


def _gateway(
    venue: str, symbol: str, price_step: str, size_step: str, ws_url: str | None = None
) -> LiveGateway:
    inst = Instrument(venue.split("_")[0], symbol, "BTC", "USDT", price_step, size_step)
    kw: dict[str, Any] = {"rest_url": "http://127.0.0.1:9", "wall": lambda: WALL_NS}
    kw["ws_url"] = ws_url
    if venue == "binance":
        return BinanceGateway("binance", [inst], CREDS, **kw)
    if venue == "binance_usdm":
        inst = Instrument(
            "binance_usdm", symbol, "BTC", "USDT", price_step, size_step, derivative=True
        )
        return BinanceUsdmGateway("binance_usdm", [inst], CREDS, **kw)
    if venue == "okx":
        return OkxGateway("okx", [inst], CREDS, **kw)
    if venue == "kraken":
        secret = base64.b64encode(bytes(range(64))).decode()
        creds = VenueCredentials(Secret("krakenKey01", REF), Secret(secret, REF))
        gw = KrakenGateway("kraken", [inst], creds, **kw)
        gw._token = KRAKEN_TOKEN  # what GetWebSocketsToken gave the connection
        return gw
    creds = VenueCredentials(Secret("bybitKey01", REF), Secret("bybit-secret", REF))
    return BybitGateway("bybit", [inst], creds, **kw)


REFERENCE: dict[str, Callable[[Any, Order, str, int], bytes]] = {
    "binance": order_frames.binance,
    "binance_usdm": order_frames.binance,
    "okx": order_frames.okx,
    "bybit": order_frames.bybit,
    "kraken": order_frames.kraken,
}
KRAKEN_TOKEN = "WW91ciBhdXRoZW50aWNhdGlvbiB0b2tlbiBnb2VzIGhlcmUu"


def _rendered(gw: LiveGateway, order: Order, req_id: str) -> tuple[bytes, bytes]:
    """(compiled request, reference request) of ``order`` as ``req_id``, and the record
    the venue keeps of it checked."""
    got = gw._entry.render(order, req_id)
    # The venue's clock in ms; OKX's {ts} is the request's expiry, one window later.
    ts = WALL_NS // 1_000_000 + gw.offset_ms
    if isinstance(gw, OkxGateway):
        ts += gw.recv_window_ms
        assert gw._exp_ms == {order.client_id: ts}
    elif isinstance(gw, BinanceGateway | BinanceUsdmGateway):
        assert gw._sent_ids == {order.client_id: ts}
    elif isinstance(gw, KrakenGateway):
        assert gw._sent == {order.client_id: ts}
    return got, REFERENCE[gw.kind](gw, order, req_id, ts)


@settings(max_examples=300, deadline=None)
@given(
    venue=st.sampled_from(sorted(REFERENCE)),
    price_step=st.sampled_from(PRICE_STEPS),
    size_step=st.sampled_from(SIZE_STEPS),
    price=st.integers(1, 10**12),
    size=st.integers(1, 10**12),
    client_id=st.text(ID_CHARS, min_size=1, max_size=16),
    req=st.integers(1, 10**12),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    tif=st.sampled_from([TimeInForce.IOC, TimeInForce.FOK]),
    offset_ms=st.integers(-(10**6), 10**6),
)
def test_compiled_request_is_byte_for_byte_the_reference(
    venue: str,
    price_step: str,
    size_step: str,
    price: int,
    size: int,
    client_id: str,
    req: int,
    side: Side,
    tif: TimeInForce,
    offset_ms: int,
) -> None:
    symbol = {"okx": "BTC-USDT", "kraken": "BTC/USD"}.get(venue, "BTCUSDT")
    gw = _gateway(venue, symbol, price_step, size_step)
    gw.offset_ms = offset_ms  # what sync_time measured: every {ts} carries it
    inst = next(iter(gw.instruments.values()))
    order = Order(client_id, "arb", inst, side, price, size, tif)
    if venue == "kraken" and tif is TimeInForce.FOK:
        # Kraken spot has no FOK: no WebSocket request, REST refuses it.
        with pytest.raises(ValueError, match="FOK orders go over REST on kraken"):
            gw._entry.render(order, str(req))
        return
    got, want = _rendered(gw, order, str(req))
    assert got == want


@settings(max_examples=500, deadline=None)
@given(st.text(ID_CHARS + "Z Zéd.", max_size=24))
def test_okx_client_id_escape_matches_the_per_character_reference(client_id: str) -> None:
    try:
        want: str | Exception = order_frames.okx_cl_ord_id(client_id)
    except ValueError as exc:
        want = exc
    if isinstance(want, Exception):
        with pytest.raises(ValueError) as err:
            cl_ord_id(client_id)
        assert str(err.value) == str(want)
    else:
        assert cl_ord_id(client_id) == want
        assert client_id_of(want) == client_id


def test_binance_request_signs_like_the_published_example() -> None:
    # web-socket-api.md "SIGNED request example (HMAC)": BTCUSDT SELL LIMIT GTC 0.01 at
    # 52000.00, recvWindow 100, timestamp 1645423376532 -> aa1b5712...
    price, size = Grid("0.01"), Grid("0.00000001")
    payload = OrderTemplate(
        f"apiKey={DOC_KEY}&price={{px}}&quantity={{sz}}&recvWindow=100&side=SELL"
        "&symbol=BTCUSDT&timeInForce=GTC&timestamp={ts}&type=LIMIT",
        price,
        size,
    )
    frame = OrderTemplate('{"id":"{id}","params":{"signature":"{sig}"}}', price, size)
    wire = OrderWire(DOC_SECRET.encode())
    unsigned = OrderWire().render(payload, None, "1", "c", 5_200_000, 1_000_000, 1645423376532)
    assert (
        unsigned
        == (
            f"apiKey={DOC_KEY}&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL"
            "&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT"
        ).encode()
    )
    out = orjson.loads(wire.render(frame, payload, "7", "c", 5_200_000, 1_000_000, 1645423376532))
    assert out == {
        "id": "7",
        "params": {"signature": "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"},
    }


def test_kraken_requests_carry_the_current_connections_token() -> None:
    gw = _gateway("kraken", "BTC/USD", "0.1", "0.00000001")
    assert isinstance(gw, KrakenGateway)
    inst = gw.instruments["BTC/USD"]
    order = Order("a-1-B", "a-1", inst, Side.BUY, 500_000, 1_000, TimeInForce.IOC)
    assert orjson.loads(gw._entry.render(order, "1"))["params"]["token"] == KRAKEN_TOKEN
    # A reconnect fetches a new token (_fetch_token clears the templates with it).
    gw._token = "bmV3LXRva2Vu"
    gw._templates.clear()
    again = Order("a-2-B", "a-2", inst, Side.BUY, 500_000, 1_000, TimeInForce.IOC)
    got = orjson.loads(gw._entry.render(again, "2"))
    assert got["params"]["token"] == "bmV3LXRva2Vu"
    assert got["req_id"] == 2 and got["params"]["limit_price"] == 50000.0


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=200), data=st.binary(max_size=600))
def test_hmac_matches_the_stdlib(key: bytes, data: bytes) -> None:
    assert HmacSha256(key).hexdigest(data) == hmac.new(key, data, hashlib.sha256).hexdigest()


def test_template_slots_and_literal_braces() -> None:
    grid = Grid("0.1")
    t = OrderTemplate('{"a":{"b":"{id}"},"c":{px},"{x}":"{sz}"}', grid, grid)
    assert (t.slots, t.signed) == (3, False)
    assert (
        OrderWire().render(t, None, "r9", "c", 15, 20, 0) == b'{"a":{"b":"r9"},"c":1.5,"{x}":"2.0"}'
    )
    # A slot at either end, and two slots back to back.
    t = OrderTemplate("{id}{cid}x{ts}", grid, grid)
    assert OrderWire().render(t, None, "a", "b", 1, 1, 1234567890123) == b"abx1234567890123"


@pytest.mark.parametrize(
    ("rid", "cid", "message"),
    [
        ("1 2", "c", "request id '1 2': ' ' is not a letter"),
        ("1", 'c"', "client id 'c\"': '\"' is not a letter"),
        ("1", "c&x=1", "client id 'c&x=1': '&' is not a letter"),
        ("1", "é", "client id 'é' is not ASCII"),
        ("", "c", "request id '' must have 1-64 characters"),
        ("1", "c" * 65, "must have 1-64 characters"),
    ],
)
def test_ids_that_could_break_the_request_are_refused(rid: str, cid: str, message: str) -> None:
    grid = Grid("0.01")
    t = OrderTemplate('{"id":"{id}","c":"{cid}"}', grid, grid)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as err:
        OrderWire().render(t, None, rid, cid, 1, 1, 1)
    assert "\n" not in str(err.value)


def test_numbers_are_exact_ints_and_in_range() -> None:
    grid = Grid("0.01")
    t = OrderTemplate("{px} {sz} {ts}", grid, grid)
    wire = OrderWire()
    with pytest.raises(TypeError, match=r"price must be an int, got float 1\.5"):
        wire.render(t, None, "1", "c", 1.5, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be > 0"):
        wire.render(t, None, "1", "c", 0, 1, 1)
    with pytest.raises(ValueError, match="must be > 0"):
        wire.render(t, None, "1", "c", 1, -1, 1)
    with pytest.raises(OverflowError, match="does not fit in int64"):
        wire.render(t, None, "1", "c", 1 << 63, 1, 1)
    big = Grid("10")  # 10 x units: overflows int64 before the units do
    with pytest.raises(ValueError, match="overflows its grid"):
        wire.render(OrderTemplate("{px}", big, big), None, "1", "c", (1 << 63) // 5, 1, 1)


def test_template_refusals() -> None:
    grid = Grid("0.01")
    with pytest.raises(ValueError, match="more than 12 slots"):
        OrderTemplate("{id}" * 13, grid, grid)
    with pytest.raises(ValueError, match="ASCII"):
        OrderTemplate("prix {px} €", grid, grid)
    signed = OrderTemplate('{"sig":"{sig}"}', grid, grid)
    payload = OrderTemplate("{px}", grid, grid)
    with pytest.raises(ValueError, match="needs a payload template and a key"):
        OrderWire().render(signed, payload, "1", "c", 1, 1, 1)  # no key
    with pytest.raises(ValueError, match="needs a payload template and a key"):
        OrderWire(b"k").render(signed, None, "1", "c", 1, 1, 1)
    with pytest.raises(ValueError, match="needs an unsigned payload template"):
        WsRequest(signed)
    with pytest.raises(ValueError, match="needs an unsigned payload template"):
        WsRequest(signed, signed)
    with pytest.raises(TypeError, match="id_map must be callable"):
        WsRequest(payload, id_map="upper")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="longer than 4096 bytes"):
        OrderWire().render(OrderTemplate("x" * 4097, grid, grid), None, "1", "c", 1, 1, 1)


@contextlib.asynccontextmanager
async def _text_server() -> AsyncIterator[tuple[picows.WSTransport, list[bytes]]]:
    """A picows client connected to a server on 127.0.0.1 that keeps each text frame."""
    received: list[bytes] = []

    class Server(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                received.append(frame.get_payload_as_bytes())

    server = await picows.ws_create_server(lambda _r: Server(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await picows.ws_connect(picows.WSListener, f"ws://127.0.0.1:{port}/")
    try:
        yield transport, received
    finally:
        transport.disconnect()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)


async def test_write_sends_each_request_as_one_text_frame() -> None:
    async with _text_server() as (transport, received):
        gw = _gateway("binance", "BTCUSDT", "0.01", "0.00001")
        inst = gw.instruments["BTCUSDT"]
        wire = OrderWire(DOC_SECRET.encode())
        sent = []
        # Lengths that shrink and grow: the buffer is reused and resized between writes.
        for i, cid in enumerate(["a-1", "a-long-client-id-22", "b"]):
            order = Order(cid, "arb", inst, Side.SELL, 10**8 + i, 10**4 + i, TimeInForce.IOC)
            request = gw._ws_templates(inst, order.side, order.tif)
            assert request is not None
            frame, payload = request.frame, request.payload
            rendered = wire.render(frame, payload, str(i), cid, order.price, order.size, 99)
            n = wire.write(transport, frame, payload, str(i), cid, order.price, order.size, 99)
            assert n == len(rendered)
            sent.append(rendered)
        await until(lambda: len(received) == 3)
        assert received == sent
        assert wire.written == 3
        assert orjson.loads(received[1])["params"]["newClientOrderId"] == "a-long-client-id-22"


@pytest.mark.parametrize("venue", sorted(REFERENCE))
async def test_warm_runs_submit_up_to_the_write_and_changes_nothing(venue: str) -> None:
    async with _text_server() as (transport, received):
        symbol = {"okx": "BTC-USDT", "kraken": "BTC/USD"}.get(venue, "BTCUSDT")
        gw = _gateway(venue, symbol, "0.01", "0.00001", ws_url="ws://127.0.0.1:9")
        assert gw.warm is not None
        gw._entry.transport, gw._ws_ok = transport, True  # what a logged-in connection sets
        inst = gw.instruments[symbol]
        before = gw.counters.as_dict()
        for side in (Side.BUY, Side.SELL):
            order = Order("warm-B", "warm", inst, side, 1, 1, TimeInForce.IOC)
            assert gw.warm(order) is True
        # Kraken spot has no FOK (REST refuses it), and another venue's instrument is not
        # this gateway's: nothing to warm.
        fok = Order("warm-F", "warm", inst, Side.BUY, 1, 1, TimeInForce.FOK)
        assert gw.warm(fok) is (venue != "kraken")
        other = Instrument("elsewhere", symbol, "BTC", "USDT", "0.01", "0.00001")
        assert gw.warm(Order("warm-O", "warm", other, Side.BUY, 1, 1)) is False
        records = [getattr(gw, name, {}) for name in ("_sent_ids", "_exp_ms", "_sent")]
        assert gw.counters.as_dict() == before and gw._entry.wire.written == 0
        assert not gw._tracked and not gw._ws_pending and not any(records)
        # The first real order is the first frame the venue sees, numbered 1.
        real = Order("a-1-B", "a-1", inst, Side.BUY, 3_000_000, 100, TimeInForce.IOC)
        assert gw.submit(real) > 0
        await until(lambda: len(received) == 1)
        await asyncio.sleep(0.05)
        assert len(received) == 1 and gw._entry.wire.written == 1
        assert gw.counters.submitted == 1 and gw.counters.ws_sent == 1
        assert list(gw._ws_pending.items()) == [("1", "a-1-B")]
        ts = WALL_NS // 1_000_000 + (gw.recv_window_ms if venue == "okx" else 0)
        assert received[0] == REFERENCE[gw.kind](gw, real, "1", ts)


def test_a_gateway_with_no_order_websocket_has_nothing_to_warm() -> None:
    for venue in REFERENCE:
        rest_only = _gateway(venue, "BTCUSDT", "0.01", "0.00001")  # no ws_url
        assert rest_only.warm is None
        assert _gateway(venue, "BTCUSDT", "0.01", "0.00001", "ws://127.0.0.1:9").warm is not None


def test_a_gateway_may_not_hide_the_compiled_submit() -> None:
    with pytest.raises(TypeError, match="Mine must not define submit: use _ws_templates"):

        class Mine(BinanceGateway):
            def submit(self, order: Order) -> int:
                return 0


def test_counters_are_c_integers_with_a_readable_form() -> None:
    gw = _gateway("okx", "BTC-USDT", "0.01", "0.00001")
    gw.counters.rejects += 2
    gw.counters.reject_codes["51001"] = 2
    assert gw.counters.as_dict()["rejects"] == 2
    assert "rejects=2" in repr(gw.counters) and "'51001': 2" in repr(gw.counters)
    with pytest.raises(TypeError):
        gw.counters.rejects = "2"  # type: ignore[assignment]


@pytest.mark.parametrize("venue", sorted(REFERENCE))
def test_forgetting_a_finished_order_drops_every_record_of_it(venue: str) -> None:
    symbol = {"okx": "BTC-USDT", "kraken": "BTC/USD"}.get(venue, "BTCUSDT")
    gw = _gateway(venue, symbol, "0.01", "0.00001")
    inst = gw.instruments[symbol]
    kept = Order("a-2-S", "a-2", inst, Side.SELL, 500_000, 1_000, TimeInForce.IOC)
    gone = Order("a-1-B", "a-1", inst, Side.BUY, 500_000, 1_000, TimeInForce.IOC)
    for o in (gone, kept):
        gw._entry.render(o, "1")  # keeps the venue's per-order record, as a submit does
    gw._tracked[gone.client_id] = Tracked(gone)
    gw._ws_pending["7"] = gone.client_id
    gw._forget(gone.client_id)
    records = [getattr(gw, name) for name in ("_sent_ids", "_exp_ms", "_sent") if hasattr(gw, name)]
    assert not gw._tracked and not gw._ws_pending
    assert all(list(r) == [kept.client_id] for r in records)
    if isinstance(gw, KrakenGateway):
        assert list(gw._names.values()) == [kept.client_id]
