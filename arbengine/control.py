"""The control socket: how ``arbengine ctl`` talks to the running daemon.

A Unix stream socket (mode 0600: only the daemon's user, and root, may connect) served on
the daemon's event loop. The protocol is newline-delimited JSON, one request per line and one
reply line per request, in order, on as many connections at once as clients open:

    {"cmd": "status"}
    {"cmd": "pause", "by": "alice", "reason": "exchange maintenance"}
    {"cmd": "resume", "by": "alice", "reason": "maintenance over"}
    {"cmd": "kill", "level": "halt" | "reduce" | "flatten", "by": "alice", "reason": "..."}
    {"cmd": "flatten", "by": "alice", "reason": "..."}
    {"cmd": "reload", "by": "alice", "reason": "..."}

    -> {"ok": true, "result": {...}}  or  {"ok": false, "error": "one line"}

A request may carry an ``id`` (string or integer), echoed in its reply. A bad request (not
JSON, too long, an unknown command or field, a bad value) is answered with a one-line error
and the connection keeps serving; nothing a client sends makes the daemon raise.

Commands act through a ``ControlHandler`` the daemon provides: ``EngineControl`` is the one
over the real engine, with the daemon's config reload passed in as a callback. Operator
actions name the operator (``by``, with the connecting process's uid read from the socket
appended) and a reason; the engine journals every change of the kill switch.

``pause`` stops new arbs and lets in-flight legs and hedges finish: that is the kill
switch's HALT_NEW level, so ``pause`` and ``kill --level halt`` differ only in the reason
journaled, and ``resume`` lowers the switch from any level (after ``kill`` too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import orjson

from arbengine.risk import KillLevel

if TYPE_CHECKING:  # ``ctl`` runs this module's client: it need not load the engine
    from arbengine.engine import Engine
    from arbengine.status import Status
    from arbengine.venues._sync import BookSync

__all__ = [
    "COMMANDS",
    "KILL_LEVELS",
    "Action",
    "ControlError",
    "ControlHandler",
    "ControlServer",
    "ControlSocketError",
    "DaemonUnreachable",
    "EngineControl",
    "KillReply",
    "ReloadResult",
    "check_text",
    "default_socket_path",
    "parse_request",
    "request",
]

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/arbengine/control.sock"
MAX_REQUEST = 4096  # bytes in one request line; the longest real one is a few hundred
MAX_REPLY = 16 * 1024 * 1024  # a status of many books and pairs stays far below
MAX_BY = 64
MAX_REASON = 512
COMMANDS = ("status", "pause", "resume", "kill", "flatten", "reload")
KILL_LEVELS: Mapping[str, KillLevel] = {
    "halt": KillLevel.HALT_NEW,
    "reduce": KillLevel.REDUCE_ONLY,
    "flatten": KillLevel.FLATTEN,
}
# The fields each command takes besides ``cmd`` and ``id``: (name, required).
_FIELDS: Mapping[str, tuple[tuple[str, bool], ...]] = {
    "status": (),
    "pause": (("by", True), ("reason", False)),
    "resume": (("by", True), ("reason", False)),
    "kill": (("level", True), ("by", True), ("reason", False)),
    "flatten": (("by", True), ("reason", False)),
    "reload": (("by", True), ("reason", False)),
}


class ControlError(Exception):
    """A request the daemon refuses or cannot carry out; its text is the one-line reply.
    ``request_id``: the refused request's ``id``, when it had a valid one."""

    request_id: str | int | None = None


class ControlSocketError(Exception):
    """The control socket cannot be set up (another daemon on it, a bad path...)."""


class DaemonUnreachable(Exception):
    """The client found no daemon to talk to (no socket, refused, no access, timeout)."""


def one_line(text: str) -> str:
    return " ".join(text.split())


# --- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    """Who asks for an operator action, and why. ``uid``/``pid`` are the connecting
    process's, from the socket (SO_PEERCRED), not from the request."""

    by: str
    reason: str = ""
    uid: int | None = None
    pid: int | None = None

    @property
    def who(self) -> str:
        """``by`` as journaled: with the uid the kernel vouches for when there is one."""
        return self.by if self.uid is None else f"{self.by} (uid {self.uid})"


@dataclass(frozen=True, slots=True)
class Request:
    cmd: str
    action: Action | None  # None for status
    level: KillLevel | None  # kill only
    id: str | int | None


def check_text(cmd: str, name: str, value: object) -> str:
    """``by`` or ``reason`` of ``cmd``, checked (ControlError naming what is wrong)."""
    limit, empty = (MAX_BY, False) if name == "by" else (MAX_REASON, True)
    if not isinstance(value, str):
        raise ControlError(f"{cmd}: '{name}' must be a string")
    if not empty and not value.strip():
        raise ControlError(f"{cmd}: '{name}' must not be empty")
    if len(value) > limit:
        raise ControlError(f"{cmd}: '{name}' is longer than {limit} characters")
    if not value.isprintable():  # no newlines or escapes into the journal or a terminal
        raise ControlError(f"{cmd}: '{name}' has control characters")
    return value


def parse_request(line: bytes) -> Request:
    """One request line -> Request; ControlError (one line) naming what is wrong."""
    if not line.strip():
        raise ControlError("bad request: empty line")
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"bad request: not JSON ({one_line(str(exc))})") from None
    if not isinstance(data, dict):
        raise ControlError("bad request: expected a JSON object")
    rid = data.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, (str, int))):
        raise ControlError("bad request: 'id' must be a string or an integer")
    try:
        return _request(data, rid)
    except ControlError as exc:
        exc.request_id = rid
        raise


def _request(data: dict[str, Any], rid: str | int | None) -> Request:
    cmd = data.get("cmd")
    if not isinstance(cmd, str):
        raise ControlError("bad request: 'cmd' missing or not a string")
    fields = _FIELDS.get(cmd)
    if fields is None:
        shown = cmd if len(cmd) <= 40 and cmd.isprintable() else cmd[:40].encode()
        raise ControlError(f"unknown command {shown!r}; one of {', '.join(COMMANDS)}")
    known = {"cmd", "id", *(name for name, _ in fields)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ControlError(f"{cmd}: unknown field {unknown[0][:40]!r}")
    for name, required in fields:
        if required and name not in data:
            raise ControlError(f"{cmd}: '{name}' is required")
    level = None
    if "level" in data:
        name = data["level"]
        if not isinstance(name, str) or name not in KILL_LEVELS:
            raise ControlError(f"kill: 'level' must be one of {', '.join(KILL_LEVELS)}")
        level = KILL_LEVELS[name]
    action = None
    if "by" in data:
        action = Action(
            check_text(cmd, "by", data["by"]),
            check_text(cmd, "reason", data.get("reason", "")),
        )
    return Request(cmd, action, level, rid)


# --- the handler --------------------------------------------------------------------------


class KillReply(TypedDict):
    level: str  # KillLevel name in force after the action
    previous: str


class ReloadResult(TypedDict):
    changed: list[str]  # one line per change applied
    refused: list[str]  # one line per change refused (not reloadable, invalid)


class ControlHandler(Protocol):
    """What the control socket asks of the daemon. Raise ControlError (or ValueError) to
    refuse with a one-line message."""

    def status(self) -> Status: ...

    def pause(self, action: Action) -> KillReply: ...

    def resume(self, action: Action) -> KillReply: ...

    def kill(self, level: KillLevel, action: Action) -> KillReply: ...

    async def reload(self, action: Action) -> ReloadResult: ...


class BookSource(Protocol):
    """A venue feed, as far as status goes: its books (``venues.feed.VenueFeed``)."""

    @property
    def syncs(self) -> Sequence[BookSync]: ...


Reload = Callable[[Action], Awaitable[ReloadResult]]


class EngineControl:
    """ControlHandler over the real engine: status from the running objects, the kill
    switch through ``Engine.kill``/``resume`` (which journal every change), and reload
    through the daemon's callback (the same path as SIGHUP)."""

    def __init__(
        self,
        engine: Engine,
        feeds: Iterable[BookSource] = (),
        *,
        reload: Reload | None = None,
        wall: Callable[[], int] = time.time_ns,
    ) -> None:
        if engine.gates is None:
            raise ValueError("EngineControl needs an engine with risk gates (its kill switch)")
        self.engine = engine
        self.feeds = list(feeds)
        self._reload = reload
        self._wall = wall

    def status(self) -> Status:
        from arbengine.status import collect

        books = [s for feed in self.feeds for s in feed.syncs]
        return collect(self.engine, books, wall_ns=self._wall())

    def _level(self) -> KillLevel:
        gates = self.engine.gates
        assert gates is not None  # checked in __init__
        return gates.level

    def _raise(self, level: KillLevel, action: Action, why: str) -> KillReply:
        previous = self._level()
        now = self.engine.kill(level, action.who, why)
        return KillReply(level=now.name, previous=previous.name)

    def pause(self, action: Action) -> KillReply:
        why = f"pause: {action.reason}" if action.reason else "pause"
        return self._raise(KillLevel.HALT_NEW, action, why)

    def kill(self, level: KillLevel, action: Action) -> KillReply:
        return self._raise(level, action, action.reason or "operator kill")

    def resume(self, action: Action) -> KillReply:
        previous = self._level()
        if previous == KillLevel.NONE:
            raise ControlError("nothing to resume: not paused or killed")
        now = self.engine.resume(action.who, action.reason)
        return KillReply(level=now.name, previous=previous.name)

    async def reload(self, action: Action) -> ReloadResult:
        if self._reload is None:
            raise ControlError("reload is not available in this daemon")
        return await self._reload(action)


# --- the server ---------------------------------------------------------------------------


def _peer(writer: asyncio.StreamWriter) -> tuple[int | None, int | None]:
    """(uid, pid) of the connecting process, as the kernel recorded them at connect."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None, None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None, None
    pid, uid, _gid = struct.unpack("3i", raw)
    return uid, pid


def _reply(rid: str | int | None, body: Mapping[str, object]) -> bytes:
    out = dict(body) if rid is None else {"id": rid, **body}
    return orjson.dumps(out) + b"\n"


class ControlServer:
    """The control socket at ``path``, dispatching to ``handler`` on the running loop.

    ``start`` refuses (ControlSocketError) when a live daemon answers on ``path`` or the
    path is something other than a socket; a stale socket file (nobody listening) is
    removed. ``stop`` closes every connection and removes the socket file if it is still
    the one this server made."""

    def __init__(
        self, path: str | os.PathLike[str], handler: ControlHandler, *, max_line: int = MAX_REQUEST
    ) -> None:
        self.path = Path(path)
        self.handler = handler
        self.max_line = max_line
        self._server: asyncio.Server | None = None
        self._inode: tuple[int, int] | None = None
        # Each connection's task and writer, so that stop can end them.
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("control server already started")
        self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            # Before listen(): until then every connect is refused, so no client ever
            # reaches a socket with the umask's mode. (Not a umask around bind: umask is
            # process-wide and the journal's writer thread creates files meanwhile.)
            os.chmod(self.path, 0o600)
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=self.max_line
            )
        except OSError as exc:
            sock.close()
            if self._inode is not None:
                self._unlink()
            raise ControlSocketError(
                f"control socket {self.path}: {exc.strerror or one_line(str(exc))}"
            ) from None

    def _clear_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ControlSocketError(f"control socket {self.path}: {exc.strerror}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlSocketError(
                f"control socket {self.path}: exists and is not a socket; not removing it"
            )
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(self.path))
        except ConnectionRefusedError:  # nobody listening: left by a daemon that died
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        except OSError as exc:
            raise ControlSocketError(
                f"control socket {self.path}: {exc.strerror or one_line(str(exc))}"
            ) from None
        finally:
            probe.close()
        raise ControlSocketError(f"control socket {self.path}: a daemon is already listening there")

    def _unlink(self) -> None:
        # Only our socket: a daemon started after us may have put its own in its place.
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                self.path.unlink()
        self._inode = None

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, end every connection (a request being handled gets its answer
        if it finishes within ``timeout`` s) and remove the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Closing the transports ends each connection's read loop at its next read. (Not a
        # cancel: asyncio's stream callback reports a cancelled handler task as an error.)
        for writer in self._clients.values():
            writer.transport.close()
        clients = list(self._clients)
        if clients:
            _done, late = await asyncio.wait(clients, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await server.wait_closed()
        self._unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        uid, pid = _peer(writer)
        try:
            while True:
                line = await self._read_line(reader)
                if line is None:
                    return  # the client closed
                writer.write(await self._answer(line, uid, pid))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request: nothing to answer
        finally:
            self._clients.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_line(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next request line; b"" stands for one that was too long (read and dropped
        whole, up to its newline); None at the end of the stream."""
        too_long = False
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                # What is buffered of the long line goes; the rest is read on the next turn.
                await reader.readexactly(exc.consumed)
                too_long = True
                continue
            except asyncio.IncompleteReadError:
                return None  # EOF (a last line without its newline is not a request)
            return b"" if too_long else line

    async def _answer(self, line: bytes, uid: int | None, pid: int | None) -> bytes:
        if not line:
            return _reply(
                None, {"ok": False, "error": f"request longer than {self.max_line} bytes"}
            )
        rid: str | int | None = None
        try:
            req = parse_request(line)
            rid = req.id
            result = await self._dispatch(req, uid, pid)
        except ControlError as exc:
            rid = exc.request_id if exc.request_id is not None else rid
            return _reply(rid, {"ok": False, "error": one_line(str(exc)) or "refused"})
        except ValueError as exc:
            return _reply(rid, {"ok": False, "error": one_line(str(exc)) or "refused"})
        except Exception as exc:  # a bug behind the handler: report it, keep serving
            log.exception("control request failed")
            return _reply(rid, {"ok": False, "error": f"internal error: {type(exc).__name__}"})
        return _reply(rid, {"ok": True, "result": result})

    async def _dispatch(
        self, req: Request, uid: int | None, pid: int | None
    ) -> Mapping[str, object]:
        handler = self.handler
        if req.cmd == "status":
            return handler.status()
        assert req.action is not None  # every other command requires "by"
        action = Action(req.action.by, req.action.reason, uid, pid)
        if req.cmd == "pause":
            return handler.pause(action)
        if req.cmd == "resume":
            return handler.resume(action)
        if req.cmd == "kill":
            assert req.level is not None
            return handler.kill(req.level, action)
        if req.cmd == "flatten":
            return handler.kill(KillLevel.FLATTEN, action)
        assert req.cmd == "reload"
        return await handler.reload(action)


# --- the client ---------------------------------------------------------------------------


def default_socket_path(env: Mapping[str, str] | None = None, *, uid: int | None = None) -> Path:
    """Where the daemon listens and ``arbengine ctl`` looks, when neither is told: one
    function for both, so they always agree for the same user and environment.

    ``$ARBENGINE_CONTROL_SOCKET``; else ``$RUNTIME_DIRECTORY/control.sock`` (systemd's
    RuntimeDirectory=, the first when it lists several); else, for root,
    /run/arbengine/control.sock (the unit's directory, where ``sudo arbengine ctl`` finds the
    service); else, for a normal user who cannot write /run, the per-user runtime directory
    ``$XDG_RUNTIME_DIR/arbengine/control.sock``, else ``/tmp/arbengine-UID/control.sock``
    (the daemon makes either directory mode 0700 and refuses a /tmp one it does not own)."""
    env = os.environ if env is None else env
    explicit = env.get("ARBENGINE_CONTROL_SOCKET")
    if explicit:
        return Path(explicit)
    runtime = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime) / "control.sock"
    uid = os.getuid() if uid is None else uid
    if uid == 0:
        return Path(DEFAULT_SOCKET)
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg:
        return Path(xdg) / "arbengine" / "control.sock"
    return Path(f"/tmp/arbengine-{uid}/control.sock")


def request(
    path: str | os.PathLike[str],
    payload: Mapping[str, Any],
    *,
    timeout: float = 30.0,
    max_reply: int = MAX_REPLY,
) -> dict[str, Any]:
    """Send one request and return its ``result``. DaemonUnreachable when no daemon
    answers; ControlError with the daemon's message when it refuses."""
    where = str(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(where)
        except OSError as exc:
            reason = (exc.strerror or one_line(str(exc))).lower()
            raise DaemonUnreachable(f"no daemon at {where}: {reason}") from None
        try:
            sock.sendall(orjson.dumps(payload) + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline(max_reply + 1)
        except TimeoutError:
            raise DaemonUnreachable(f"daemon at {where}: no reply in {timeout:g} s") from None
        except OSError as exc:
            reason = (exc.strerror or one_line(str(exc))).lower()
            raise DaemonUnreachable(f"daemon at {where}: {reason}") from None
    finally:
        sock.close()
    if not line.endswith(b"\n"):
        if len(line) > max_reply:
            raise ControlError(f"daemon at {where}: reply longer than {max_reply} bytes")
        raise DaemonUnreachable(f"daemon at {where}: closed the connection without a reply")
    try:
        reply = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ControlError(f"daemon at {where}: reply is not JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError(f"daemon at {where}: reply is not a control reply")
    if not reply["ok"]:
        raise ControlError(one_line(str(reply.get("error", "refused"))))
    result = reply.get("result")
    if not isinstance(result, dict):
        raise ControlError(f"daemon at {where}: reply has no result")
    return result
