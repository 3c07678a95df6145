"""What every venue feed offers the engine: LIVE books and a call on each book change.

Feeds call ``on_book(sync, recv_mono_ns)`` right after a frame changed a LIVE book (an
applied update or a fresh snapshot), on the event loop, before the next frame is read: the
engine's detection runs inline on the data that triggered it, and ``recv_mono_ns`` (the
frame's receive stamp) starts the order budget.
"""

from __future__ import annotations

from collections.abc import Callable

from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import OUT_APPLIED, OUT_SNAPSHOT, BookSync

BookListener = Callable[[BookSync, int], None]


def notify_book(
    listener: BookListener | None, router: FeedRouter, out: int, recv_mono_ns: int
) -> None:
    """Tell ``listener`` when the frame just routed left its book changed and LIVE."""
    if listener is None or (out != OUT_APPLIED and out != OUT_SNAPSHOT):
        return
    index = router.last_index
    if index >= 0:
        sync: BookSync = router.syncs[index]
        if sync.live:
            listener(sync, recv_mono_ns)
