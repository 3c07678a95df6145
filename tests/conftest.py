"""Shared fixtures.

``book_cls`` runs one test body against the compiled book and the pure-Python reference
(the reference is the oracle, uvloop style: if they disagree, the compiled one is suspect).
``pytest_asyncio_loop_factories`` does the same for event loops: asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop

from arbengine._core.book import Book
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
