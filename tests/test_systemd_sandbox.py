"""The engine runs under the unit's seccomp sandbox.

systemd cannot run as PID 1 here, so the service itself cannot be started. What can break a
Python daemon in the unit is mostly seccomp: ``SystemCallFilter=`` (a refused call fails
with EPERM), ``MemoryDenyWriteExecute=`` (no writable+executable memory: a JIT, text
relocations or an executable stack would fail) and ``RestrictAddressFamilies=``. systemd
installs these as seccomp filters in the forked child just before exec; this module does the
same with libseccomp (the library systemd uses), with the rules of systemd 252's
src/shared/seccomp-util.c and the syscall sets ``systemd-analyze syscall-filter`` lists, read
from the shipped unit's settings. Namespaces, users and mounts are not reproduced.

``python -m tests.test_systemd_sandbox UNIT -- CMD...`` runs CMD so sandboxed; ``sandboxed``
builds that command line (for other tests that start the daemon).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import mmap
import os
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import arbengine
from arbengine.journal import journal_files, verify
from tests.test_systemd import ROOT, UNITS, directives, need

UNIT = UNITS / "arbengine.service"

# libseccomp's ABI (seccomp.h).
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_LT, SCMP_CMP_EQ, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ = 2, 4, 6, 7
SHM_EXEC = 0o100000


def scmp_act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@functools.cache
def libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_exact_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(ArgCmp),
    ]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


class Seccomp:
    """One libseccomp filter for the native architecture (others are killed)."""

    def __init__(self, default_action: int) -> None:
        self.lib = libseccomp()
        self.ctx = self.lib.seccomp_init(default_action)
        assert self.ctx, "seccomp_init failed"

    def syscall(self, name: str) -> int | None:
        nr: int = self.lib.seccomp_syscall_resolve_name(name.encode())
        # Negative: unknown, or not a syscall of this architecture (_llseek on x86-64):
        # systemd's exact rules for those fail and it goes on without them.
        return None if nr < 0 else nr

    def rule(self, action: int, name: str, *cmp: tuple[int, int, int, int]) -> None:
        nr = self.syscall(name)
        if nr is None:
            return
        args = (ArgCmp * max(1, len(cmp)))(*(ArgCmp(*c) for c in cmp))
        rc = self.lib.seccomp_rule_add_exact_array(self.ctx, action, nr, len(cmp), args)
        assert rc == 0, f"seccomp rule for {name}: {os.strerror(-rc)}"

    def load(self) -> None:
        rc = self.lib.seccomp_load(self.ctx)
        self.lib.seccomp_release(self.ctx)
        assert rc == 0, f"seccomp_load: {os.strerror(-rc)}"


def syscall_sets(analyze: str) -> dict[str, list[str]]:
    """Every ``@set`` and its members (names and nested sets), as this systemd defines them."""
    out = subprocess.run(
        [analyze, "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    sets: dict[str, list[str]] = {}
    members: list[str] = []
    for line in out.splitlines():
        if line.startswith("@"):
            members = sets.setdefault(line.strip(), [])
        elif line.startswith("    ") and not line.strip().startswith("#"):
            members.append(line.strip())
    return sets


def expand(items: Sequence[str], sets: dict[str, list[str]]) -> set[str]:
    names: set[str] = set()
    for item in items:
        names |= expand(sets[item], sets) if item.startswith("@") else {item}
    return names


def allowed_syscalls(settings: dict[str, list[str]], sets: dict[str, list[str]]) -> set[str]:
    """SystemCallFilter= as systemd reads it: an allow list (plus @default) from which
    later ``~`` entries are removed."""
    lines = settings["SystemCallFilter"]
    assert not lines[0].startswith("~"), "a deny-list filter is not reproduced here"
    allowed = expand(["@default"], sets)
    for line in lines:
        deny = line.startswith("~")
        names = expand(line.removeprefix("~").split(), sets)
        allowed = allowed - names if deny else allowed | names
    return allowed


def restrict_address_families(families: list[str]) -> None:
    # seccomp_restrict_address_families, allow-list case: refuse below the first, above the
    # last and every gap between.
    allowed = sorted(getattr(socket, name) for name in families)
    f = Seccomp(SCMP_ACT_ALLOW)
    refuse = scmp_act_errno(errno.EAFNOSUPPORT)
    f.rule(refuse, "socket", (0, SCMP_CMP_LT, allowed[0], 0))
    f.rule(refuse, "socket", (0, SCMP_CMP_GT, allowed[-1], 0))
    for family in range(allowed[0] + 1, allowed[-1]):
        if family not in allowed:
            f.rule(refuse, "socket", (0, SCMP_CMP_EQ, family, 0))
    f.load()


def memory_deny_write_execute() -> None:
    # seccomp_memory_deny_write_execute for x86-64, arm64 and riscv64 (mmap, not mmap2).
    f = Seccomp(SCMP_ACT_ALLOW)
    eperm = scmp_act_errno(errno.EPERM)
    wx = mmap.PROT_WRITE | mmap.PROT_EXEC
    f.rule(eperm, "mmap", (2, SCMP_CMP_MASKED_EQ, wx, wx))
    f.rule(eperm, "mprotect", (2, SCMP_CMP_MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC))
    f.rule(eperm, "pkey_mprotect", (2, SCMP_CMP_MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC))
    f.rule(eperm, "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
    f.load()


def system_call_filter(allowed: set[str], error: str) -> None:
    f = Seccomp(scmp_act_errno(getattr(errno, error)))
    for name in sorted(allowed):
        f.rule(SCMP_ACT_ALLOW, name)
    f.load()


def enter(unit: Path, analyze: str) -> None:
    """Put this process under ``unit``'s seccomp settings, in systemd's order (the syscall
    filter last: it may refuse what loading the others needs)."""
    settings = directives(unit)
    assert settings["SystemCallArchitectures"] == ["native"]  # each filter is native-only
    sets = syscall_sets(analyze)
    allowed = allowed_syscalls(settings, sets)
    restrict_address_families(settings["RestrictAddressFamilies"][0].split())
    if settings["MemoryDenyWriteExecute"] == ["yes"]:
        memory_deny_write_execute()
    system_call_filter(allowed, settings.get("SystemCallErrorNumber", ["EPERM"])[0])


def sandboxed(cmd: Sequence[str], unit: Path = UNIT) -> list[str]:
    """``cmd`` run under ``unit``'s seccomp sandbox (give the child PYTHONPATH=ROOT)."""
    return [sys.executable, "-m", "tests.test_systemd_sandbox", str(unit), "--", *cmd]


def main(argv: list[str]) -> None:
    unit, sep, *cmd = argv
    assert sep == "--" and cmd, "usage: python -m tests.test_systemd_sandbox UNIT -- CMD..."
    analyze = need("systemd-analyze", "systemd")
    enter(Path(unit).resolve(), analyze)
    os.execvp(cmd[0], cmd)


# -- tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analyze() -> str:
    return need("systemd-analyze", "systemd")


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_the_allow_list_follows_systemd(analyze: str) -> None:
    allowed = allowed_syscalls(directives(UNIT), syscall_sets(analyze))
    # What a Python daemon needs is in; what the unit takes out is out.
    for name in ("epoll_wait", "sendto", "fsync", "futex", "clone3", "execve", "getrandom"):
        assert name in allowed, name
    for name in ("sched_setaffinity", "setpriority", "setrlimit", "setuid", "chown", "mount"):
        assert name not in allowed, name


PROBE = r"""
import ctypes, json, mmap, os, socket
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "ok"
    except OSError as exc:
        out[name] = exc.errno
attempt("sched_setaffinity", lambda: os.sched_setaffinity(0, os.sched_getaffinity(0)))
attempt("setuid", lambda: os.setuid(os.getuid()))
R, W, X = mmap.PROT_READ, mmap.PROT_WRITE, mmap.PROT_EXEC
attempt("mmap_wx", lambda: mmap.mmap(-1, 4096, prot=R | W | X))
attempt("mmap_rw", lambda: mmap.mmap(-1, 4096, prot=R | W))
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t] + [ctypes.c_int] * 3 + [ctypes.c_long]
page = libc.mmap(None, 4096, R | W, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
rc = libc.mprotect(ctypes.c_void_p(page), 4096, R | X)
out["mprotect_x"] = "ok" if rc == 0 else ctypes.get_errno()
attempt("af_netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close())
attempt("af_packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close())
attempt("af_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("af_inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close())
attempt("af_unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close())
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
out["seccomp"] = status["Seccomp"].strip()
out["no_new_privs"] = status["NoNewPrivs"].strip()
from arbengine.sdnotify import Notifier
out["notify"] = Notifier.from_env().ready("sandboxed")
print(json.dumps(out))
"""


def test_the_sandbox_is_in_force(analyze: str) -> None:
    """The reproduction refuses what the unit refuses, and no more of the basics; sd_notify
    gets through."""
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = f"@arbengine-sandbox-{os.getpid()}"
    manager.bind("\0" + address[1:])
    manager.settimeout(10)
    with manager:
        proc = subprocess.run(
            sandboxed([sys.executable, "-c", PROBE]),
            capture_output=True,
            text=True,
            timeout=60,
            env={**env(), "NOTIFY_SOCKET": address},
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert manager.recv(4096) == b"READY=1\nSTATUS=sandboxed"
    assert json.loads(proc.stdout) == {
        "sched_setaffinity": errno.EPERM,  # ~@resources
        "setuid": errno.EPERM,  # ~@privileged
        "mmap_wx": errno.EPERM,  # MemoryDenyWriteExecute
        "mmap_rw": "ok",
        "mprotect_x": errno.EPERM,
        "af_netlink": errno.EAFNOSUPPORT,  # RestrictAddressFamilies
        "af_packet": errno.EAFNOSUPPORT,
        "af_inet": "ok",
        "af_inet6": "ok",
        "af_unix": "ok",
        "seccomp": "2",  # filter mode
        "no_new_privs": "1",
        "notify": True,
    }


def test_the_engine_trades_in_the_sandbox(analyze: str, tmp_path: Path) -> None:
    """The whole engine, sandboxed: simulated venues over loopback WebSockets, the compiled
    core, uvloop, paper legs, the journal's writer thread and fsync; then a kill -9 and a
    resume that trades two more arbs and stops cleanly (tests/crash_child.py)."""
    journal, out = tmp_path / "journal", tmp_path / "out"
    journal.mkdir()
    out.mkdir()

    def child(mode: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "tests.crash_child", mode, str(journal), str(out)]
        return subprocess.Popen(
            sandboxed(cmd), cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    trading = child("trade")
    deadline = time.monotonic() + 60
    while not (out / "trading").exists():
        if trading.poll() is not None:
            raise AssertionError(trading.communicate()[1].decode()[-3000:])
        assert time.monotonic() < deadline, "the sandboxed engine never started trading"
        time.sleep(0.05)
    time.sleep(1.0)  # some arbs in flight
    trading.kill()
    trading.communicate()

    resumed = child("resume")
    _, err = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, err.decode()[-3000:]
    final = json.loads((out / "final.json").read_text())
    assert final["arbs"] >= 2
    assert b"Operation not permitted" not in err
    result = verify(journal_files(journal))
    assert result.ok, result.describe()


def runtime_distributions() -> set[str]:
    """arbengine and everything it needs to run (not the test or bench extras)."""
    seen: set[str] = set()
    todo = ["arbengine"]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def shared_objects() -> list[Path]:
    """Every compiled module the daemon can load: arbengine's own, its dependencies', the
    standard library's, and libpython when Python is built shared."""
    found = {p.resolve() for p in Path(arbengine.__file__).parent.rglob("*.so")}
    for dist in runtime_distributions():
        for file in metadata.files(dist) or []:
            if file.name.endswith(".so") or ".so." in file.name:
                found.add(Path(str(file.locate())).resolve())
    found |= {p.resolve() for p in (Path(os.__file__).parent / "lib-dynload").glob("*.so")}
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir, name = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
        found.add((Path(libdir) / name).resolve())
    return sorted(found)


def test_compiled_modules_need_no_writable_code() -> None:
    """Under MemoryDenyWriteExecute the loader cannot mprotect(PROT_EXEC): a module with text
    relocations (code patched at load) or asking for an executable stack would fail to load.
    None of the daemon's may. (The sandboxed run above loads the ones it imports; this covers
    the rest too.)"""
    readelf = need("readelf", "binutils")
    objects = shared_objects()
    names = {p.name.split(".")[0] for p in objects}
    assert {"book", "spread", "gates", "loop", "picows", "orjson"} <= names, names
    proc = subprocess.run(
        [readelf, "-lWd", *map(str, objects)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # With several files readelf heads each one's report with "File: <path>".
    reports = proc.stdout.split("\nFile: ")[1:]
    assert len(reports) == len(objects)
    bad = []
    for report in reports:
        path = report.split("\n", 1)[0]
        stack = [line.split() for line in report.splitlines() if "GNU_STACK" in line]
        if "TEXTREL" in report:
            bad.append(f"{path}: text relocations")
        if not stack or "E" in stack[0][-2]:  # flags column: RW, or RWE for exec stack
            bad.append(f"{path}: executable (or unmarked) stack")
    assert bad == []


if __name__ == "__main__":
    main(sys.argv[1:])
