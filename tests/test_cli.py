"""``arbengine journal verify``: in-process through ``main`` and as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from arbengine.cli import main
from arbengine.journal import Journal, journal_files

ROOT = Path(__file__).resolve().parents[1]
OK = re.compile(r"^ok: (\d+) entries in (\d+) files, last seq (\d+), last hash ([0-9a-f]{64})$")


@pytest.fixture
def journal(tmp_path: Path) -> list[Path]:
    d = tmp_path / "journal"
    with Journal(d, max_bytes=1_500) as j:
        for i in range(20):
            j.arb(f"arb-{i // 2}").write("fill", leg=i % 2, price=100 + i)
    files = journal_files(d)
    assert len(files) > 2
    return files


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "arbengine.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def last_hash(files: list[Path]) -> str:
    digest: str = orjson.loads(files[-1].read_bytes().splitlines()[-1])["hash"]
    return digest


def test_ok(journal: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "verify", *map(str, journal)]) == 0
    out, err = capsys.readouterr()
    m = OK.match(out.rstrip("\n"))
    assert m and out.count("\n") == 1 and err == "", out
    assert m.groups() == ("22", str(len(journal)), "22", last_hash(journal))


def test_a_directory_stands_for_its_files(
    journal: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", "verify", str(journal[0].parent)]) == 0
    assert OK.match(capsys.readouterr().out.strip())


def test_broken_names_the_first_broken_entry(
    journal: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target = journal[1]
    lines = target.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"price":', b'"price":9', 1)
    target.write_bytes(b"".join(lines))
    assert main(["journal", "verify", *map(str, journal)]) == 1
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and err == ""
    seq = orjson.loads(lines[2])["seq"]
    assert out.startswith(f"broken: {target}:3: seq {seq}: hash mismatch"), out


def test_torn_tail_is_ok_unless_strict(
    journal: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with journal[-1].open("ab") as f:
        f.write(b'{"seq":23,"t')
    assert main(["journal", "verify", *map(str, journal)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 22 entries") and f"torn tail at {journal[-1]}:" in out
    assert main(["journal", "verify", "--strict", *map(str, journal)]) == 1


def test_partial(journal: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "verify", *map(str, journal[1:])]) == 1
    assert "expected 1" in capsys.readouterr().out
    assert main(["journal", "verify", "--partial", *map(str, journal[1:])]) == 0
    assert "not from genesis" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["journal", "verify", "/no/such/journal.jsonl"], "no such file: /no/such/journal.jsonl"),
        (["journal", "verify"], "the following arguments are required: FILE"),
        (["journal"], "required: <subcommand>"),
        ([], "required: <command>"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["journal", "verify", "--nope", "x"], "unrecognized arguments: --nope"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journal", "verify", "--help"]) == 0
    assert "usage: arbengine journal verify" in capsys.readouterr().out


def test_as_a_subprocess(journal: list[Path], tmp_path: Path) -> None:
    files = list(map(str, journal))
    ok = run("journal", "verify", *files)
    assert ok.returncode == 0 and ok.stderr == ""
    m = OK.match(ok.stdout.rstrip("\n"))
    assert m and m.group(4) == last_hash(journal)

    missing = run("journal", "verify", *files, str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "no such file" in missing.stderr

    none = run("journal", "verify")
    assert none.returncode == 2 and none.stderr.count("\n") == 1

    journal[0].write_bytes(journal[0].read_bytes().replace(b'"leg":1', b'"leg":0', 1))
    broken = run("journal", "verify", *files)
    assert broken.returncode == 1 and broken.stdout.count("\n") == 1
    assert broken.stdout.startswith(f"broken: {journal[0]}:")
    assert "Traceback" not in ok.stderr + missing.stderr + none.stderr + broken.stderr

    # ``python -m arbengine`` is the same command.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pkg = subprocess.run(
        [sys.executable, "-m", "arbengine", "journal", "verify", *files],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert pkg.returncode == 1 and pkg.stdout == broken.stdout
