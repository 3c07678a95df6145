"""What every venue feed offers the engine: LIVE books and a call on each book change.

Feeds call ``on_book(sync, recv_mono_ns)`` right after a frame changed a LIVE book (an
applied update or a fresh snapshot), on the event loop, before the next frame is read: the
engine's detection runs inline on the data that triggered it, and ``recv_mono_ns`` (the
frame's receive stamp) starts the order budget.
"""

from __future__ import annotations

from collections.abc import Callable

from arbengine._core.book import Book
from arbengine.venues._router import FeedRouter
from arbengine.venues._sync import OUT_APPLIED, OUT_RESYNC, OUT_SNAPSHOT, BookSync
from arbengine.venues.ws import WsFeed

BookListener = Callable[[BookSync, int], None]
ResyncListener = Callable[[BookSync], None]


def notify_book(
    listener: BookListener | None,
    router: FeedRouter,
    out: int,
    recv_mono_ns: int,
    on_resync: ResyncListener | None = None,
) -> None:
    """Tell ``listener`` when the frame just routed left its book changed and LIVE, and
    ``on_resync`` when it threw its book out of LIVE (a gap, a crossed book, a bad
    checksum): the risk gates count those into the venue's health."""
    if out == OUT_RESYNC:
        if on_resync is not None and router.last_index >= 0:
            on_resync(router.syncs[router.last_index])
        return
    if listener is None or (out != OUT_APPLIED and out != OUT_SNAPSHOT):
        return
    index = router.last_index
    if index >= 0:
        sync: BookSync = router.syncs[index]
        if sync.live:
            listener(sync, recv_mono_ns)


class VenueFeed:
    """What every venue feed shares: one BookSync per instrument, one WsFeed, the engine's
    hook, and the lifecycle. A venue adds its subscriptions, frame handling and resyncs."""

    syncs: list[BookSync]
    ws: WsFeed
    on_book: BookListener | None = None
    on_resync: ResyncListener | None = None

    def on_disconnected(self) -> None:
        for sync in self.syncs:
            sync.down()

    async def run(self) -> None:
        await self.ws.run()

    async def stop(self) -> None:
        await self.ws.stop()

    def live_books(self) -> dict[str, Book]:
        """Books that may be used now: LIVE ones only."""
        return {s.instrument.symbol: s.book for s in self.syncs if s.live}
