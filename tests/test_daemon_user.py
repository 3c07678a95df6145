"""``arbengine run`` with no config, as a normal user: the embedded demo, with defaults a
user can write (the journal under the XDG state dir, the control socket in the per-user
runtime dir, mode 0700), found by ``arbengine ctl`` with no --socket, stopped by Ctrl-C.

The daemon runs as ``nobody`` under setpriv (util-linux). It keeps CAP_DAC_READ_SEARCH only
so it can read the Python and the checkout it runs from wherever the test machine keeps
them (/root here); every write still needs the user's own permissions.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from arbengine.journal import journal_files, verify
from tests.daemon_proc import ROOT, DaemonProc, filled_arbs, wait

NOBODY = 65534


@pytest.fixture
def user_dirs() -> Iterator[Path]:
    if os.getuid() != 0:
        pytest.skip("needs root to run the daemon as another user")  # CI runs as root
    if shutil.which("setpriv") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("setpriv not found: apt-get install -y util-linux")
        pytest.skip("setpriv not found: apt-get install -y util-linux")
    base = Path(tempfile.mkdtemp(prefix="arbengine-user-", dir="/tmp"))
    try:
        base.chmod(0o755)
        for name in ("home", "run"):
            (base / name).mkdir(mode=0o700)
            os.chown(base / name, NOBODY, NOBODY)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_no_config_as_a_normal_user_uses_writable_defaults(user_dirs: Path, tmp_path: Path) -> None:
    home, run = user_dirs / "home", user_dirs / "run"
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(run), "USER": "nobody"}
    prefix = [
        "setpriv",
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ]
    d = DaemonProc(tmp_path, None, env=env, defaults=True, prefix=prefix, notify=False)
    socket = run / "arbengine" / "control.sock"
    journal = home / ".local" / "state" / "arbengine" / "journal"
    d.socket, d.journal = socket, journal
    try:
        d.start()
        d.wait_ready()
        ready = d.event("ready")
        assert ready is not None and ready["control_socket"] == str(socket)
        st = os.stat(socket.parent)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (NOBODY, 0o700)
        assert stat.S_IMODE(os.stat(socket).st_mode) == 0o600
        assert os.stat(journal).st_uid == NOBODY
        # ctl run as the same user finds the same socket by itself.
        ctl = subprocess.run(
            [*prefix, sys.executable, "-m", "arbengine", "ctl", "status"],
            cwd=ROOT,
            env={**d.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ctl.returncode == 0, ctl.stderr
        assert "books (2/2 live)" in ctl.stdout
        wait(lambda: filled_arbs(d.entries()), "a filled arb", 60)
        assert d.stop(signal.SIGINT) == 0  # Ctrl-C
        assert verify(journal_files(journal)).clean
        assert not socket.exists()
    finally:
        d.close()
