"""The README's Python example runs as written (so it cannot drift from the API)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs() -> None:
    if not README.exists():
        pytest.fail("README.md is missing")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    book_a = namespace["book_a"]
    assert book_a.best_bid() == (6_173_763, 500_000)  # type: ignore[attr-defined]
