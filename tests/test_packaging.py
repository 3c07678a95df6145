"""`python -m build` makes an sdist and a wheel that both install and pass the tests.

Each artifact goes into its own fresh virtualenv, and the test suite runs from a copy of
tests/ outside the source tree, so nothing here can be satisfied by the editable checkout.
This is the slowest test (it compiles the core twice); it is what proves a user's
`pip install arbengine-*.tar.gz` works.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # A clean export of the tracked tree: what a release would build from.
    src = tmp_path_factory.mktemp("src") / "arbengine"
    run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(src)], cwd=ROOT)
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    # The working tree may hold uncommitted edits under test; build what is being tested.
    for name in filter(None, tracked):
        rel = name.decode()
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out)], cwd=src)
    return out


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_artifact_installs_and_passes_the_suite(kind: str, dist: Path, tmp_path: Path) -> None:
    pattern = "arbengine-*.whl" if kind == "wheel" else "arbengine-*.tar.gz"
    (artifact,) = dist.glob(pattern)
    if kind == "sdist":
        names = subprocess.run(
            ["tar", "tzf", str(artifact)], capture_output=True, text=True, check=True
        ).stdout.split()
        for module in ("fixed", "book", "instrument", "spread", "gates", "ledger"):
            assert any(n.endswith(f"arbengine/_core/{module}.pyx") for n in names)
            assert any(n.endswith(f"arbengine/_core/{module}.pxd") for n in names)
        assert not any(n.endswith(".so") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    run([py, "-m", "pip", "install", "-q", f"arbengine[test] @ {artifact.as_uri()}"], cwd=tmp_path)

    work = tmp_path / "run"
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    # The units and configs the tests check are files of the project, not the package.
    for folder in ("systemd", "configs"):
        shutil.copytree(ROOT / folder, work / folder)
    where = run([py, "-c", "import arbengine._core.book as b; print(b.__file__)"], cwd=work)
    assert where.stdout.strip().startswith(str(env_dir)), where.stdout

    proc = run(
        [
            py,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests",
            "--ignore=tests/test_packaging.py",
            "--ignore=tests/test_lint.py",
            "--ignore=tests/test_readme.py",
        ],
        cwd=work,
    )
    assert " passed" in proc.stdout and " failed" not in proc.stdout, proc.stdout[-2000:]
