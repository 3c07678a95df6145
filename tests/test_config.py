"""Good configs load and build the engine's real objects; credentials never leak; reload
diffs say what is applied and what is refused."""

from __future__ import annotations

import dataclasses
import pickle
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from arbengine._core.instrument import Instrument
from arbengine.cli import main
from arbengine.config import (
    DEMO_NAME,
    Config,
    ConfigError,
    CredentialError,
    CredentialRef,
    Secret,
    build,
    demo_text,
    diff,
    load,
    load_demo,
    load_text,
    resolve_credential,
)
from arbengine.engine import Engine, GateCheck, Pair, PairConfig
from arbengine.execution import ExecutionPolicy, Executor, LegPolicy
from arbengine.journal import Journal
from arbengine.orders import TimeInForce, atoms
from arbengine.risk import KillLevel, PairLimits, RateLimit, RiskGates, RiskLimits

ROOT = Path(__file__).resolve().parents[1]
GOOD = Path(__file__).parent / "data" / "configs" / "good.yaml"
PACKAGED = resources.files("arbengine") / "configs"


def packaged(name: str) -> str:
    return PACKAGED.joinpath(name).read_text(encoding="utf-8")


def live_example() -> Config:
    return load_text(packaged("live.example.yaml"), "live.example.yaml")


# --- the shipped configs ----------------------------------------------------------------


def test_check_config_without_file_checks_the_embedded_demo(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config"]) == 0
    assert capsys.readouterr() == (f"{DEMO_NAME}: ok (2 venues, 1 pair)\n", "")


def test_the_repository_demo_is_the_packaged_one() -> None:
    repo = ROOT / "configs" / "demo.yaml"
    if not repo.exists():  # tests run from an installed wheel: no repository beside them
        pytest.skip("not a source checkout")
    assert repo.read_text() == demo_text()
    assert (ROOT / "configs" / "live.example.yaml").read_text() == packaged("live.example.yaml")


def test_demo_is_simulated_paper_trading_with_no_keys() -> None:
    config = load_demo()
    assert config.source == DEMO_NAME
    assert config.simulator is not None and set(config.simulator.venues) == set(config.venues)
    assert config.simulator.dislocation_prob > 0
    for venue in config.venues.values():
        assert venue.mode == "paper"
        assert dataclasses.astuple(venue.credentials) == (None, None, None)
        assert venue.paper.balances  # something to trade with
    assert [p.id for p in config.enabled_pairs] == ["btc-usdt"]


def test_live_example_maps_onto_engine_objects() -> None:
    config = live_example()
    insts = build.instruments(config)
    assert set(insts) == {
        "binance:BTCUSDT",
        "okx:BTC-USDT",
        "binance_usdm:BTCUSDT",
        "kraken:BTC/USD",
        "coinbase:BTC-USD",
    }
    # The venue kind makes the perpetual a derivative; nothing else is one.
    assert [name for name, i in insts.items() if i.derivative] == ["binance_usdm:BTCUSDT"]
    binance = insts["binance:BTCUSDT"]
    assert isinstance(binance, Instrument)
    assert (binance.price.step, binance.size.step, binance.min_notional) == ("0.01", "0.00001", "5")
    assert insts["okx:BTC-USDT"].size.format(insts["okx:BTC-USDT"].min_size) == "0.00001000"

    limits = build.risk_limits(config, insts)
    assert isinstance(limits, RiskLimits)
    assert [v.name for v in limits.venues] == [
        "binance",
        "okx",
        "binance_usdm",
        "kraken",
        "coinbase",
    ]
    kraken = next(v for v in limits.venues if v.name == "kraken")
    assert kraken.rate_limits == (RateLimit.counter(60, 1, per_instrument=True),)
    binance_limits = next(v for v in limits.venues if v.name == "binance")
    assert binance_limits.rate_limits is not None and len(binance_limits.rate_limits) == 2
    assert binance_limits.breaker_cooldown_ns == 30 * 10**9
    assert limits.max_data_age_ns == 100_000_000
    assert limits.exposure_kill is KillLevel.REDUCE_ONLY
    assert limits.max_inventory == {"BTC": Decimal("0.05")}

    pair = config.pair("btc-usd-kraken-coinbase")
    pl = build.pair_limits(pair, config, insts)
    assert isinstance(pl, PairLimits)
    assert (pl.fee_a_bps, pl.fee_b_bps) == (Decimal(26), Decimal(60))  # the venues' fees
    pc = build.pair_config(pair, config, insts)
    assert isinstance(pc, PairConfig) and pc.max_size == "0.002"
    assert pc.policy == ExecutionPolicy(
        tif=TimeInForce.IOC, leg_policy=LegPolicy.CHASE, max_slippage_bps=Decimal(20)
    )
    assert build.endpoints(config, "kraken") == ("wss://ws.kraken.com/v2", "https://api.kraken.com")


async def test_the_engine_accepts_what_the_config_builds(tmp_path: Path) -> None:
    """Everything a daemon builds from the live example, up to a running Engine (no
    connection made: the feeds are only constructed)."""
    config = live_example()
    insts = build.instruments(config)
    pf = build.portfolio(config)
    assert pf.balance("kraken", "USD") == atoms("10000")
    gates = RiskGates(build.risk_limits(config, insts), pf)
    feeds = {name: build.feed(config, name, insts) for name in config.venues}
    syncs = {s.instrument.name: s for f in feeds.values() for s in f.syncs}
    assert set(syncs) == set(insts)
    with Journal(tmp_path / "journal", **build.journal_options(config)) as journal:

        def books(symbol: str) -> None:
            return None

        gateways = {name: build.paper_gateway(config, name, books, pf) for name in config.venues}
        executor = Executor(
            gateways,
            pf,
            journal,
            fee_bps=build.venue_fees(config),
            books=lambda inst: None,
            risk=gates,
        )
        pairs = []
        for spec in config.enabled_pairs:
            pc = build.pair_config(spec, config, insts)
            pairs.append(
                Pair(
                    pc,
                    syncs[spec.a],
                    syncs[spec.b],
                    None if spec.conversion is None else syncs[spec.conversion],
                )
            )
        engine = Engine(
            pairs,
            executor=executor,
            risk=GateCheck(gates),
            journal=journal,
            budget_ns=build.budget_ns(config),
        )
        assert [p.config.pair_id for p in engine.pairs] == [
            "btc-usdt-binance-okx",
            "btc-usdt-binance-perp",
            "btc-usd-kraken-coinbase",
        ]
        assert engine.budget_ns == 100_000_000
        assert gates.breaker("kraken") == "closed"
        await executor.close()
        for gw in gateways.values():
            gw.close()


def test_defaults_follow_systemd_directories() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/arbengine:/x", "RUNTIME_DIRECTORY": "/run/arbengine-a"}
    config = load_demo(environ=env)
    assert config.journal.directory == "/var/lib/arbengine/journal"
    assert config.control.socket == "/run/arbengine-a/control.sock"
    bare = load_demo(environ={"HOME": "/home/op"})
    assert bare.journal.directory == "/home/op/.local/state/arbengine/journal"
    assert bare.control.socket == "/run/arbengine/control.sock"
    explicit = load_demo(environ={"ARBENGINE_CONTROL_SOCKET": "/tmp/a.sock", "HOME": "/h"})
    assert explicit.control.socket == "/tmp/a.sock"


def test_lines_are_kept_for_later_messages() -> None:
    config = load(GOOD)
    assert config.line("pairs[1].conversion") == 42
    assert config.line("venues.kraken.instruments.BTC/USD.tick") == 23
    assert config.line("risk.max_inventory.BTC") == 48
    assert config.line("engine.budget_ms") == 0  # not given: the default


def test_anchors_and_merge_keys() -> None:
    text = (
        GOOD.read_text()
        .replace("  - id: xq\n", "  - &xq\n    id: xq\n")
        .replace("risk:\n", '  - <<: *xq\n    id: xq2\n    min_edge_bps: "7"\nrisk:\n')
    )
    config = load_text(text, "merge.yaml")
    xq, xq2 = config.pair("xq"), config.pair("xq2")
    assert xq2.conversion == xq.conversion == "coinbase:USDT-USD"
    assert (xq.min_edge_bps, xq2.min_edge_bps) == (Decimal(5), Decimal(7))


# --- credentials --------------------------------------------------------------------------


SECRET = "s3cr3t-Value-that-must-never-show"


def test_resolve_from_env_and_mask_it() -> None:
    ref = CredentialRef("env", "ARB_TEST_KEY")
    secret = resolve_credential(ref, environ={"ARB_TEST_KEY": SECRET})
    assert secret.reveal() == SECRET
    for shown in (str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{[secret]}"):
        assert SECRET not in shown
    assert repr(secret) == "Secret(env:ARB_TEST_KEY, ******)"
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert secret == Secret(SECRET, CredentialRef("env", "OTHER"))


def test_resolve_from_a_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "okx-secret").write_text(SECRET + "\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    secret = resolve_credential(CredentialRef("credential", "okx-secret"), environ=env)
    assert secret.reveal() == SECRET  # the file's newline is not part of it


@pytest.mark.parametrize(
    ("ref", "env", "files", "message"),
    [
        (("env", "K"), {}, {}, "environment variable K is not set"),
        (("env", "K"), {"K": "  "}, {}, "environment variable K is empty"),
        (
            ("credential", "k"),
            {},
            {},
            "credential k: $CREDENTIALS_DIRECTORY is not set (is the service given "
            "LoadCredential=k:...?)",
        ),
        (("credential", "k"), {"dir": ""}, {}, "credential k: no such file {dir}/k"),
        (("credential", "k"), {"dir": ""}, {"k": b"\n"}, "credential k: {dir}/k is empty"),
        (
            ("credential", "k"),
            {"dir": ""},
            {"k": b"\xff\xfe"},
            "credential k: {dir}/k is not UTF-8 text",
        ),
        (
            ("credential", "k"),
            {"dir": ""},
            {"k/": b""},
            "credential k: cannot read {dir}/k: Is a directory",
        ),
    ],
)
def test_credential_errors_are_one_line(
    ref: tuple[str, str],
    env: dict[str, str],
    files: dict[str, bytes],
    message: str,
    tmp_path: Path,
) -> None:
    if "dir" in env:
        env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    for name, data in files.items():
        if name.endswith("/"):
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).write_bytes(data)
    with pytest.raises(CredentialError) as err:
        resolve_credential(CredentialRef(*ref), environ=env)
    assert str(err.value) == message.format(dir=tmp_path)


def test_a_secret_never_shows_in_config_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARB_OKX_SECRET", SECRET)
    good = GOOD.read_text().replace(
        "    mode: paper\n",
        "    mode: paper\n    credentials:\n      api_key: {env: ARB_OKX_SECRET}\n"
        "      api_secret: {env: ARB_OKX_SECRET}\n      passphrase: {env: ARB_OKX_SECRET}\n",
    )
    path = tmp_path / "creds.yaml"
    path.write_text(good)
    assert main(["check-config", str(path)]) == 0
    config = load(path)
    assert SECRET not in repr(config) and SECRET not in str(config)
    key = config.venues["okx"].credentials.api_key
    assert key is not None and resolve_credential(key).reveal() == SECRET
    # The secret pasted where a reference belongs, and into other places by mistake.
    for bad in (
        good.replace("{env: ARB_OKX_SECRET}\n      passphrase", f'"{SECRET}"\n      passphrase'),
        good.replace("      passphrase: {env: ARB_OKX_SECRET}", f"      {SECRET}: 1"),
        good.replace(
            "      passphrase: {env: ARB_OKX_SECRET}", f"      passphrase: {{{SECRET}: x}}"
        ),
        good.replace("    mode: paper", f"    mode: paper\n    password: {SECRET}"),
    ):
        path.write_text(bad)
        assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert err.count("\n") == 4


# --- reload ---------------------------------------------------------------------------------


def edited(*edits: tuple[str, str]) -> Config:
    text = GOOD.read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return load_text(text, "new.yaml")


def test_diff_applies_reloadable_changes() -> None:
    old = load(GOOD)
    new = edited(
        (
            '    min_edge_bps: "5"\n    max_edge_bps: "500"\n    max_size: "0.05"\n    '
            'max_notional: "10000"\n  - id: xq',
            '    min_edge_bps: "8"\n    max_edge_bps: "500"\n    max_size: "0.02"\n    '
            'max_notional: "10000"\n    enabled: false\n  - id: xq',
        ),
        ('  max_inventory: {BTC: "1"}', '  max_inventory: {BTC: "0.5"}'),
    )
    change = diff(old, new)
    assert not change.refused
    assert change.messages == [
        "pairs[btc].enabled: true -> false",
        "pairs[btc].min_edge_bps: 5 -> 8",
        "pairs[btc].max_size: 0.05 -> 0.02",
        "risk.max_inventory.BTC: 1 -> 0.5",
    ]
    assert change.config == new
    assert [p.id for p in change.config.enabled_pairs] == ["xq"]
    assert change.journal_fields()["applied"]["pairs[btc].max_size"] == ["0.05", "0.02"]


def test_diff_refuses_the_rest_and_keeps_it_as_it_was() -> None:
    old = load(GOOD)
    new = edited(
        ("    kind: kraken", "    kind: bybit"),
        ('    fee_bps: "26"', '    fee_bps: "20"'),
        ('  max_daily_loss: "1000"', '  max_daily_loss: "500"'),
        ("  port: 9108", "  port: 9200"),
    )
    change = diff(old, new)
    assert [c.message for c in change.refused] == [
        "venues.kraken.kind: not reloadable, restart to change",
        "venues.kraken.fee_bps: not reloadable, restart to change",
        "metrics.port: not reloadable, restart to change",
    ]
    assert [c.message for c in change.applied] == ["risk.max_daily_loss: 1000 -> 500"]
    running = change.config
    assert running.venues["kraken"].kind == "kraken" and running.metrics.port == 9108
    assert running.risk.max_daily_loss == Decimal(500)


def test_pairs_are_matched_by_id_and_added_or_removed_ones_refused() -> None:
    old = load(GOOD)
    text = GOOD.read_text()
    btc = text[text.index("  - id: btc") : text.index("  - id: xq")]
    swapped = text.replace(btc, "").replace("risk:\n", btc + "risk:\n")
    assert not diff(old, load_text(swapped, "new.yaml"))  # the same pairs, reordered
    renamed = edited(("  - id: xq", "  - id: xq2"))
    change = diff(old, renamed)
    assert change.messages == [
        "pairs[xq]: cannot be removed on reload, restart to remove it",
        "pairs[xq2]: cannot be added on reload, restart to add it",
    ]
    assert [p.id for p in change.config.pairs] == ["btc", "xq"]


def test_a_mixed_reload_that_would_break_a_rule_is_refused_whole() -> None:
    old = load(GOOD)
    # New lot (refused) + a max_size that only suits the new lot (applied): the config
    # that would run has a max_size below the old lot.
    new = edited(
        ('tick: "0.01", lot: "0.00001"', 'tick: "0.01", lot: "0.000001"'),
        (
            '    max_size: "0.05"\n    max_notional: "10000"\nrisk:',
            '    max_size: "0.000005"\n    max_notional: "10000"\nrisk:',
        ),
    )
    with pytest.raises(ConfigError) as err:
        diff(old, new)
    assert err.value.lines == [
        "new.yaml:45: pairs[1].max_size: 0.000005 BTC is less than one lot of "
        "binance:BTCUSDT (0.00001)"
    ]


@pytest.mark.parametrize("name", ["..", ".", "a/b"])
def test_a_credential_name_is_a_file_name(name: str, tmp_path: Path) -> None:
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    with pytest.raises(CredentialError, match="not a file name"):
        resolve_credential(CredentialRef("credential", name), environ=env)
