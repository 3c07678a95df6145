"""Shared fixtures.

``book_cls`` runs one test body against the compiled book and the pure-Python reference
(the reference is the oracle, uvloop style: if they disagree, the compiled one is suspect).
"""

from __future__ import annotations

import pytest

from arbengine._core.book import Book
from tests.reference.book import BookFactory, ReferenceBook


@pytest.fixture(params=[Book, ReferenceBook], ids=["cython", "reference"])
def book_cls(request: pytest.FixtureRequest) -> BookFactory:
    cls: BookFactory = request.param
    return cls
