"""``arbengine ctl`` against a real control socket served on the engine rig: in-process
through ``cli.main`` (run in a thread: the server is on the test's loop) and as a real
``arbengine`` subprocess."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from arbengine.cli import main
from arbengine.control import ControlServer, EngineControl, default_socket_path
from arbengine.risk import KillLevel
from tests.engine_rig import Make
from tests.test_control import ME, Served, served, sock_dir  # noqa: F401  (fixtures)

# The installed console script: beside this interpreter in a virtualenv, else on PATH.
_BESIDE = Path(sys.executable).parent / "arbengine"
ARBENGINE = str(_BESIDE) if _BESIDE.exists() else shutil.which("arbengine") or str(_BESIDE)


async def ctl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``arbengine ctl ARGS``: (exit code, stdout, stderr)."""
    code = await asyncio.to_thread(main, ["ctl", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_status_as_text_and_as_json(
    served: Served,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = await ctl(capsys, "--socket", str(served.path), "status")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:2] == ["kill switch: off", "books (2/2 live):"]
    assert lines[2].split() == [
        "binance",
        "BTCUSDT",
        "LIVE",
        "age",
        "0",
        "ms",
        "29999.00",
        "/",
        "30001.00",
    ]
    assert any(line.startswith("  btc  binance:BTCUSDT <> okx:BTC-USDT  ") for line in lines)

    code, out, err = await ctl(capsys, "--socket", str(served.path), "status", "--json")
    assert (code, err) == (0, "")
    st = orjson.loads(out)
    assert st["version"] == 1 and [b["venue"] for b in st["books"]] == ["binance", "okx"]


async def test_operator_commands_change_the_engine(
    served: Served,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    rig, sock = served.rig, str(served.path)
    code, out, err = await ctl(capsys, "--socket", sock, "pause", "--by", "alice", "-r", "deploy")
    assert (code, out, err) == (0, "kill switch HALT_NEW (was NONE)\n", "")
    rig.rich("okx")
    assert rig.sent() == [] and rig.engine.counters["risk:KILL_SWITCH"] == 1

    code, out, _ = await ctl(capsys, "--socket", sock, "kill", "--level", "reduce", "-r", "x")
    assert (code, out) == (0, "kill switch REDUCE_ONLY (was HALT_NEW)\n")
    code, out, _ = await ctl(capsys, "--socket", sock, "flatten", "--reason", "loss")
    assert (code, out) == (0, "kill switch FLATTEN (was REDUCE_ONLY)\n")
    assert rig.gates.level == KillLevel.FLATTEN
    code, out, _ = await ctl(capsys, "--socket", sock, "resume", "-r", "all clear")
    assert (code, out) == (0, "kill switch NONE (was FLATTEN)\n")
    rig.quote("okx")  # the dislocation is still there: traded now
    assert len(rig.sent()) == 2
    await rig.settle()

    bys = [(e["by"], e["why"]) for e in rig.entries() if e["event"] == "kill_switch"]
    user = bys[1][0]  # --by defaults to the Unix user (the sudo user under sudo)
    assert bys == [
        (f"alice (uid {ME})", "pause: deploy"),
        (user, "x"),
        (user, "loss"),
        (user, "all clear"),
    ]
    assert user.endswith(f" (uid {ME})") and user != f" (uid {ME})"


async def test_the_sudo_user_is_the_default_operator(
    served: Served,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.getuid() != 0:
        pytest.skip("SUDO_USER only counts for root")
    monkeypatch.setenv("SUDO_USER", "carol")
    code, _, _ = await ctl(capsys, "--socket", str(served.path), "pause", "-r", "x")
    assert code == 0
    assert served.rig.gates.state.last_change is not None
    assert served.rig.gates.state.last_change.by == "carol (uid 0)"


async def test_a_refusal_by_the_daemon_exits_1(
    served: Served,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = await ctl(capsys, "--socket", str(served.path), "resume", "-r", "x")
    assert (code, out, err) == (1, "", "error: nothing to resume: not paused or killed\n")


async def test_reload_prints_what_changed_and_fails_on_a_refusal(
    served: Served,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    sock = str(served.path)
    code, out, _ = await ctl(capsys, "--socket", sock, "reload")
    assert (code, out) == (0, "reloaded: nothing changed\n")
    assert served.reloads.calls[0].reason == ""
    served.reloads.answer = {"changed": ["pairs.btc.min_edge_bps: 5 -> 8"], "refused": []}
    code, out, _ = await ctl(capsys, "--socket", sock, "reload", "-r", "wider")
    assert (code, out) == (0, "changed: pairs.btc.min_edge_bps: 5 -> 8\n")
    served.reloads.answer = {
        "changed": ["pairs.btc.max_size: 0.05 -> 0.1"],
        "refused": ["venues.okx.kind: not reloadable"],
    }
    code, out, _ = await ctl(capsys, "--socket", sock, "reload")
    assert (code, out) == (
        1,
        "changed: pairs.btc.max_size: 0.05 -> 0.1\nrefused: venues.okx.kind: not reloadable\n",
    )


@pytest.fixture
def dead_socket(sock_dir: Path) -> Iterator[Path]:  # noqa: F811
    path = sock_dir / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))  # bound, nobody listening
    s.close()
    yield path


def test_no_daemon(
    sock_dir: Path,  # noqa: F811
    dead_socket: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ctl", "--socket", str(dead_socket), "status"]) == 1
    assert capsys.readouterr() == ("", f"error: no daemon at {dead_socket}: connection refused\n")
    missing = sock_dir / "none.sock"
    assert main(["ctl", "--socket", str(missing), "pause", "-r", "x"]) == 1
    assert capsys.readouterr() == (
        "",
        f"error: no daemon at {missing}: no such file or directory\n",
    )


def test_a_daemon_that_never_answers(
    sock_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = sock_dir / "stuck.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
        s.listen()  # connects succeed, nobody reads or answers
        assert main(["ctl", "--socket", str(path), "--timeout", "0.2", "status"]) == 1
    assert capsys.readouterr() == ("", f"error: daemon at {path}: no reply in 0.2 s\n")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "arbengine ctl: the following arguments are required: <command>"),
        (["explode"], "arbengine ctl: argument <command>: invalid choice: 'explode'"),
        (["pause"], "arbengine ctl pause: the following arguments are required: --reason/-r"),
        (["kill", "--level", "nuke", "-r", "x"], "arbengine ctl kill: argument --level: invalid"),
        (["pause", "-r", "x", "--by", " "], "ctl pause: 'by' must not be empty"),
        (["pause", "-r", "x\ny"], "ctl pause: 'reason' has control characters"),
        (["pause", "-r", "x" * 513], "ctl pause: 'reason' is longer than 512 characters"),
        (["--timeout", "0", "status"], "ctl: --timeout must be > 0"),
        (["--timeout", "soon", "status"], "arbengine ctl: argument --timeout: invalid float"),
        (["status", "--yaml"], "arbengine: unrecognized arguments: --yaml"),
    ],
)
def test_a_bad_command_line_exits_2(
    args: list[str], error: str, dead_socket: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ctl", "--socket", str(dead_socket), *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"error: {error}"), err
    assert err.count("\n") == 1


def test_the_default_socket_path() -> None:
    assert default_socket_path({}) == Path("/run/arbengine/control.sock")
    assert default_socket_path({"RUNTIME_DIRECTORY": "/run/arb"}) == Path("/run/arb/control.sock")
    # systemd lists every RuntimeDirectory=, colon-separated: the first is the daemon's.
    assert default_socket_path({"RUNTIME_DIRECTORY": "/run/a:/run/b"}) == Path(
        "/run/a/control.sock"
    )
    assert default_socket_path(
        {"ARBENGINE_CONTROL_SOCKET": "/tmp/x.sock", "RUNTIME_DIRECTORY": "/run/arb"}
    ) == Path("/tmp/x.sock")


async def test_the_socket_comes_from_the_environment(
    make: Make,
    sock_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = make()
    async with ControlServer(sock_dir / "control.sock", EngineControl(rig.engine)):
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(sock_dir))
        code, out, _ = await ctl(capsys, "pause", "-r", "from systemd's runtime dir")
        assert (code, out) == (0, "kill switch HALT_NEW (was NONE)\n")
        monkeypatch.setenv("ARBENGINE_CONTROL_SOCKET", str(sock_dir / "other.sock"))
        code, _, err = await ctl(capsys, "status")
        assert code == 1 and err.startswith(f"error: no daemon at {sock_dir / 'other.sock'}: ")


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        ARBENGINE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_arbengine_command(served: Served) -> None:  # noqa: F811
    sock = str(served.path)
    code, out, err = await run("ctl", "--socket", sock, "kill", "--level", "reduce", "-r", "cli")
    assert (code, out, err) == (0, "kill switch REDUCE_ONLY (was NONE)\n", "")
    assert served.rig.gates.level == KillLevel.REDUCE_ONLY
    code, out, err = await run("ctl", "--socket", sock, "status")
    assert code == 0 and err == ""
    assert out.startswith("kill switch: REDUCE_ONLY by ")
    code, out, err = await run("ctl", "--socket", sock + ".gone", "status")
    assert (code, out) == (1, "")
    assert err == f"error: no daemon at {sock}.gone: no such file or directory\n"
    code, out, err = await run("ctl", "--socket", sock, "kill", "--level", "max", "-r", "x")
    assert code == 2 and out == "" and err.count("\n") == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b'{"ok": true, "result": {"version": 2}}\n', "the daemon's status is version 2, this"),
        (b'{"ok": true, "result": {"version": 1}}\n', "the daemon's status reply is malformed"),
        (b"<html>\n", "daemon at {path}: reply is not JSON"),
        (b'{"ok": "yes"}\n', "daemon at {path}: reply is not a control reply"),
        (b'{"ok": true, "result": []}\n', "daemon at {path}: reply has no result"),
        (b'{"ok": false}\n', "refused"),
        (b"", "daemon at {path}: closed the connection without a reply"),
    ],
)
async def test_a_reply_ctl_cannot_use_is_one_line(
    sock_dir: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    reply: bytes,
    error: str,
) -> None:
    """Something else on the socket (another version, another program): exit 1, one line."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(reply)
        await writer.drain()
        writer.close()

    path = sock_dir / "other.sock"
    server = await asyncio.start_unix_server(answer, str(path))
    async with server:
        code, out, err = await ctl(capsys, "--socket", str(path), "status")
    assert (code, out) == (1, "")
    assert err.startswith("error: " + error.format(path=path)) and err.count("\n") == 1, err
