"""Readers for raw market-data recordings, for replaying real venue traffic.

Two line formats made by other public projects are read (both plain text or gzip, told apart
by the gzip magic bytes, not by the file name):

* hftbacktest: ``<local receive time, ns since epoch> <raw JSON as received>``;
* cryptofeed (``AsyncFileCallback`` raw capture): a connection line
  ``<url> <-> <epoch s>``, outbound frames ``<url> <- <epoch s>: <json>``, inbound frames
  ``<epoch s>: <raw json>`` and HTTP responses ``<url> -> <epoch s>: <raw JSON body>``.

Payloads are returned as the exact bytes recorded (only the line ending is removed), so a
replay feeds a parser what the venue sent. Times become int nanoseconds by parsing the digits:
a float would round ``1618678134.213106`` to ``...213105999``. Blank lines are skipped (the
cryptofeed Kraken capture ends with two); any other line that does not match its format
raises ``RecordingError`` naming the file and the line number.
"""

from __future__ import annotations

import enum
import gzip
import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CryptofeedRecord",
    "HftRecord",
    "Kind",
    "RecordingError",
    "epoch_seconds_to_ns",
    "read_cryptofeed",
    "read_hftbacktest",
]

_GZIP_MAGIC = b"\x1f\x8b"
_NS_PER_S = 1_000_000_000
# ASCII digits only: a bytes pattern's \d never matches other scripts' digits.
_SECONDS = re.compile(rb"([0-9]+)(?:\.([0-9]+))?")
_NANOS = re.compile(rb"[0-9]+")
_ARROWS = {b"<->": "connect", b"<-": "outbound", b"->": "http"}
_SNIPPET = 60  # bytes of a bad line quoted in the error message


class RecordingError(ValueError):
    """A recording line that does not have its format's shape: ``<file>:<line>: <reason>``."""

    def __init__(self, path: str, lineno: int, reason: str) -> None:
        super().__init__(f"{path}:{lineno}: {reason}")
        self.path = path
        self.lineno = lineno
        self.reason = reason

    def __reduce__(self) -> tuple[type[RecordingError], tuple[str, int, str]]:
        # The default would call RecordingError(message): keep it picklable.
        return (type(self), (self.path, self.lineno, self.reason))


class Kind(enum.StrEnum):
    """What a cryptofeed line records."""

    CONNECT = "connect"  # the websocket connection was opened: no payload
    OUTBOUND = "outbound"  # a frame we sent (subscriptions)
    INBOUND = "inbound"  # a frame the venue sent
    HTTP = "http"  # the body of an HTTP response


@dataclass(frozen=True, slots=True)
class HftRecord:
    """One hftbacktest line: the local receive time and the message as received."""

    recv_ns: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class CryptofeedRecord:
    """One cryptofeed line. ``url`` is None for inbound frames (the line does not name it);
    ``payload`` is empty for a connect line."""

    kind: Kind
    url: str | None
    recv_ns: int
    payload: bytes


def epoch_seconds_to_ns(text: str | bytes) -> int:
    """Exact int ns for decimal seconds text (``"1618678134.213106"`` -> 1618678134213106000).

    Digits past the ninth decimal must be zeros: anything else is not a whole number of ns,
    and rounding it silently would make the result depend on where it was rounded. Raises
    ValueError on anything but plain non-negative decimal text.
    """
    if isinstance(text, str):
        # Non-ASCII text cannot match: "?" keeps it out without a second code path.
        raw, shown = text.encode("ascii", "replace"), repr(text)
    else:
        raw, shown = text, _quote(text)
    m = _SECONDS.fullmatch(raw)
    if m is None:
        raise ValueError(f"{shown} is not decimal seconds")
    whole, frac = m.group(1), m.group(2) or b""
    if frac[9:].strip(b"0"):
        raise ValueError(f"{shown} has digits below 1 ns")
    return int(whole) * _NS_PER_S + int(frac[:9].ljust(9, b"0"))


def read_hftbacktest(path: str | os.PathLike[str]) -> Iterator[HftRecord]:
    """Records of an hftbacktest file (gzip or plain), in file order."""
    name = os.fspath(path)
    for lineno, line in _lines(name):
        stamp, sep, payload = line.partition(b" ")
        if not sep:
            raise RecordingError(name, lineno, f"no space after the timestamp: {_quote(line)}")
        if _NANOS.fullmatch(stamp) is None:
            raise RecordingError(name, lineno, f"timestamp {_quote(stamp)} is not integer ns")
        if not payload:
            raise RecordingError(name, lineno, "empty payload")
        yield HftRecord(int(stamp), payload)


def read_cryptofeed(path: str | os.PathLike[str]) -> Iterator[CryptofeedRecord]:
    """Records of a cryptofeed raw capture (gzip or plain), in file order."""
    name = os.fspath(path)
    for lineno, line in _lines(name):
        try:
            yield _cryptofeed_record(line)
        except ValueError as exc:
            raise RecordingError(name, lineno, str(exc)) from None


def _cryptofeed_record(line: bytes) -> CryptofeedRecord:
    if line[:1].isdigit():
        # Inbound frames are the only lines that start with the time.
        stamp, sep, payload = line.partition(b": ")
        if not sep:
            raise ValueError(f"no ': ' after the time of an inbound frame: {_quote(line)}")
        return CryptofeedRecord(Kind.INBOUND, None, epoch_seconds_to_ns(stamp), _body(payload))
    url, _, rest = line.partition(b" ")
    arrow, _, rest = rest.partition(b" ")
    kind = _ARROWS.get(arrow)
    if kind is None:
        raise ValueError(f"expected '<url> <->|<-|-> <time>...': {_quote(line)}")
    try:
        url_text = url.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"url is not UTF-8: {_quote(url)}") from None
    if kind == "connect":
        return CryptofeedRecord(Kind.CONNECT, url_text, epoch_seconds_to_ns(rest), b"")
    stamp, sep, payload = rest.partition(b": ")
    if not sep:
        raise ValueError(f"no ': ' after the time of an {kind} line: {_quote(line)}")
    return CryptofeedRecord(Kind(kind), url_text, epoch_seconds_to_ns(stamp), _body(payload))


def _body(payload: bytes) -> bytes:
    if not payload:
        raise ValueError("empty payload")
    return payload


def _lines(name: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its line ending), blank lines skipped."""
    with _open(name) as f:
        lineno = 0
        it = iter(f)
        while True:
            try:
                line = next(it)
            except StopIteration:
                return
            except (EOFError, gzip.BadGzipFile) as exc:
                # A truncated gzip stream: say where the readable part ended.
                raise RecordingError(name, lineno + 1, f"corrupt gzip data ({exc})") from None
            lineno += 1
            line = line.removesuffix(b"\n").removesuffix(b"\r")
            if line:
                yield lineno, line


def _open(name: str) -> io.BufferedIOBase:
    with Path(name).open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(name, "rb")
    return Path(name).open("rb")


def _quote(raw: bytes) -> str:
    """A short, single-line rendering of (part of) a bad line for an error message: repr()
    escapes line breaks, so the message stays on one line."""
    shown = repr(raw[:_SNIPPET].decode("utf-8", "backslashreplace"))
    return shown + "..." if len(raw) > _SNIPPET else shown
