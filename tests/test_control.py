"""The control socket over a real Unix socket, on the real engine of tests/engine_rig.py.

Each test serves ``EngineControl`` over the rig's Engine, RiskGates, Portfolio and Journal
on a socket in a fresh directory and talks to it as ``arbengine ctl`` does (the blocking
client in a thread, the server on the test's loop) or byte by byte for bad requests. Every
async test runs on asyncio and on uvloop (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from arbengine.control import (
    MAX_REQUEST,
    Action,
    ControlError,
    ControlServer,
    ControlSocketError,
    EngineControl,
    ReloadResult,
    request,
)
from arbengine.execution import ArbState, ExecutionPolicy
from arbengine.orders import from_atoms
from arbengine.risk import KillLevel
from tests.engine_rig import QUIET, Make, Rig, refused
from tests.waiting import until

ME = os.getuid()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short: a socket path must fit sun_path (108 bytes), pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="ctl", dir="/tmp") as d:
        yield Path(d)


class Reloads:
    """The daemon's reload, as far as the socket sees it: a callback and its answer."""

    def __init__(self) -> None:
        self.calls: list[Action] = []
        self.answer: ReloadResult = {"changed": [], "refused": []}
        self.fail: Exception | None = None

    async def __call__(self, action: Action) -> ReloadResult:
        self.calls.append(action)
        await asyncio.sleep(0)  # a real reload awaits (reads the file off the loop)
        if self.fail is not None:
            raise self.fail
        return self.answer


class Served:
    def __init__(self, rig: Rig, server: ControlServer, reloads: Reloads) -> None:
        self.rig = rig
        self.server = server
        self.path = server.path
        self.reloads = reloads

    async def ask(self, **payload: Any) -> dict[str, Any]:
        """One request as ``arbengine ctl`` sends it (blocking client, in a thread)."""
        return await asyncio.to_thread(request, self.path, payload, timeout=10)


@contextlib.asynccontextmanager
async def serve(rig: Rig, sock_dir: Path) -> AsyncIterator[Served]:
    reloads = Reloads()
    server = ControlServer(sock_dir / "control.sock", EngineControl(rig.engine, reload=reloads))
    async with server:
        yield Served(rig, server, reloads)


@pytest.fixture
async def served(make: Make, sock_dir: Path) -> AsyncIterator[Served]:
    async with serve(make(), sock_dir) as s:
        yield s


class Raw:
    """A client that sends exact bytes and reads reply lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, path: Path) -> Raw:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=2**24)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), 10)
        assert line.endswith(b"\n") and line.count(b"\n") == 1, line
        reply: dict[str, Any] = orjson.loads(line)
        return reply

    async def ask(self, data: bytes) -> dict[str, Any]:
        await self.send(data)
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def kill_events(rig: Rig) -> list[dict[str, Any]]:
    return [e for e in rig.entries() if e["event"] == "kill_switch"]


# --- the socket file -------------------------------------------------------------------------


async def test_the_socket_is_mode_0600(served: Served) -> None:
    st = os.stat(served.path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == ME


async def test_a_stale_socket_file_is_replaced(make: Make, sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # bound, never listening: what a killed daemon leaves behind
    dead.close()
    os.chmod(path, 0o755)
    rig = make()
    async with ControlServer(path, EngineControl(rig.engine)) as server:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # a new one, made by the server
        assert (await asyncio.to_thread(request, path, {"cmd": "status"}))["version"] == 1
        assert server.serving


async def test_a_live_daemon_is_not_displaced(served: Served) -> None:
    second = ControlServer(served.path, EngineControl(served.rig.engine))
    with pytest.raises(ControlSocketError) as err:
        await second.start()
    assert str(err.value) == f"control socket {served.path}: a daemon is already listening there"
    # The first one still serves.
    assert (await served.ask(cmd="status"))["risk"]["kill_level"] == "NONE"


async def test_a_file_that_is_not_a_socket_is_left_alone(make: Make, sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    path.write_text("operator notes\n")
    server = ControlServer(path, EngineControl(make().engine))
    with pytest.raises(ControlSocketError, match="exists and is not a socket; not removing it"):
        await server.start()
    assert path.read_text() == "operator notes\n"


async def test_a_missing_directory_is_one_line(make: Make, sock_dir: Path) -> None:
    path = sock_dir / "nowhere" / "control.sock"
    server = ControlServer(path, EngineControl(make().engine))
    with pytest.raises(ControlSocketError) as err:
        await server.start()
    assert str(err.value) == f"control socket {path}: No such file or directory"
    assert not server.serving


async def test_stop_closes_clients_and_removes_the_socket(make: Make, sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    server = ControlServer(path, EngineControl(make().engine))
    await server.start()
    clients = [await Raw.open(path) for _ in range(3)]
    assert (await clients[0].ask(b'{"cmd":"status"}\n'))["ok"]
    await until(lambda: len(server._clients) == 3)
    await server.stop()
    for c in clients:  # each sees the end of the stream, not a hang
        assert await asyncio.wait_for(c.reader.read(), 5) == b""
        await c.close()
    assert not path.exists()
    await server.stop()  # twice is harmless
    with pytest.raises(FileNotFoundError):
        await asyncio.open_unix_connection(str(path))


# --- commands change the real state ----------------------------------------------------------


async def test_status_shows_books_pairs_and_latency(served: Served) -> None:
    rig = served.rig
    rig.clock.advance(250_000_000)
    st = await served.ask(cmd="status")
    books = {(b["venue"], b["symbol"]): b for b in st["books"]}
    assert set(books) == {("binance", "BTCUSDT"), ("okx", "BTC-USDT")}
    binance = books["binance", "BTCUSDT"]
    assert binance["state"] == "LIVE" and binance["age_ms"] == 250
    assert (binance["bid"], binance["ask"]) == QUIET["binance"]
    (pair,) = st["pairs"]
    assert pair["pair_id"] == "btc" and pair["live"] is True
    assert (pair["a"], pair["b"]) == ("binance:BTCUSDT", "okx:BTC-USDT")
    # Quiet: each way loses about the spread plus both fees (15 bps).
    edges = Decimal(pair["edge_a_to_b_bps"]), Decimal(pair["edge_b_to_a_bps"])
    assert all(Decimal("-20") < e < Decimal("-15") for e in edges), edges
    assert st["latency"] == {"samples": 0, "p50_ns": None, "p99_ns": None}
    assert st["risk"]["kill_level"] == "NONE" and st["risk"]["refusals"] == {}

    rig.rich("okx")  # okx's bid lifted to 30150: one arb
    await rig.settle()
    st = await served.ask(cmd="status")
    (pair,) = st["pairs"]
    assert pair["opportunities"] == 1 and pair["in_flight"] is None
    assert Decimal(pair["edge_a_to_b_bps"]) > 30  # the dislocation is still on the books
    assert st["counters"]["engine"]["opportunities"] == 1
    assert st["counters"]["executor"]["arbs"] == 1
    lat = rig.engine.latencies_ns[0]
    assert st["latency"] == {"samples": 1, "p50_ns": lat, "p99_ns": lat}
    marks = rig.engine.marks()
    pnl = from_atoms(rig.portfolio.realized_pnl(marks))
    assert pnl > 0 and Decimal(st["portfolio"]["realized_pnl"]) == pnl
    assert st["portfolio"]["reference"] == "USDT"

    rig.gap("okx")  # okx's book leaves LIVE
    st = await served.ask(cmd="status")
    okx = next(b for b in st["books"] if b["venue"] == "okx")
    assert okx["state"] != "LIVE" and okx["bid"] is None and okx["gaps"] == 1
    (pair,) = st["pairs"]
    assert pair["live"] is False and pair["edge_a_to_b_bps"] is None


async def test_kill_blocks_an_arb_and_resume_lets_it_through(served: Served) -> None:
    rig = served.rig
    reply = await served.ask(cmd="kill", level="halt", by="alice", reason="venue incident")
    assert reply == {"level": "HALT_NEW", "previous": "NONE"}
    assert rig.gates.level == KillLevel.HALT_NEW
    rig.rich("okx")
    refused(rig, "KILL_SWITCH", 1)  # found, refused at the first gate, nothing sent

    st = await served.ask(cmd="status")
    assert st["risk"]["kill_level"] == "HALT_NEW"
    assert st["risk"]["kill_by"] == f"alice (uid {ME})"
    assert st["risk"]["kill_why"] == "venue incident"
    assert st["risk"]["refusals"] == {"KILL_SWITCH": 1}
    assert st["pairs"][0]["last_refusal"] == "KILL_SWITCH"

    reply = await served.ask(cmd="resume", by="bob", reason="incident over")
    assert reply == {"level": "NONE", "previous": "HALT_NEW"}
    rig.quote("okx")  # the dislocation is still there: the next update fires
    assert len(rig.arbs("btc")) == 1 and len(rig.sent()) == 2
    await rig.settle()
    events = kill_events(rig)
    assert [(e["level"], e["previous"], e["by"], e["why"]) for e in events] == [
        ("HALT_NEW", "NONE", f"alice (uid {ME})", "venue incident"),
        ("NONE", "HALT_NEW", f"bob (uid {ME})", "incident over"),
    ]
    rig.verify_journal()


async def test_pause_stops_new_arbs_but_not_the_legs_in_flight(make: Make, sock_dir: Path) -> None:
    # Legs a second on their way to the venues (and orders given time to wait for them):
    # the pause lands while they are out, whatever the machine's load.
    rig = make(policy=ExecutionPolicy(order_timeout_s=5, leg_deadline_s=5, query_interval_s=0.02))
    for gw in rig.gateways.values():
        gw.latency_s = 1.0
    rig.rich("okx")
    (arb,) = rig.arbs()
    async with serve(rig, sock_dir) as served:
        reply = await served.ask(cmd="pause", by="alice", reason="deploy")
        assert reply == {"level": "HALT_NEW", "previous": "NONE"}
        assert arb.state != ArbState.DONE  # paused with both legs on their way
        await rig.settle()  # the in-flight arb goes on to its end
        assert arb.state is ArbState.DONE  # type: ignore[comparison-overlap]  # settle changed it
        assert all(leg.filled > 0 for leg in arb.legs)
        rig.quote("okx")  # still dislocated: found again, and refused
        assert len(rig.arbs()) == 1 and len(rig.sent()) == 2
        assert rig.engine.counters["risk:KILL_SWITCH"] == 1
        (event,) = kill_events(rig)
        assert event["why"] == "pause: deploy" and event["level"] == "HALT_NEW"

        await served.ask(cmd="resume", by="alice", reason="deployed")
        rig.quote("okx")
        assert len(rig.arbs()) == 2


async def test_kill_levels_and_flatten(served: Served) -> None:
    rig = served.rig
    assert await served.ask(cmd="kill", level="reduce", by="a", reason="r") == {
        "level": "REDUCE_ONLY",
        "previous": "NONE",
    }
    assert await served.ask(cmd="flatten", by="a", reason="f") == {
        "level": "FLATTEN",
        "previous": "REDUCE_ONLY",
    }
    # The switch never goes down by kill: a lower level leaves FLATTEN in force.
    assert await served.ask(cmd="pause", by="a") == {"level": "FLATTEN", "previous": "FLATTEN"}
    assert await served.ask(cmd="kill", level="halt", by="a", reason="h") == {
        "level": "FLATTEN",
        "previous": "FLATTEN",
    }
    assert rig.gates.level == KillLevel.FLATTEN
    assert [e["level"] for e in kill_events(rig)] == ["REDUCE_ONLY", "FLATTEN"]
    assert (await served.ask(cmd="resume", by="a", reason="ok"))["level"] == "NONE"


async def test_refusals_are_one_line_errors(served: Served) -> None:
    with pytest.raises(ControlError) as err:
        await served.ask(cmd="resume", by="alice", reason="x")
    assert str(err.value) == "nothing to resume: not paused or killed"
    # The engine's own refusal: an operator may not pose as the automatic triggers.
    await served.ask(cmd="pause", by="alice")
    with pytest.raises(ControlError, match=r"^resume must come from an operator"):
        await served.ask(cmd="resume", by="risk:me", reason="x")
    assert served.rig.gates.level == KillLevel.HALT_NEW


async def test_reload_goes_through_the_daemons_callback(served: Served) -> None:
    served.reloads.answer = {
        "changed": ["pairs.btc.min_edge_bps: 5 -> 8"],
        "refused": ["venues.okx.kind: not reloadable (restart to change it)"],
    }
    reply = await served.ask(cmd="reload", by="alice", reason="wider edge")
    assert reply == served.reloads.answer
    (call,) = served.reloads.calls
    assert (call.by, call.reason, call.uid, call.pid) == ("alice", "wider edge", ME, os.getpid())

    served.reloads.fail = ValueError("config.yaml:3: pairs.btc.min_edge_bps: not a number")
    with pytest.raises(ControlError) as err:
        await served.ask(cmd="reload", by="alice")
    assert str(err.value) == "config.yaml:3: pairs.btc.min_edge_bps: not a number"


async def test_a_daemon_without_reload_says_so(make: Make, sock_dir: Path) -> None:
    async with ControlServer(sock_dir / "c.sock", EngineControl(make().engine)) as server:
        with pytest.raises(ControlError, match=r"^reload is not available in this daemon$"):
            await asyncio.to_thread(request, server.path, {"cmd": "reload", "by": "a"})


async def test_a_handler_bug_is_reported_and_the_server_goes_on(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    served.reloads.fail = RuntimeError("line one\nline two")
    raw = await Raw.open(served.path)
    reply = await raw.ask(b'{"cmd":"reload","by":"a","id":7}\n')
    assert reply == {"id": 7, "ok": False, "error": "internal error: RuntimeError"}
    assert "control request failed" in caplog.text  # the daemon's log has the details
    assert (await raw.ask(b'{"cmd":"status"}\n'))["ok"] is True
    await raw.close()


# --- bad requests ----------------------------------------------------------------------------

BAD = [
    (b"not json\n", "bad request: not JSON ("),
    (b"\xff\xfe\n", "bad request: not JSON ("),
    (b"\n", "bad request: empty line"),
    (b"[1, 2]\n", "bad request: expected a JSON object"),
    (b'{"by": "a"}\n', "bad request: 'cmd' missing or not a string"),
    (b'{"cmd": 5}\n', "bad request: 'cmd' missing or not a string"),
    (b'{"cmd": "explode"}\n', "unknown command 'explode'; one of status, pause, resume, kill,"),
    (b'{"cmd": "status", "id": true}\n', "bad request: 'id' must be a string or an integer"),
    (b'{"cmd": "status", "verbose": 1}\n', "status: unknown field 'verbose'"),
    (b'{"cmd": "pause"}\n', "pause: 'by' is required"),
    (b'{"cmd": "kill", "by": "a"}\n', "kill: 'level' is required"),
    (b'{"cmd": "kill", "by": "a", "level": "nuke"}\n', "kill: 'level' must be one of halt,"),
    (b'{"cmd": "pause", "by": " "}\n', "pause: 'by' must not be empty"),
    (b'{"cmd": "pause", "by": 3}\n', "pause: 'by' must be a string"),
    (b'{"cmd": "pause", "by": "a", "reason": "x\\ny"}\n', "pause: 'reason' has control char"),
    (b'{"cmd": "pause", "by": "' + b"a" * 65 + b'"}\n', "pause: 'by' is longer than 64"),
]


@pytest.mark.parametrize(("line", "error"), BAD, ids=[e for _, e in BAD])
async def test_a_bad_request_gets_one_error_line_and_the_connection_goes_on(
    served: Served, line: bytes, error: str
) -> None:
    raw = await Raw.open(served.path)
    reply = await raw.ask(line)
    assert reply["ok"] is False and reply["error"].startswith(error), reply
    assert "\n" not in reply["error"]
    assert served.rig.gates.level == KillLevel.NONE  # nothing acted on
    reply = await raw.ask(b'{"cmd": "status", "id": "after"}\n')
    assert reply["ok"] is True and reply["id"] == "after"
    await raw.close()


async def test_an_oversized_request_is_dropped_whole(served: Served) -> None:
    raw = await Raw.open(served.path)
    # Far past the limit and sent in pieces, so the server sees it arrive over many reads;
    # inside it, a valid request that must not be acted on.
    big = b'{"cmd": "flatten", "by": "a", "reason": "' + b"x" * (50 * MAX_REQUEST) + b'"}\n'
    for i in range(0, len(big), 7000):
        await raw.send(big[i : i + 7000])
    reply = await raw.reply()
    assert reply == {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"}
    # Exactly one reply for it, then the next request on the same connection.
    assert (await raw.ask(b'{"cmd": "status", "id": 2}\n'))["id"] == 2
    assert served.rig.gates.level == KillLevel.NONE
    # A line of exactly the limit is still a request (its newline not counted).
    pad = MAX_REQUEST - len(b'{"cmd": "status", "id": ""}')
    exact = b'{"cmd": "status", "id": "' + b"p" * pad + b'"}'
    assert len(exact) == MAX_REQUEST
    assert (await raw.ask(exact + b"\n"))["ok"] is True
    await raw.close()


async def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    raw = await Raw.open(served.path)
    await raw.send(
        b'{"cmd": "pause", "by": "a", "id": 1}\n'
        b'{"cmd": "bogus", "id": 2}\n'
        b'{"cmd": "status", "id": 3}\n'
        b'{"cmd": "resume", "by": "a", "id": 4}\n'
    )
    replies = [await raw.reply() for _ in range(4)]
    assert [r["id"] for r in replies] == [1, 2, 3, 4]
    assert [r["ok"] for r in replies] == [True, False, True, True]
    assert replies[2]["result"]["risk"]["kill_level"] == "HALT_NEW"
    await raw.close()


async def test_many_clients_at_once(served: Served) -> None:
    # A silent client and a half-sent request hold their connections open meanwhile.
    idle = await Raw.open(served.path)
    partial = await Raw.open(served.path)
    await partial.send(b'{"cmd": "sta')

    async def client(i: int) -> list[int]:
        raw = await Raw.open(served.path)
        ids = []
        for j in range(5):
            reply = await raw.ask(orjson.dumps({"cmd": "status", "id": i * 100 + j}) + b"\n")
            assert reply["ok"] is True
            ids.append(reply["id"])
        await raw.close()
        return ids

    raws = asyncio.gather(*(client(i) for i in range(20)))
    threaded = asyncio.gather(*(served.ask(cmd="status") for _ in range(4)))  # blocking clients
    ids, statuses = await asyncio.gather(raws, threaded)
    assert ids == [[i * 100 + j for j in range(5)] for i in range(20)]
    assert [s["version"] for s in statuses] == [1, 1, 1, 1]
    await partial.send(b'tus"}\n')
    assert (await partial.reply())["ok"] is True
    await idle.close()
    await partial.close()
