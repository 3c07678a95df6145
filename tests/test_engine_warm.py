"""The order path's warm-up: every ``warm_every`` book updates the engine runs the updated
pair's hand-off through the gateways' ``warm`` (``Executor.warm``), one direction and then
the other, and nothing is sent, reserved or journaled by it. (What a live gateway's ``warm``
does, and that it writes nothing, is in tests/test_wire.py.)"""

from __future__ import annotations

import pytest

from arbengine.config_schema import EngineSpec
from arbengine.engine import WARM_EVERY
from arbengine.orders import Side
from tests.engine_rig import Make


async def test_every_few_updates_the_pairs_hand_off_is_warmed_both_ways(make: Make) -> None:
    rig = make(warm_every=4)
    binance, okx = rig.gateways["binance"], rig.gateways["okx"]
    entries = len(rig.entries())
    binance.warmed.clear()
    okx.warmed.clear()
    for i in range(12):  # quiet updates, no arb: 3 warm-ups, whatever the count was before
        rig.quote("okx" if i % 2 else "binance")
    warmed = [(o.venue, o.side) for o in binance.warmed + okx.warmed]
    assert len(warmed) == 6 and warmed.count(("binance", Side.BUY)) in (1, 2)
    # Each warm-up is one arb's two legs: a buy on one venue and a sell on the other,
    # alternating which venue buys.
    assert sorted(warmed) == sorted(
        [("binance", Side.BUY), ("okx", Side.SELL)] * warmed.count(("binance", Side.BUY))
        + [("okx", Side.BUY), ("binance", Side.SELL)] * warmed.count(("okx", Side.BUY))
    )
    assert abs(warmed.count(("binance", Side.BUY)) - warmed.count(("okx", Side.BUY))) == 1
    for order in binance.warmed + okx.warmed:
        assert order.instrument is rig.venues[order.venue].instrument
        assert order.size > 0 and order.price > 0 and order.client_id.startswith("warm-")
    # Nothing went out, was reserved, or was written to the journal.
    assert binance.sent == [] and okx.sent == [] and rig.arbs() == []
    assert len(rig.entries()) == entries
    assert rig.portfolio.open_orders("binance") == rig.portfolio.open_orders("okx") == 0


async def test_an_arb_after_warm_ups_is_as_before(make: Make) -> None:
    rig = make(warm_every=1)  # a warm-up after every update, the arb's own included
    for _ in range(5):
        rig.quote("binance")
    rig.quote("okx", [("30150", "0.01"), ("30000", "1")], [("30151", "1")])
    (arb,) = rig.arbs("btc")
    assert [leg.client_id for leg in arb.legs] == [f"{arb.arb_id}-B", f"{arb.arb_id}-S"]
    await rig.settle()
    assert all(leg.filled == leg.size for leg in arb.legs)
    rig.verify_journal()


async def test_warm_every_zero_never_warms_and_negative_is_refused(make: Make) -> None:
    assert EngineSpec().warm_every == WARM_EVERY == make().engine.warm_every  # the default
    rig = make(warm_every=0)
    for _ in range(20):
        rig.quote("binance")
    assert rig.gateways["binance"].warmed == rig.gateways["okx"].warmed == []
    with pytest.raises(ValueError, match="warm_every must be >= 0 book updates, got -1"):
        make(warm_every=-1)
