"""Import-path helper: benchmarks import ``tests.reference`` from the repository root."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def ensure_repo_on_path() -> None:
    """Put the repository root on ``sys.path`` so ``tests.reference.book`` imports when the
    benchmarks run from another directory (``python -m bench`` from the root has it already)."""
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
