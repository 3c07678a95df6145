"""The audit journal: every decision, order and fill, durable and tamper-evident.

What goes in: every opportunity acted on, every risk decision with its reason, every order,
ack, fill and cancel, every operator action and config change. Entries of one arbitrage share
an ``arb_id`` (bind it once with :meth:`Journal.arb` and both legs carry it).

Format. One JSON object per line (UTF-8, ``\\n``-terminated), rendered by orjson::

    {"seq":7,"ts":"2024-05-01T12:00:00.123456Z","event":"fill","arb_id":"a1",...,
     "prev":"<hash of entry 6>","hash":"<hash of this entry>"}

- ``seq`` counts from 1 and increments by exactly 1 across the whole journal, through
  rotations and restarts.
- ``ts`` is the UTC wall time of the entry (microseconds, ISO 8601, text).
- ``prev`` is the ``hash`` of the previous entry; the first entry of a journal (seq 1) has
  ``prev`` = :data:`GENESIS`, 64 zeros. (A journal id is not mixed in: a journal directory is
  identified by its files, and a fixed genesis lets anyone verify a journal from nothing.)
- ``hash`` = SHA-256 (lower-case hex) of the entry's **canonical bytes**:
  ``orjson.dumps(entry_without_the_hash_key, option=orjson.OPT_SORT_KEYS)``, i.e. compact
  JSON, keys sorted by code point at every level, no trailing newline. See :func:`canonical`.
- The line itself is ``orjson.dumps(entry)`` in insertion order (seq, ts, event, fields,
  prev, hash) so people can read it; :func:`verify` also checks that each line is exactly
  that rendering of its own content, so whitespace, escaping, key order or duplicated keys
  cannot be changed either.

Values are exact: ints (atoms, grid units, ns) or decimal text. Floats are refused with a
TypeError naming the field; Enums are written as their values; ``Decimal`` as plain text;
ints outside orjson's 64-bit range (large atom amounts) as their decimal text, because orjson
can't write them and JSON readers would turn them into floats (read them back with
:func:`as_int`).

Secrets never reach the file: any field whose key looks like a credential (api key, secret,
signature/sign, passphrase, jwt, token, password, authorization, private key, ...; any case,
any depth) is replaced by :data:`MASK`, and values registered with
:meth:`Journal.register_secret` are masked wherever they occur inside string values.

Durability without blocking the event loop. ``write`` runs a structlog processor chain inline
(redact, check values, stamp seq/ts/prev, hash, render: a few microseconds) and appends the
line to an in-memory queue. A writer thread takes batches of up to ``batch_entries`` lines,
or whatever arrived within ``batch_ms`` of the oldest waiting one, writes them with one
``os.write`` and fsyncs once per batch. :meth:`Journal.flush` / :meth:`Journal.aflush` wait
until everything written so far is on disk. The queue is unbounded on purpose (an audit trail
does not drop entries; ``backlog`` shows a stalling disk), and a failed write or fsync is
final: every later ``write``/``flush`` raises JournalError, so the daemon can stop trading.

Files. ``journal-YYYYMMDD-HHMMSS-<first seq, 12 digits>.jsonl`` (UTC time of the file's first
entry), so names sort in chain order. A new file starts when the current one would pass
``max_bytes``, at UTC midnight, and at every open: a file is written by one process, once,
and never touched again (except that a torn tail left by a crash is cut off, see below).

Crashes. A crash can leave the last line of the last file incomplete (a "torn tail": no
trailing newline, or NUL bytes after a power loss). :func:`verify` reports it separately from
tampering, :func:`read_entries` stops cleanly before it, and opening the directory again
copies the torn bytes to a ``<file>.torn`` side file, truncates them off, journals that it
did so, and continues the chain from the last intact entry. Everything a ``flush`` confirmed
is intact. Opening checks the last file and its link to the one before (cheap); ``verify``
checks everything. What a hash chain cannot show on its own is that entries were cut off the *end*:
keep the last hash (``arbengine journal verify`` prints it) somewhere else to anchor it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import hashlib
import itertools
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from arbengine import __version__
from arbengine._core.fixed import format_text
from arbengine.orders import Fill, Order, from_atoms

if TYPE_CHECKING:
    from arbengine._core.instrument import Instrument

GENESIS: Final = "0" * 64
MASK: Final = "[redacted]"
FORMAT: Final = 1  # written in every open event; bump if the line format changes

#: Keys the chain owns; a caller's field can't use them.
RESERVED: Final = frozenset({"seq", "ts", "prev", "hash"})

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson can write as a JSON number
_NS_PER_DAY = 86_400 * 10**9
_NAME = re.compile(r"^journal-(\d{8})-(\d{6})-(\d+)\.jsonl$")
_SORTED = orjson.OPT_SORT_KEYS


class Event(StrEnum):
    """The journal's event names. Any string is accepted; these are the ones we write."""

    OPPORTUNITY = "opportunity"  # an opportunity acted on (both sides, sizes, edge)
    RISK = "risk_decision"  # a gate's verdict and reason code
    ORDER = "order"  # an order handed to a gateway
    ACK = "ack"
    FILL = "fill"
    CANCEL = "cancel"  # IOC/FOK remainder expired, or canceled by us
    DONE = "order_done"  # final state of an order (filled/canceled/rejected)
    UNKNOWN = "order_unknown"  # no answer in time
    OPERATOR = "operator"  # an action from the control socket or CLI
    CONFIG = "config_change"
    JOURNAL_OPEN = "journal_open"  # first entry of every session
    JOURNAL_TORN = "journal_torn_tail"  # a crash's torn tail was cut off on open
    JOURNAL_CLOSE = "journal_close"  # clean shutdown


class JournalError(Exception):
    """The journal can't take entries (closed, writer failed, directory in use)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """The first broken entry found by :func:`verify`."""

    path: str
    line: int  # 1-based line number in ``path``
    seq: int | None  # the seq the line carries, if it has one
    expected_seq: int
    what: str

    def __str__(self) -> str:
        if self.seq is not None:
            who = f"seq {self.seq}"
        else:
            who = f"entry (expected seq {self.expected_seq})"
        return f"{self.path}:{self.line}: {who}: {self.what}"


class JournalCorrupt(JournalError):
    """The chain is broken somewhere other than a torn tail: not something to repair."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True, slots=True)
class TornTail:
    """Bytes at the end of the last file that are not a complete line (a crash mid-write)."""

    path: str
    line: int  # line number the torn bytes start on
    offset: int  # byte offset where they start = length of the intact part of the file
    length: int  # how many bytes are torn

    def __str__(self) -> str:
        return f"{self.path}:{self.line} ({self.length} bytes)"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool  # no problem found (a torn tail alone still counts as ok: it is not tampering)
    entries: int  # intact entries, in order
    files: int
    first_seq: int  # 0 if there were no entries
    last_seq: int  # seq of the last intact entry, 0 if none
    last_hash: str  # its hash (GENESIS if none): anchor it elsewhere
    problem: Problem | None = None
    torn: TornTail | None = None

    @property
    def clean(self) -> bool:
        return self.ok and self.torn is None

    def describe(self) -> str:
        """One line for operators (what ``arbengine journal verify`` prints)."""
        if self.problem is not None:
            return f"broken: {self.problem} ({self.entries} intact entries before it)"
        files = "file" if self.files == 1 else "files"
        entries = "entry" if self.entries == 1 else "entries"
        text = (
            f"ok: {self.entries} {entries} in {self.files} {files}, "
            f"last seq {self.last_seq}, last hash {self.last_hash}"
        )
        if self.first_seq > 1:
            text += f", from seq {self.first_seq} (not from genesis)"
        if self.torn is not None:
            text += f"; torn tail at {self.torn}, dropped on recovery"
        return text


# ----------------------------------------------------------------------------- values


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: sorted-key compact orjson of it without "hash"."""
    return orjson.dumps({k: v for k, v in entry.items() if k != "hash"}, option=_SORTED)


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def as_int(value: object) -> int:
    """An exact int back from a journal value: a JSON int, or the decimal text a >64-bit int
    is written as."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"not a journal integer: {value!r}")
    return int(value)


_SECRET_WORD_LIST = (
    "secret secrets secretkey signature signatures sig sign passphrase password passwd jwt "
    "token tokens authorization bearer cookie credential credentials apikey privatekey "
    "accesskey mnemonic"
)
_SECRET_WORDS: Final = frozenset(_SECRET_WORD_LIST.split())
# Two-word names whose words are harmless alone ("key", "private").
_SECRET_PAIRS: Final = frozenset({("api", "key"), ("private", "key"), ("access", "key")})
# Words of a key: "X-MBX-APIKEY" -> x mbx apikey, "apiKey" -> api key, "OK-ACCESS-SIGN" ->
# ok access sign. Whole words, so "signal" or "design" are not taken for "sign".
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_secret_key_cache: dict[str, bool] = {}


def is_secret_key(key: str) -> bool:
    """Whether a field named ``key`` would carry a credential (and so is masked)."""
    known = _secret_key_cache.get(key)
    if known is None:
        words = [w.lower() for w in _WORDS.findall(key)]
        known = any(w in _SECRET_WORDS for w in words) or any(
            pair in _SECRET_PAIRS for pair in itertools.pairwise(words)
        )
        if len(_secret_key_cache) < 4096:  # keys come from code: a small set
            _secret_key_cache[key] = known
    return known


# Types redaction leaves alone and _exact passes through as they are: the fast path, since
# the chain runs inline on the event loop for every entry.
_PLAIN: Final = frozenset({int, bool, type(None)})


def _redact(value: Any, secrets: re.Pattern[str] | None) -> Any:
    # Builds new containers: the caller's dicts and lists are never modified.
    if isinstance(value, str):
        return secrets.sub(MASK, value) if secrets is not None else value
    if isinstance(value, Mapping):
        return _redact_map(value, secrets)
    if isinstance(value, (list, tuple)):
        return [_redact(v, secrets) for v in value]
    return value


def _redact_map(value: Mapping[Any, Any], secrets: re.Pattern[str] | None) -> dict[Any, Any]:
    out = {}
    for k, v in value.items():
        if isinstance(k, str):
            secret = _secret_key_cache.get(k)
            if secret or (secret is None and is_secret_key(k)):
                v = MASK
            if secrets is not None:
                k = secrets.sub(MASK, k)
        kind = type(v)
        if kind is str:
            out[k] = secrets.sub(MASK, v) if secrets is not None else v
        elif kind in _PLAIN:
            out[k] = v
        else:
            out[k] = _redact(v, secrets)
    return out


def _exact(value: Any, path: str) -> Any:
    """A JSON-native copy of ``value`` in which every number is exact, or TypeError."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if isinstance(value, Enum):
        return _exact(value.value, path)
    if isinstance(value, float):
        raise TypeError(
            f"journal field {path!r} is a float ({value!r}): amounts are exact, "
            "write int atoms / grid units or decimal text"
        )
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _exact(int(value), path)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"journal field {path!r} is not a finite decimal")
        return format(value, "f")
    if isinstance(value, Mapping):
        return _exact_map(value, path)
    if isinstance(value, (list, tuple)):
        return [_exact(v, f"{path}[{i}]") for i, v in enumerate(value)]
    # Never the value's repr: an unexpected object could hold anything, secrets included.
    raise TypeError(f"journal field {path!r}: cannot write a {kind.__name__}")


def _exact_map(value: Mapping[Any, Any], path: str) -> dict[str, Any]:
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise TypeError(f"journal field {path!r} has a {type(k).__name__} key")
        kind = type(v)
        if (kind is str or kind is bool or v is None) or (
            kind is int and _INT_MIN <= v <= _INT_MAX
        ):
            out[str(k)] = v
        else:
            out[str(k)] = _exact(v, f"{path}.{k}" if path else k)
    return out


def _atoms_text(value: int) -> str:
    return format(from_atoms(value), "f")


def order_fields(order: Order) -> dict[str, Any]:
    """An order as journal fields: grid units (exact ints) plus their decimal text."""
    inst = order.instrument
    price, size = inst.price, inst.size
    return {
        "arb_id": order.arb_id,
        "client_id": order.client_id,
        "venue": inst.venue,
        "symbol": inst.symbol,
        "side": order.side,
        "tif": order.tif,
        "purpose": order.purpose,
        "status": order.status,
        "price": order.price,
        "price_text": price.format(order.price),
        "size": order.size,
        "size_text": size.format(order.size),
        "filled": order.filled,
        "filled_text": size.format(order.filled),
        # cost is in (price unit x size unit): its step is the product of the two steps.
        "cost": order.cost,
        "cost_text": format_text(
            order.cost, price.decimals + size.decimals, price.mantissa * size.mantissa
        ),
        "fee": order.fee,
        "fee_text": _atoms_text(order.fee),
        "fee_asset": order.fee_asset,
        "venue_order_id": order.venue_order_id,
        "reason": order.reason,
        "fills": len(order.fills),
        "created_ns": order.created_ns,
        "sent_ns": order.sent_ns,
        "acked_ns": order.acked_ns,
        "done_ns": order.done_ns,
    }


def fill_fields(fill: Fill, instrument: Instrument) -> dict[str, Any]:
    """A fill as journal fields (the instrument gives the grids for the decimal text)."""
    return {
        "client_id": fill.client_id,
        "trade_id": fill.trade_id,
        "venue": instrument.venue,
        "symbol": instrument.symbol,
        "price": fill.price,
        "price_text": instrument.price.format(fill.price),
        "size": fill.size,
        "size_text": instrument.size.format(fill.size),
        "fee": fill.fee,
        "fee_text": _atoms_text(fill.fee),
        "fee_asset": fill.fee_asset,
        "ts_ns": fill.ts_ns,
        "late": fill.late,
    }


# ----------------------------------------------------------------------------- files


def file_name(first_seq: int, wall_ns: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(wall_ns // 10**9))
    return f"journal-{stamp}-{first_seq:012d}.jsonl"


def journal_files(directory: str | os.PathLike[str]) -> list[Path]:
    """A directory's journal files in chain order (by the first seq in their names, which
    also survives a wall clock that stepped back)."""
    found = []
    for path in Path(directory).iterdir():
        m = _NAME.match(path.name)
        if m and path.is_file():
            found.append((int(m.group(3)), path.name, path))
    return [p for _, _, p in sorted(found)]


def _expand(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        paths.extend(journal_files(path) if path.is_dir() else [path])
    return paths


# ----------------------------------------------------------------------------- verify


def _check(
    raw: bytes, expected: int, prev_hash: str, free: bool
) -> tuple[dict[str, Any] | None, int | None, str | None]:
    """(entry, its seq, what is wrong or None). ``free``: first entry of a partial chain,
    which anchors the chain instead of being linked to anything."""
    if raw == b"\n":
        return None, None, "empty line"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, None, f"invalid JSON ({exc})"
    if not isinstance(obj, dict):
        return None, None, "not a JSON object"
    seq = obj.get("seq")
    if type(seq) is not int:
        return None, None, "no integer 'seq'"
    prev, recorded = obj.get("prev"), obj.get("hash")
    what = None
    if not free and seq != expected:
        hint = " (a journal starts at seq 1; --partial verifies a suffix)" if expected == 1 else ""
        what = f"seq {seq} out of order, expected {expected}{hint}"
    elif not isinstance(prev, str) or not isinstance(recorded, str):
        what = "no 'prev' or no 'hash'"
    elif not free and prev != prev_hash and prev_hash == GENESIS:
        what = f"prev {prev[:16]}… is not the genesis value (64 zeros)"
    elif not free and prev != prev_hash:
        what = f"prev {prev[:16]}… does not link to the previous entry's hash {prev_hash[:16]}…"
    elif (computed := entry_hash(obj)) != recorded:
        what = f"hash mismatch: content hashes to {computed[:16]}…, entry records {recorded[:16]}…"
    elif orjson.dumps(obj) + b"\n" != raw:
        # Same content, other bytes: the hash (over the content) can't see it, this can.
        what = (
            "bytes differ from the canonical rendering of the same content "
            "(whitespace, escapes, key order or duplicate keys were changed)"
        )
    return (None if what else obj), seq, what


def _nul_or_torn(rest: bytes) -> bool:
    """Whether what follows a NUL-only line is only more of the same (a power loss leaves
    zero-filled blocks) ending in at most one unterminated fragment."""
    *lines, _fragment = rest.split(b"\n")
    return all(not line.strip(b"\x00") for line in lines)


def _scan(
    paths: list[Path], *, partial: bool, start: tuple[int, str] | None = None
) -> Generator[dict[str, Any], None, VerifyResult]:
    """Yields each entry once it has been verified; returns the VerifyResult."""
    expected, prev_hash = start if start is not None else (1, GENESIS)
    free = partial and start is None
    entries = first_seq = 0

    def result(problem: Problem | None = None, torn: TornTail | None = None) -> VerifyResult:
        # With an anchor and no entries, the anchor is the last known entry.
        last_seq = expected - 1 if entries or start is not None else 0
        return VerifyResult(
            problem is None, entries, len(paths), first_seq, last_seq, prev_hash, problem, torn
        )

    for index, path in enumerate(paths):
        last_file = index == len(paths) - 1
        offset = lineno = 0
        with path.open("rb") as f:
            for raw in f:
                lineno += 1
                seq: int | None = None
                if not raw.endswith(b"\n"):
                    if last_file:
                        return result(torn=TornTail(str(path), lineno, offset, len(raw)))
                    what = "unterminated line (truncated write) in a file that is not the last"
                elif len(raw) > 1 and not raw[:-1].strip(b"\x00"):
                    rest = f.read()
                    if last_file and _nul_or_torn(rest):
                        torn = TornTail(str(path), lineno, offset, len(raw) + len(rest))
                        return result(torn=torn)
                    what = "line of NUL bytes"
                else:
                    obj, seq, problem = _check(raw, expected, prev_hash, free)
                    if obj is not None and seq is not None:
                        if entries == 0:
                            first_seq = seq
                        free = False
                        entries += 1
                        expected, prev_hash = seq + 1, obj["hash"]
                        offset += len(raw)
                        yield obj
                        continue
                    what = problem or "?"
                return result(Problem(str(path), lineno, seq, expected, what))
    return result()


def verify(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, partial: bool = False
) -> VerifyResult:
    """Check a journal given as files in chain order (directories expand to their journal
    files). Without ``partial`` the chain must start at genesis (seq 1); with it, the first
    entry anchors the chain (for a suffix whose older files were archived)."""
    return _drain(_scan(_expand(source), partial=partial))


def _drain(scan: Generator[dict[str, Any], None, VerifyResult]) -> VerifyResult:
    while True:
        try:
            next(scan)
        except StopIteration as stop:
            done: VerifyResult = stop.value
            return done


class EntryReader(Iterator[dict[str, Any]]):
    """Iterates verified entries in order; stops at a torn tail (see ``torn``) and raises
    JournalCorrupt at a broken entry (after yielding everything before it)."""

    def __init__(self, paths: list[Path], partial: bool) -> None:
        self._scan = _scan(paths, partial=partial)
        self.result: VerifyResult | None = None

    def __iter__(self) -> EntryReader:
        return self

    def __next__(self) -> dict[str, Any]:
        if self.result is not None:
            raise StopIteration
        try:
            return next(self._scan)
        except StopIteration as stop:
            self.result = stop.value
            assert self.result is not None
            if self.result.problem is not None:
                raise JournalCorrupt(self.result.problem) from None
            raise

    @property
    def torn(self) -> TornTail | None:
        return self.result.torn if self.result is not None else None


def read_entries(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, partial: bool = False
) -> EntryReader:
    """Recovery reader: the entries of a journal directory (or files, in order), verified,
    for rebuilding inventory, exposure, PnL and counters after a crash."""
    return EntryReader(_expand(source), partial)


def _last_entry(path: Path) -> tuple[int, str]:
    """(seq, hash) of a closed file's last entry, read from its end: the anchor a new file's
    chain must continue from. Falls back to a full scan to name a problem precisely."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos, tail = end, b""
        while pos > 0 and tail.count(b"\n") < 2:
            step = min(pos, 65_536)
            pos -= step
            f.seek(pos)
            tail = f.read(step) + tail
    raw = tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]
    try:
        obj = orjson.loads(raw)
        seq, digest = obj["seq"], obj["hash"]
        if raw.endswith(b"\n") and type(seq) is int and entry_hash(obj) == digest:
            return seq, str(digest)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    found = verify([path], partial=True)
    if found.problem is not None:
        raise JournalCorrupt(found.problem)
    line = found.torn.line if found.torn is not None else 0
    what = "unterminated line (truncated write) in a file that is not the last"
    raise JournalCorrupt(Problem(str(path), line, None, found.last_seq + 1, what))


# ----------------------------------------------------------------------------- writing


class FsyncFn(Protocol):
    def __call__(self, fd: int, /) -> None: ...


class _Handoff:
    """structlog's "wrapped logger": the end of the chain, handing lines to the writer."""

    __slots__ = ("journal", "lock")

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.lock = journal._lock

    def msg(self, line: bytes, *, seq: int, digest: str, wall_ns: int) -> int:
        return self.journal._enqueue(line, seq, digest, wall_ns)


class JournalLogger(structlog.BoundLoggerBase):
    """A structlog bound logger on a journal: ``bind`` context (an arb id, a venue), then
    ``write(event, **fields)``; each call is one entry and returns its seq."""

    def write(self, event: str, **fields: Any) -> int:
        # The whole chain runs under the journal's lock so that seq, prev and queue order
        # agree when several threads write; it is held for microseconds.
        with self._logger.lock:
            seq = self._proxy_to_logger("msg", event, **fields)
        assert isinstance(seq, int)
        return seq

    msg = write


class Journal:
    """An append-only, hash-chained, fsync-batched journal in a directory.

    Opening continues the chain left there (cutting off a torn tail first; refusing, with
    JournalCorrupt, a last file that is damaged otherwise); one process at a time (an flock
    on ``<dir>/.lock``). ``write`` never touches the disk.

    ``max_bytes`` / ``rotate_daily``: when a new file starts. ``batch_entries`` /
    ``batch_ms``: the writer fsyncs once per batch of that many entries, or once the oldest
    waiting entry has waited that long, whichever comes first (a flush cuts the wait short).
    ``fsync`` and ``clock`` (wall ns) are injectable for tests.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 64 << 20,
        rotate_daily: bool = True,
        batch_entries: int = 256,
        batch_ms: float = 20.0,
        fsync: FsyncFn = os.fsync,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if batch_entries < 1 or batch_ms < 0 or max_bytes < 1:
            raise ValueError("batch_entries and max_bytes must be >= 1, batch_ms >= 0")
        self.directory = Path(directory)
        self._max_bytes = max_bytes
        self._rotate_daily = rotate_daily
        self._batch_entries = batch_entries
        self._batch_s = batch_ms / 1000
        self._fsync = fsync
        self._clock = clock

        # One lock for the chain state and the queue: the write path takes it once.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: deque[tuple[bytes, int, int]] = deque()  # (line, seq, wall ns)
        self._pending_since = 0.0  # monotonic time the oldest pending line was queued
        self._flush_seq = 0  # the writer doesn't wait for a full batch up to this seq
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._error: BaseException | None = None
        self._closed = False
        self._secrets: set[str] = set()
        self._secret_re: re.Pattern[str] | None = None
        self._stamp_wall = 0
        self._ts_sec = -1
        self._ts_prefix = ""

        # Writer-thread state.
        self._fd: int | None = None
        self._size = 0
        self._day = 0
        self.files_created: list[Path] = []

        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JournalError(f"{self.directory} is in use by another journal") from None
        try:
            seq, digest, torn, removed = self._recover()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._seq = self._durable_seq = seq
        self._last_hash = digest

        self.processors: list[Processor] = [
            self._redact,
            self._exact,
            self._stamp,
            self._chain,
            self._render,
        ]
        self._root = JournalLogger(_Handoff(self), self.processors, {})
        self._thread = threading.Thread(target=self._run, name="arbengine-journal", daemon=True)
        self._thread.start()
        atexit.register(self.close)  # an orderly exit still writes what was queued

        self.write(
            Event.JOURNAL_OPEN,
            format=FORMAT,
            version=__version__,
            pid=os.getpid(),
            resumed_seq=seq,
            removed_empty=removed,
        )
        if torn is not None:
            self.write(Event.JOURNAL_TORN, **torn)

    # -- recovery -------------------------------------------------------------------------

    def _recover(self) -> tuple[int, str, dict[str, Any] | None, list[str]]:
        """(last seq, last hash, torn-tail record, removed empty files) of what is there."""
        files = journal_files(self.directory)
        removed = []
        # A crash between creating a file and writing to it leaves it empty; it holds
        # nothing, and a new file may need its name.
        while files and files[-1].stat().st_size == 0:
            removed.append(files[-1].name)
            files.pop().unlink()
        if removed:
            self._fsync_dir()
        if not files:
            return 0, GENESIS, None, removed
        last = files[-1]
        # The chain of the last file must continue from the last entry before it.
        earlier = [p for p in files[:-1] if p.stat().st_size > 0]
        anchor = _last_entry(earlier[-1]) if earlier else None
        start = (anchor[0] + 1, anchor[1]) if anchor is not None else None
        found = _drain(_scan([last], partial=False, start=start))
        if found.problem is not None:
            raise JournalCorrupt(found.problem)
        torn_record = None
        if found.torn is not None:
            torn_record = self._cut_torn_tail(last, found.torn)
            if found.entries == 0:  # nothing but torn bytes: the file goes (they are kept)
                last.unlink()
                torn_record["file_removed"] = True
            self._fsync_dir()
        if found.entries:
            return found.last_seq, found.last_hash, torn_record, removed
        if anchor is not None:
            return anchor[0], anchor[1], torn_record, removed
        return 0, GENESIS, torn_record, removed

    def _cut_torn_tail(self, path: Path, torn: TornTail) -> dict[str, Any]:
        # The torn bytes are kept, not destroyed: copied (and fsynced) to a side file
        # before the journal file is truncated back to its last intact line.
        side = path.with_name(path.name + ".torn")
        n = 0
        while side.exists():
            n += 1
            side = path.with_name(f"{path.name}.torn.{n}")
        with path.open("rb") as f:
            f.seek(torn.offset)
            data = f.read()
        fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            self._write_all(fd, data)
            self._fsync(fd)
        finally:
            os.close(fd)
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, torn.offset)
            self._fsync(fd)
        finally:
            os.close(fd)
        return {
            "file": path.name,
            "line": torn.line,
            "offset": torn.offset,
            "bytes": torn.length,
            "side_file": side.name,
        }

    # -- the processor chain (runs under self._lock) --------------------------------------

    def _redact(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        return _redact_map(event_dict, self._secret_re)

    def _exact(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        clash = RESERVED.intersection(event_dict)
        if clash:
            raise ValueError(f"journal fields {sorted(clash)} are reserved for the chain")
        return _exact_map(event_dict, "")

    def _stamp(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        # Fields that can fail have been checked by now: nothing below raises, so a refused
        # entry never uses up a seq (the seq and hash are committed in _enqueue).
        wall = self._clock()
        sec, ns = divmod(wall, 10**9)
        if sec != self._ts_sec:
            self._ts_sec = sec
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        self._stamp_wall = wall
        entry: EventDict = {
            "seq": self._seq + 1,
            "ts": f"{self._ts_prefix}.{ns // 1000:06d}Z",
            "event": event_dict.pop("event"),
        }
        entry.update(event_dict)
        entry["prev"] = self._last_hash
        return entry

    def _chain(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        digest = hashlib.sha256(orjson.dumps(event_dict, option=_SORTED)).hexdigest()
        event_dict["hash"] = digest
        return event_dict

    def _render(
        self, _logger: WrappedLogger, _method: str, event_dict: EventDict
    ) -> tuple[tuple[bytes], dict[str, Any]]:
        line = orjson.dumps(event_dict, option=orjson.OPT_APPEND_NEWLINE)
        meta = {"seq": event_dict["seq"], "digest": event_dict["hash"], "wall_ns": self._stamp_wall}
        return (line,), meta

    def _enqueue(self, line: bytes, seq: int, digest: str, wall_ns: int) -> int:
        # Called at the end of the chain, with self._lock held.
        if self._error is not None:
            raise JournalError(f"journal writer failed: {self._error!r}") from self._error
        if self._closed:
            raise JournalError("journal is closed")
        self._pending.append((line, seq, wall_ns))
        self._seq, self._last_hash = seq, digest
        n = len(self._pending)
        if n == 1:
            self._pending_since = time.monotonic()
            self._cond.notify()
        elif n >= self._batch_entries:
            self._cond.notify()
        return seq

    # -- public API -----------------------------------------------------------------------

    def write(self, event: str, **fields: Any) -> int:
        """Journal one entry; returns its seq. Never blocks on disk."""
        return self._root.write(event, **fields)

    def bind(self, **context: Any) -> JournalLogger:
        """A structlog bound logger whose entries all carry ``context``."""
        return self._root.bind(**context)

    def arb(self, arb_id: str) -> JournalLogger:
        """The logger for one arbitrage: both legs' entries carry the same ``arb_id``."""
        return self._root.bind(arb_id=arb_id)

    def register_secret(self, value: str) -> None:
        """Mask ``value`` wherever it appears in a string written from now on."""
        if not isinstance(value, str) or not value:
            raise ValueError("a secret is a non-empty string")
        with self._lock:
            self._secrets.add(value)
            # Longest first, so a secret containing another is masked whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._secret_re = re.compile("|".join(map(re.escape, ordered)))

    @property
    def last_seq(self) -> int:
        """Seq of the last entry written (queued)."""
        return self._seq

    @property
    def last_hash(self) -> str:
        return self._last_hash

    @property
    def durable_seq(self) -> int:
        """Seq of the last entry known to be on disk (written and fsynced)."""
        return self._durable_seq

    @property
    def backlog(self) -> int:
        """Entries queued but not yet on disk (for metrics)."""
        return len(self._pending)

    @property
    def error(self) -> BaseException | None:
        return self._error

    def files(self) -> list[Path]:
        return journal_files(self.directory)

    def _raise_failed(self) -> None:
        if self._error is not None:
            raise JournalError(f"journal writer failed: {self._error!r}") from self._error

    def flush(self, timeout: float | None = None) -> None:
        """Block until every entry written so far is durable. Not for the event loop: use
        ``await aflush()`` there."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._seq
            self._flush_seq = max(self._flush_seq, target)
            self._cond.notify_all()
            while self._durable_seq < target:
                self._raise_failed()
                if not self._thread.is_alive():
                    raise JournalError("journal writer is not running")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"journal not durable up to seq {target}")
                self._cond.wait(left)
            self._raise_failed()

    async def aflush(self) -> None:
        """``flush`` for the event loop: awaits the writer thread without blocking the loop."""
        loop = asyncio.get_running_loop()
        with self._cond:
            self._raise_failed()
            target = self._seq
            if self._durable_seq >= target:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((target, loop, future))
            self._flush_seq = max(self._flush_seq, target)
            self._cond.notify_all()
        await future

    def close(self) -> None:
        """Write a close entry, drain the queue to disk, stop the writer. Idempotent."""
        if self._closed:
            return
        atexit.unregister(self.close)
        if self._error is None:
            with contextlib.suppress(JournalError):  # a writer failure is raised below
                self.write(Event.JOURNAL_CLOSE, pid=os.getpid())
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        os.close(self._lock_fd)
        self._raise_failed()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._closed:
                        self._cond.wait()
                    if not self._pending:
                        return  # closed and drained
                    deadline = self._pending_since + self._batch_s
                    while (
                        len(self._pending) < self._batch_entries
                        and not self._closed
                        and self._flush_seq < self._pending[0][1]
                    ):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    take = min(len(self._pending), self._batch_entries)
                    batch = [self._pending.popleft() for _ in range(take)]
                    # Leftovers keep the old _pending_since: they were queued after it, so
                    # their deadline can only come early, never late.
                self._write_batch(batch)
                with self._cond:
                    self._durable_seq = batch[-1][1]
                    self._cond.notify_all()
                    self._wake_waiters()
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()
                self._wake_waiters()

    def _wake_waiters(self) -> None:
        keep = []
        for target, loop, future in self._waiters:
            if self._error is None and target > self._durable_seq:
                keep.append((target, loop, future))
                continue
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, self._error)
        self._waiters = keep

    def _write_batch(self, batch: list[tuple[bytes, int, int]]) -> None:
        chunk: list[bytes] = []
        for line, seq, wall_ns in batch:
            day = wall_ns // _NS_PER_DAY
            if (
                self._fd is None
                or self._size + len(line) > self._max_bytes
                or (self._rotate_daily and day != self._day)
            ):
                if chunk:
                    assert self._fd is not None
                    self._write_all(self._fd, b"".join(chunk))
                    chunk = []
                self._open_file(seq, wall_ns, day)
            chunk.append(line)
            self._size += len(line)
        assert self._fd is not None
        self._write_all(self._fd, b"".join(chunk))
        self._fsync(self._fd)

    def _open_file(self, seq: int, wall_ns: int, day: int) -> None:
        if self._fd is not None:
            self._fsync(self._fd)  # the old file is complete before the new one begins
            os.close(self._fd)
            self._fd = None
        path = self.directory / file_name(seq, wall_ns)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        self._fsync_dir()  # the new name itself must survive a power loss
        self._size, self._day = 0, day
        self.files_created.append(path)

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(JournalError(f"journal writer failed: {error!r}"))
