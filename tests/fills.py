"""The balances a journal's fills imply, summed independently of the portfolio code: a buy
adds base and costs quote (price x size x the grid's quote atoms), and every fill pays its
fee in its fee asset. Crash and restart tests hold the recovered portfolio to this."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from arbengine._core.instrument import Instrument
from arbengine.journal import read_entries
from arbengine.orders import AtomScale


def balances_from_fills(
    journal: Path, start: Mapping[tuple[str, str], int], instruments: Iterable[Instrument]
) -> dict[tuple[str, str], int]:
    insts = {(i.venue, i.symbol): i for i in instruments}
    bal: dict[tuple[str, str], int] = defaultdict(int, start)
    seen: set[tuple[str, str]] = set()
    for e in read_entries(journal):
        if e["event"] != "fill" or (e["client_id"], e["trade_id"]) in seen:
            continue  # a fill reported twice is one trade
        seen.add((e["client_id"], e["trade_id"]))
        inst = insts[(e["venue"], e["symbol"])]
        scale = AtomScale.of(inst)
        sign = e["side"]
        bal[(inst.venue, inst.base)] += sign * scale.base(int(e["size"]))
        bal[(inst.venue, inst.quote)] -= sign * scale.notional(int(e["price"]), int(e["size"]))
        bal[(inst.venue, e["fee_asset"])] -= int(e["fee"])
    return dict(bal)
