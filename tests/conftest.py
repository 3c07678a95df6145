"""Shared fixtures.

``book_cls`` runs one test body against the compiled book and the pure-Python reference
(the reference is the oracle, uvloop style: if they disagree, the compiled one is suspect).
``pytest_asyncio_loop_factories`` does the same for event loops: asyncio and uvloop.
``make`` builds in-process engine rigs (tests/engine_rig.py) and closes them after the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from arbengine._core.book import Book
from tests.engine_rig import Make, Rig, build
from tests.reference.book import BookFactory, ReferenceBook


@pytest.fixture(params=[Book, ReferenceBook], ids=["cython", "reference"])
def book_cls(request: pytest.FixtureRequest) -> BookFactory:
    cls: BookFactory = request.param
    return cls


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs on both loops: the standard one is the oracle for uvloop."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    rigs: list[Rig] = []

    def factory(**kw: Any) -> Rig:
        rig = build(tmp_path / f"rig{len(rigs)}", **kw)
        rigs.append(rig)
        return rig

    yield factory
    for rig in rigs:
        await rig.close()
