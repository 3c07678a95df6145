"""Live venues' feedback into the risk gates: a 429/418 back-off empties the venue's order
buckets for as long as the venue asked, and a balance-drift hold refuses new arbs there
until released. All on the injected clock of tests/test_risk.py."""

from __future__ import annotations

import pytest

from arbengine.orders import Order, Purpose, Side
from arbengine.risk import MAX_BACK_OFF_S, RateLimit, Reason, RiskGates, RiskLimits
from tests.test_risk import (
    BN,
    MS,
    OK,
    Clock,
    S,
    gates,
    intent,
    one_bucket_limits,
    passes,
    refused,
    risk_limits,
    venue,
)


def test_back_off_refuses_new_arbs_for_the_wait_then_allows_them() -> None:
    g, _, clock = gates(one_bucket_limits(burst=10, refill=10, seconds="1"))
    passes(g, intent(clock))
    until = g.back_off("binance", 2.5, banned=False)
    assert until == clock.now + 2500 * MS
    refused(g, intent(clock), Reason.RATE_LIMITED)
    clock.advance(2500 * MS - 1)
    refused(g, intent(clock), Reason.RATE_LIMITED)  # not one ns early
    clock.advance(1)
    passes(g, intent(clock))
    assert g.backoffs == {"binance": 1}
    assert g.bans == {}
    assert g.blocked_until["binance"] == until


def test_back_off_takes_the_reserve_too_and_counts_bans() -> None:
    g, _, _ = gates(one_bucket_limits(burst=10, share="0.2"))
    g.back_off("binance", 1.0, banned=True)
    assert g.try_take("binance", priority=True) is False  # the venue would refuse a cancel
    unwind = Order("a1-H1", "a1", BN, Side.SELL, 6_000_000, 10_000_000, purpose=Purpose.UNWIND)
    assert g.check_hedge(unwind) is Reason.RATE_LIMITED
    assert g.bans == {"binance": 1}
    assert g.backoffs == {"binance": 1}
    assert g.try_take("okx") is True  # the other venue is untouched


def okx_per_instrument(rl: RateLimit) -> RiskLimits:
    """Binance at its defaults, OKX with one bucket per instrument."""
    return risk_limits(
        venues=(venue("binance"), venue("okx", rate_limits=(rl,))), max_open_orders_total=1000
    )


def test_back_off_reaches_per_instrument_buckets_and_never_shortens() -> None:
    limits = okx_per_instrument(RateLimit(60, 60, 2, per_instrument=True))
    g, _, clock = gates(limits)
    passes(g, intent(clock))
    g.back_off("okx", 10.0)
    g.back_off("okx", 1.0)  # a shorter wait arriving later changes nothing
    assert g.try_take("okx", instrument=OK) is False
    clock.advance(9 * S)
    refused(g, intent(clock), Reason.RATE_LIMITED)
    clock.advance(1 * S)
    passes(g, intent(clock))
    assert g.backoffs == {"okx": 2}


def test_an_absurd_wait_is_capped_not_a_crash() -> None:
    # A venue's Retry-After of ~3e22 years: taken as MAX_BACK_OFF_S, buckets kept in int128.
    g, _, clock = gates(one_bucket_limits(burst=10, refill=10, seconds="1"))
    until = g.back_off("binance", 1e30)
    assert until == clock.now + MAX_BACK_OFF_S * S
    refused(g, intent(clock), Reason.RATE_LIMITED)
    assert g.back_off("binance", float("inf")) == until
    clock.advance(MAX_BACK_OFF_S * S)
    passes(g, intent(clock))


def rebuilt(old: RiskGates, limits: RiskLimits, clock: Clock) -> RiskGates:
    """New gates as a reload builds them (same portfolio and clock), taking over ``old``."""
    g = RiskGates(limits, old._portfolio, clock=clock, wall_clock=clock.wall)
    g.keep_rate_state(old)
    return g


def test_a_reload_keeps_the_tokens_used_and_the_venues_waits() -> None:
    # Binance: 10 orders, 10 more a second, 2 kept for hedges; 3 arbs take 3 tokens.
    limits = one_bucket_limits(burst=10, refill=10, seconds="1")
    g, _, clock = gates(limits)
    for _ in range(4):
        passes(g, intent(clock))
    g2 = rebuilt(g, limits, clock)
    # 4 taken, 2 reserved: 4 more arbs fit in the rebuilt gates, not a fresh 8.
    for _ in range(4):
        passes(g2, intent(clock))
    refused(g2, intent(clock), Reason.RATE_LIMITED)
    # A 429 wait of 2 s outlives the next reload, without counting twice.
    until = g2.back_off("binance", 2.0, banned=True)
    g3 = rebuilt(g2, limits, clock)
    assert (g3.backoffs, g3.bans, g3.blocked_until["binance"]) == (
        {"binance": 1},
        {"binance": 1},
        until,
    )
    clock.advance(2000 * MS - 1)
    refused(g3, intent(clock), Reason.RATE_LIMITED)
    clock.advance(1)
    passes(g3, intent(clock))


def test_new_limits_start_fresh_but_a_wait_still_holds() -> None:
    g, _, clock = gates(one_bucket_limits(burst=10, refill=10, seconds="1"))
    for _ in range(8):
        passes(g, intent(clock))
    refused(g, intent(clock), Reason.RATE_LIMITED)
    # The operator raised the limit: its new bucket starts full.
    wider = one_bucket_limits(burst=20, refill=20, seconds="1")
    g2 = rebuilt(g, wider, clock)
    passes(g2, intent(clock))
    # OKX's per-instrument bucket, and a wait the venue asked for: the wait holds across a
    # change of limits too.
    g2.back_off("okx", 5.0)
    g3 = rebuilt(g2, one_bucket_limits(burst=30, refill=30, seconds="1"), clock)
    clock.advance(5 * S - 1)
    refused(g3, intent(clock), Reason.RATE_LIMITED)
    clock.advance(1)
    passes(g3, intent(clock))


def test_per_instrument_buckets_are_kept_by_instrument() -> None:
    limits = okx_per_instrument(RateLimit(3, 3, 10, per_instrument=True))
    g, _, clock = gates(limits)
    passed = 0
    while g.check_arb(intent(clock)) is Reason.OK:  # down to OKX's reserve for hedges
        passed += 1
    assert passed == 2  # 3 a bucket, one kept for hedges
    g2 = rebuilt(g, limits, clock)
    assert g2.try_take("okx", instrument=OK) is False
    refused(g2, intent(clock), Reason.RATE_LIMITED)
    clock.advance(4 * S)  # 3 a 10 s: one token back after 3.33 s
    passes(g2, intent(clock))


def test_back_off_refuses_nonsense() -> None:
    g, _, _ = gates()
    with pytest.raises(ValueError, match="unknown venue"):
        g.back_off("kraken", 1.0)
    with pytest.raises(ValueError, match="positive wait"):
        g.back_off("binance", 0.0)


def test_hold_refuses_until_released_and_health_comes_back() -> None:
    g, _, clock = gates()
    passes(g, intent(clock))
    assert g.hold("okx", "balance drift: BTC") is True
    assert g.hold("okx", "balance drift: BTC again") is False  # held already
    for _ in range(3):
        clock.advance(3600 * S)  # a hold does not time out
        refused(g, intent(clock), Reason.VENUE_UNHEALTHY)
        assert g.last_venue == "okx"
    assert not g.healthy("okx")
    assert g.state.unhealthy == ("okx",)
    assert g.held == {"okx": "balance drift: BTC again"}
    assert g.release("okx") is True
    assert g.release("okx") is False
    assert g.healthy("okx")
    passes(g, intent(clock))


def test_release_keeps_the_venues_own_unhealthiness() -> None:
    g, _, clock = gates(risk_limits(venues=(venue("binance"), venue("okx", max_resyncs=0))))
    g.hold("okx", "drift")
    g.record_resync("okx")  # 0 resyncs allowed in the window: unhealthy by itself
    g.release("okx")
    refused(g, intent(clock), Reason.VENUE_UNHEALTHY)  # the resync still counts
    clock.advance(61 * S)
    passes(g, intent(clock))
