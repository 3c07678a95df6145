"""Recording readers (``arbengine.venues.recording``): the cryptofeed fixtures, the Binance
hftbacktest fixtures, and small hand-written files for every line shape and every error."""

from __future__ import annotations

import gzip
import pickle
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.venues.recording import (
    CryptofeedRecord,
    HftRecord,
    Kind,
    RecordingError,
    epoch_seconds_to_ns,
    read_cryptofeed,
    read_hftbacktest,
)

DATA = Path(__file__).resolve().parent / "data"
KRAKEN = DATA / "cryptofeed" / "KRAKEN.ws.50.0.gz"
OKX = DATA / "cryptofeed" / "OKX.ws.1.0.gz"
BINANCE_SPOT = DATA / "binance" / "spot_btcusdt_20240808_depth.gz"

# --- exact time conversion ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1618678134.213106", 1_618_678_134_213_106_000),
        ("1652459225.5037491", 1_652_459_225_503_749_100),
        ("1618678132.3858151", 1_618_678_132_385_815_100),
        ("1618678132", 1_618_678_132_000_000_000),
        ("0.000000001", 1),
        ("0", 0),
        ("1.123456789000", 1_123_456_789),  # zeros below 1 ns are harmless
        (b"1618678134.213106", 1_618_678_134_213_106_000),
    ],
)
def test_seconds_to_ns_is_exact(text: str | bytes, ns: int) -> None:
    assert epoch_seconds_to_ns(text) == ns


def test_a_float_would_not_be_exact() -> None:
    # Why the digits are parsed: the float path is off by one ns on the K3 example.
    assert int(float("1618678134.213106") * 1e9) != 1_618_678_134_213_106_000


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**19), st.integers(0, 9))
def test_seconds_to_ns_round_trips(ns: int, trailing_zeros: int) -> None:
    text = f"{ns // 10**9}.{ns % 10**9:09d}" + "0" * trailing_zeros
    assert epoch_seconds_to_ns(text) == ns


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1.0000000001", "has digits below 1 ns"),
        ("1.6e9", "is not decimal seconds"),
        ("-1.5", "is not decimal seconds"),
        ("+1.5", "is not decimal seconds"),
        ("1.", "is not decimal seconds"),
        (".5", "is not decimal seconds"),
        ("", "is not decimal seconds"),
        ("١٢٣", "is not decimal seconds"),  # Arabic-Indic digits: str.isdigit() says yes
        (" 1", "is not decimal seconds"),
    ],
)
def test_seconds_to_ns_refuses_anything_else(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        epoch_seconds_to_ns(text)


# --- the cryptofeed fixtures ----------------------------------------------------------------


def test_kraken_fixture_parses() -> None:
    records = list(read_cryptofeed(KRAKEN))
    # 4,325 lines: 4,323 records and the two blank lines the file ends with.
    assert Counter(r.kind for r in records) == {
        Kind.CONNECT: 1,
        Kind.OUTBOUND: 1,
        Kind.INBOUND: 4321,
    }
    assert records[0] == CryptofeedRecord(
        Kind.CONNECT, "wss://ws.kraken.com", 1_618_678_132_385_815_100, b""
    )
    sub = records[1]
    assert (sub.kind, sub.url, sub.recv_ns) == (
        Kind.OUTBOUND,
        "wss://ws.kraken.com",
        1_618_678_132_825_306_200,
    )
    assert sub.payload.startswith(b'{"event":"subscribe","pair":["WAVES/EUR"')
    # Line 25: the K3 example of venues.md, byte for byte.
    k3 = records[24]
    assert k3 == CryptofeedRecord(
        Kind.INBOUND,
        None,
        1_618_678_134_213_106_000,
        b'[992,{"b":[["354.15000000","5.00000000","1618678133.365913"]],"c":"2583817756"},'
        b'"book-1000","XMR/USD"]',
    )
    # Receive times never go backwards in this capture.
    times = [r.recv_ns for r in records]
    assert times == sorted(times)


def test_okx_fixture_parses() -> None:
    records = list(read_cryptofeed(OKX))
    assert Counter(r.kind for r in records) == {
        Kind.CONNECT: 1,
        Kind.OUTBOUND: 3,
        Kind.INBOUND: 410,
    }
    url = "wss://ws.okx.com:8443/ws/v5/public"
    assert records[0] == CryptofeedRecord(Kind.CONNECT, url, 1_652_459_224_530_060_500, b"")
    assert {r.url for r in records if r.kind is Kind.OUTBOUND} == {url}
    assert all(r.url is None for r in records if r.kind is Kind.INBOUND)
    last = records[-1]
    assert last.payload.endswith(b'"checksum":664471393}]}')


def test_plain_and_gzip_read_the_same(tmp_path: Path) -> None:
    plain = tmp_path / "KRAKEN.ws.50.0"
    plain.write_bytes(gzip.decompress(KRAKEN.read_bytes()))
    assert list(read_cryptofeed(plain)) == list(read_cryptofeed(KRAKEN))


# --- hftbacktest ----------------------------------------------------------------------------


def test_hftbacktest_fixture_parses() -> None:
    records = list(read_hftbacktest(BINANCE_SPOT))
    assert len(records) == 3452  # 3,451 depth events + the REST snapshot (ORIGIN.md)
    assert sum(r.payload.startswith(b'{"lastUpdateId":') for r in records) == 1
    assert all(
        r.payload.startswith((b'{"stream":"btcusdt@depth', b'{"lastUpdateId"')) for r in records
    )
    first = records[0]
    assert isinstance(first, HftRecord)
    with gzip.open(BINANCE_SPOT, "rb") as f:
        line = f.readline()
    assert line == b"%d %s\n" % (first.recv_ns, first.payload)


def test_hftbacktest_plain_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.txt"
    path.write_bytes(b'1723161253000000001 {"a":1}\n\n1723161253000000002 {"b": [1, 2]}\r\n')
    assert list(read_hftbacktest(path)) == [
        HftRecord(1_723_161_253_000_000_001, b'{"a":1}'),
        HftRecord(1_723_161_253_000_000_002, b'{"b": [1, 2]}'),
    ]


# --- hand-written cryptofeed files ----------------------------------------------------------

SAMPLE = (
    b"wss://ws.example.com/v2 <-> 1618678132.3858151\n"
    b'wss://ws.example.com/v2 <- 1618678132.8253062: {"op":"subscribe"}\n'
    b'1618678134.213106: [992,{"b":[]},"book-1000","XMR/USD"]\n'
    b"\n"
    b'https://api.example.com/0/public/AssetPairs -> 1618678132.358447: {"error":[]}\n'
    b"1618678135: {}\n"
)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_every_cryptofeed_line_shape(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / "capture.0"  # no .gz suffix either way: the magic bytes decide
    path.write_bytes(gzip.compress(SAMPLE) if compress else SAMPLE)
    assert list(read_cryptofeed(path)) == [
        CryptofeedRecord(Kind.CONNECT, "wss://ws.example.com/v2", 1_618_678_132_385_815_100, b""),
        CryptofeedRecord(
            Kind.OUTBOUND,
            "wss://ws.example.com/v2",
            1_618_678_132_825_306_200,
            b'{"op":"subscribe"}',
        ),
        CryptofeedRecord(
            Kind.INBOUND, None, 1_618_678_134_213_106_000, b'[992,{"b":[]},"book-1000","XMR/USD"]'
        ),
        CryptofeedRecord(
            Kind.HTTP,
            "https://api.example.com/0/public/AssetPairs",
            1_618_678_132_358_447_000,
            b'{"error":[]}',
        ),
        CryptofeedRecord(Kind.INBOUND, None, 1_618_678_135_000_000_000, b"{}"),
    ]


def test_payload_is_kept_byte_for_byte(tmp_path: Path) -> None:
    # ": " inside the payload, trailing spaces and non-ASCII stay as recorded.
    payload = '{"a": "b: c", "é": 1}  '.encode()
    path = tmp_path / "c"
    path.write_bytes(b"1.5: " + payload + b"\n")
    (rec,) = read_cryptofeed(path)
    assert rec.payload == payload


@pytest.mark.parametrize(
    ("lines", "lineno", "reason"),
    [
        (b"1.5 {}\n", 1, "no ': ' after the time of an inbound frame"),
        (b"1.5:{}\n", 1, "no ': ' after the time of an inbound frame"),
        (b"1.5: \n", 1, "empty payload"),
        (b"1.6e9: {}\n", 1, "'1.6e9' is not decimal seconds"),
        (b"1.0000000001: {}\n", 1, "has digits below 1 ns"),
        (b"wss://x <-> \n", 1, "'' is not decimal seconds"),
        (b"wss://x <-> 1.5: {}\n", 1, "'1.5: {}' is not decimal seconds"),
        (b"wss://x <= 1.5: {}\n", 1, "expected '<url> <->|<-|-> <time>...'"),
        (b"wss://x <- 1.5 {}\n", 1, "no ': ' after the time of an outbound line"),
        (b"https://x -> 1.5: \n", 1, "empty payload"),
        (b"\xff\xfe <- 1.5: {}\n", 1, "url is not UTF-8"),
        (b"1.5: {}\n\n\n  \n", 4, "expected '<url> <->|<-|-> <time>...'"),
        (b"1.5: {}\n{}\n", 2, "expected '<url> <->|<-|-> <time>...'"),
    ],
)
def test_bad_cryptofeed_lines_name_file_and_line(
    tmp_path: Path, lines: bytes, lineno: int, reason: str
) -> None:
    path = tmp_path / "bad.0"
    path.write_bytes(lines)
    with pytest.raises(RecordingError) as info:
        list(read_cryptofeed(path))
    err = info.value
    assert str(err).startswith(f"{path}:{lineno}: ")
    assert reason in str(err)
    assert "\n" not in str(err)
    assert (err.path, err.lineno) == (str(path), lineno)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("lines", "lineno", "reason"),
    [
        (b"1723161253000000001\n", 1, "no space after the timestamp"),
        (b'1 {}\n1.5 {"a":1}\n', 2, "timestamp '1.5' is not integer ns"),
        (b"-1 {}\n", 1, "timestamp '-1' is not integer ns"),
        (b"1 \n", 1, "empty payload"),
    ],
)
def test_bad_hftbacktest_lines_name_file_and_line(
    tmp_path: Path, lines: bytes, lineno: int, reason: str
) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(lines))
    with pytest.raises(
        RecordingError, match=f"^{re.escape(str(path))}:{lineno}: {re.escape(reason)}"
    ):
        list(read_hftbacktest(path))


def test_records_before_a_bad_line_are_delivered(tmp_path: Path) -> None:
    # Generators: a replay sees everything up to the bad line, then the error.
    path = tmp_path / "c"
    path.write_bytes(b"1: {}\n2: {}\noops\n")
    it = read_cryptofeed(path)
    assert [next(it).recv_ns, next(it).recv_ns] == [10**9, 2 * 10**9]
    with pytest.raises(RecordingError, match=r":3: "):
        next(it)


def test_long_bad_lines_are_shortened(tmp_path: Path) -> None:
    path = tmp_path / "c"
    path.write_bytes(b"x" * 10_000 + b"\n")
    with pytest.raises(RecordingError) as info:
        list(read_cryptofeed(path))
    assert len(str(info.value)) < 200 + len(str(path))


def test_truncated_gzip_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    data = gzip.compress(b"1: {}\n" * 10_000)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=r"corrupt gzip data"):
        list(read_cryptofeed(path))


def test_recording_error_pickles() -> None:
    err = RecordingError("f.gz", 7, "empty payload")
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.lineno, back.reason, str(back)) == (
        "f.gz",
        7,
        "empty payload",
        str(err),
    )


def test_records_are_immutable() -> None:
    rec = HftRecord(1, b"{}")
    with pytest.raises(AttributeError):
        rec.recv_ns = 2  # type: ignore[misc]
