"""OKX clOrdId is 1-32 alphanumerics; the engine's client ids carry dashes (``<arb>-B``).
The gateway writes them reversibly in OKX's alphabet and reads the venue's replies back into
the engine's ids: placement, query, open orders and cancel, against the OKX simulator."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbengine.gateways.okx import cl_ord_id, client_id_of
from arbengine.orders import OrderStatus, Side
from tests.test_gateway_okx import KEY, SYMBOL, order, rig

ENGINE_IDS = ["18f3a2b4c5d-1-B", "18f3a2b4c5drr-1234-S", "18f3a2b4c5d-7-H2", "18f3a2b-9-F"]


@pytest.mark.parametrize("cid", ENGINE_IDS)
def test_engine_ids_become_clordids_and_back(cid: str) -> None:
    cl = cl_ord_id(cid)
    assert cl.isascii() and cl.isalnum() and 1 <= len(cl) <= 32
    assert client_id_of(cl) == cid


@given(st.text(alphabet="abcdefZz0189-_BSHFr", min_size=1, max_size=14))
def test_the_encoding_is_reversible(cid: str) -> None:
    assert client_id_of(cl_ord_id(cid)) == cid


def test_ids_okx_cannot_carry_are_refused() -> None:
    with pytest.raises(ValueError, match="has no clOrdId form"):
        cl_ord_id("a b")
    with pytest.raises(ValueError, match="1-32"):
        cl_ord_id("-" * 17)
    assert client_id_of("leftover1") == "leftover1"  # placed elsewhere: as the venue has it


async def test_an_engine_id_trades_and_is_found_by_it() -> None:
    async with rig() as r:
        p1, s1 = r.asks()[0]
        cid = ENGINE_IDS[0]
        r.gw.submit(order(cid, Side.BUY, p1, min(s1, 1000)))
        assert (await r.finished(cid))[0] is OrderStatus.FILLED
        venue = r.sim.exchange.get(KEY, client_id=cl_ord_id(cid))
        assert venue is not None and venue.status == "FILLED"
        got = await r.gw.query(cid)
        assert got is not None and got.client_id == cid and got.status is OrderStatus.FILLED
        rest = "18f3a2b4c5d-8-S"
        r.sim.exchange.rest(KEY, SYMBOL, "BUY", "1000", "0.5", cl_ord_id(rest))
        (open_order,) = await r.gw.open_orders()
        assert open_order.client_id == rest
        after = await r.gw.cancel(rest, SYMBOL)
        assert after is not None and after.status is OrderStatus.CANCELED
        assert after.client_id == rest
        assert await r.gw.open_orders() == []
