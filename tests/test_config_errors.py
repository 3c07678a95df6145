"""The bad-config table: each mistake, its exact one-line error(s) and exit code 1.

Every case edits the valid tests/data/configs/good.yaml (or replaces it whole), writes it to
a temporary file and runs ``arbengine check-config`` on it in-process through ``cli.main``;
a few run as a real ``arbengine`` subprocess. The expected lines name the file, the line and
the key path, and must be all that is printed.
"""

# ruff: noqa: E501
# (the table keeps each expected error as the one line it is printed as)
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from arbengine.cli import main
from arbengine.config import ConfigError, load, load_text
from arbengine.config_schema import VenueKind
from arbengine.gateways import registry

GOOD = Path(__file__).parent / "data" / "configs" / "good.yaml"
BASE = GOOD.read_text()
ARBENGINE = Path(sys.executable).with_name("arbengine")  # the installed console script


@pytest.fixture(autouse=True)
def _no_okx_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's live-venue cases are about a build without an OKX gateway, whether or not
    this one has it (tests/test_live_config.py covers a build that has it)."""
    monkeypatch.setitem(registry.GATEWAYS, VenueKind.OKX, "arbengine.gateways.absent:OkxGateway")


class WHOLE(str):
    """The case's whole file, instead of edits of the base."""


Edits = list[tuple[str, str]]

CASES: list[tuple[str, Edits | WHOLE, list[str]]] = [
    (
        "yaml-syntax",
        WHOLE("venues: [\n  a: b\n"),
        [":3: YAML syntax error: expected ',' or ']', but got '<stream end>'"],
    ),
    ("empty", WHOLE(""), [":1: the file is empty (no config in it)"]),
    ("comments-only", WHOLE("# nothing\n"), [":1: the file is empty (no config in it)"]),
    (
        "top-list",
        WHOLE("- venues\n- pairs\n"),
        [":1: the top level must be a mapping of sections (venues, pairs, risk, ...), not a list"],
    ),
    (
        "two-docs",
        WHOLE("venues: {}\n---\npairs: []\n"),
        [
            ":2: YAML syntax error: expected a single document in the stream, but found another document"
        ],
    ),
    (
        "unknown-section",
        [("metrics:\n  port: 9108", "metrix:\n  port: 9108")],
        [':52: metrix: unknown section (did you mean "metrics"?)'],
    ),
    (
        "unknown-key",
        [('    fee_bps: "8"', '    fees_bps: "8"')],
        [':14: venues.okx.fees_bps: unknown key (did you mean "fee_bps"?)'],
    ),
    (
        "duplicate-key",
        [("    mode: paper\n", "    mode: paper\n    mode: live\n")],
        [":14: venues.okx.mode: duplicate key (first given on line 13)"],
    ),
    (
        "missing-section",
        [
            (
                'risk:\n  max_inventory: {BTC: "1"}\n  max_net_exposure: {BTC: "1"}\n  max_daily_loss: "1000"\n  max_drawdown: "2000"\n',
                "",
            )
        ],
        [":3: risk: required section is missing"],
    ),
    (
        "missing-key",
        [('    max_notional: "10000"\n  - id: xq', "  - id: xq")],
        [":32: pairs[0].max_notional: required key is missing"],
    ),
    (
        "float-money",
        [('tick: "0.01"', "tick: 0.01")],
        [
            ':8: venues.binance.instruments.BTCUSDT.tick: 0.01 is a YAML float, which is not exact: write it as a quoted string ("0.01")'
        ],
    ),
    (
        "bad-decimal",
        [
            (
                'max_size: "0.05"\n    max_notional: "10000"\n  - id: xq',
                'max_size: "5e-2"\n    max_notional: "10000"\n  - id: xq',
            )
        ],
        [":37: pairs[0].max_size: expected decimal text like \"0.01\", got '5e-2'"],
    ),
    (
        "negative",
        [('    fee_bps: "26"', "    fee_bps: -26")],
        [":21: venues.kraken.fee_bps: must be >= 0, got -26"],
    ),
    (
        "octal-int",
        [("  port: 9108", "  port: 0777")],
        [":53: metrics.port: write integers in plain decimal digits"],
    ),
    (
        "port-range",
        [("  port: 9108", "  port: 70000")],
        [":53: metrics.port: must be <= 65535, got 70000"],
    ),
    (
        "bad-kind",
        [("    kind: kraken", "    kind: krakn")],
        [
            ':20: venues.kraken.kind: "krakn" is not one of binance, binance_usdm, okx, bybit, kraken, coinbase (did you mean "kraken"?)'
        ],
    ),
    (
        "bad-mode",
        [("    mode: paper", "    mode: papr")],
        [':13: venues.okx.mode: "papr" is not one of paper, live (did you mean "paper"?)'],
    ),
    (
        "norway",
        [("{base: BTC, quote: USD,", "{base: BTC, quote: NO,")],
        [":23: venues.kraken.instruments.BTC/USD.quote: expected text, got a boolean: quote it"],
    ),
    (
        "bool-type",
        [("  port: 9108", "  port: true")],
        [":53: metrics.port: expected an integer, got a boolean"],
    ),
    (
        "literal-secret",
        [
            (
                '    fee_bps: "60"\n',
                '    fee_bps: "60"\n    credentials:\n      api_key: "hunter2-very-secret"\n',
            )
        ],
        [
            ":30: venues.coinbase.credentials.api_key: a literal secret is not allowed in the config; give {env: NAME} or {credential: NAME} (a systemd credential)"
        ],
    ),
    (
        "cred-two-sources",
        [
            (
                '    fee_bps: "60"\n',
                '    fee_bps: "60"\n    credentials:\n      api_key: {env: CB_KEY, credential: cb-key}\n',
            )
        ],
        [
            ":30: venues.coinbase.credentials.api_key: give exactly one of {env: NAME} or {credential: NAME}"
        ],
    ),
    (
        "cred-bad-env",
        [
            (
                '    fee_bps: "60"\n',
                '    fee_bps: "60"\n    credentials:\n      api_key: {env: "CB KEY"}\n',
            )
        ],
        [
            ":30: venues.coinbase.credentials.api_key.env: not an environment variable name (letters, digits, _)"
        ],
    ),
    (
        "live-no-creds",
        [("    mode: paper", "    mode: live")],
        [
            ":13: venues.okx.credentials.api_key: required for a live okx venue ({env: NAME} or {credential: NAME})",
            ":13: venues.okx.credentials.api_secret: required for a live okx venue ({env: NAME} or {credential: NAME})",
            ":13: venues.okx.credentials.passphrase: required for a live okx venue ({env: NAME} or {credential: NAME})",
            ":34: pairs[0].b: venue okx is mode live, but this build has no live order gateway for okx; trade it in mode paper",
        ],
    ),
    (
        "passphrase-not-okx",
        [
            (
                '    fee_bps: "60"\n',
                '    fee_bps: "60"\n    credentials:\n      passphrase: {env: CB_PASS}\n',
            )
        ],
        [":30: venues.coinbase.credentials.passphrase: only OKX takes a passphrase, not coinbase"],
    ),
    (
        "pair-unknown-venue",
        [("    b: okx:BTC-USDT", "    b: okex:BTC-USDT")],
        [":34: pairs[0].b: no venue 'okex' in venues (did you mean \"okx\"?)"],
    ),
    (
        "pair-unknown-symbol",
        [("    b: okx:BTC-USDT", "    b: okx:BTC-USDC")],
        [":34: pairs[0].b: venue okx has no instrument 'BTC-USDC' (did you mean \"BTC-USDT\"?)"],
    ),
    (
        "pair-bad-ref",
        [("    b: okx:BTC-USDT", "    b: BTC-USDT")],
        [":34: pairs[0].b: expected \"venue:symbol\", got 'BTC-USDT'"],
    ),
    (
        "pair-same-leg",
        [("    b: okx:BTC-USDT", "    b: binance:BTCUSDT")],
        [":34: pairs[0].b: both legs are binance:BTCUSDT"],
    ),
    (
        "base-differs",
        [("BTC-USDT: {base: BTC,", "BTC-USDT: {base: ETH,")],
        [
            ":34: pairs[0].b: okx:BTC-USDT trades ETH, binance:BTCUSDT trades BTC: both legs must share the base asset"
        ],
    ),
    (
        "no-conversion",
        [("    conversion: coinbase:USDT-USD\n", "")],
        [
            ":41: pairs[1].b: binance:BTCUSDT is quoted in USDT and kraken:BTC/USD in USD: give a conversion book trading USDT against USD"
        ],
    ),
    (
        "conversion-wrong",
        [("    conversion: coinbase:USDT-USD", "    conversion: okx:BTC-USDT")],
        [":42: pairs[1].conversion: okx:BTC-USDT trades BTC/USDT, not USDT against USD"],
    ),
    (
        "conversion-needless",
        [("    b: okx:BTC-USDT\n", "    b: okx:BTC-USDT\n    conversion: coinbase:USDT-USD\n")],
        [
            ":35: pairs[0].conversion: both legs are quoted in USDT: coinbase:USDT-USD has nothing to convert"
        ],
    ),
    (
        "edge-band",
        [
            (
                '    min_edge_bps: "5"\n    max_edge_bps: "500"\n    max_size: "0.05"\n    max_notional: "10000"\n  - id: xq',
                '    min_edge_bps: "50"\n    max_edge_bps: "5"\n    max_size: "0.05"\n    max_notional: "10000"\n  - id: xq',
            )
        ],
        [":36: pairs[0].max_edge_bps: must be above min_edge_bps (5 <= 50)"],
    ),
    (
        "size-band",
        [
            (
                '    max_notional: "10000"\n  - id: xq',
                '    max_notional: "10000"\n    min_size: "0.1"\n  - id: xq',
            )
        ],
        [":39: pairs[0].min_size: above max_size (0.1 > 0.05)"],
    ),
    (
        "below-lot",
        [
            (
                '    max_size: "0.05"\n    max_notional: "10000"\n  - id: xq',
                '    max_size: "0.000001"\n    max_notional: "10000"\n  - id: xq',
            )
        ],
        [
            ":37: pairs[0].max_size: 0.000001 BTC is less than one lot of binance:BTCUSDT (0.00001)",
            ":37: pairs[0].max_size: 0.000001 BTC is below okx:BTC-USDT's minimum size (0.00001)",
        ],
    ),
    (
        "min-notional-unreachable",
        [
            (
                '    max_size: "0.05"\n    max_notional: "10000"\n  - id: xq',
                '    max_size: "0.05"\n    max_notional: "4"\n  - id: xq',
            )
        ],
        [
            ":38: pairs[0].max_notional: 4 USDT is below binance:BTCUSDT's minimum notional (5): no order could be placed"
        ],
    ),
    (
        "dup-pair-id",
        [("  - id: xq", "  - id: btc")],
        [":39: pairs[1].id: duplicate pair id 'btc' (also pairs[0])"],
    ),
    (
        "no-inventory-limit",
        [('  max_inventory: {BTC: "1"}', '  max_inventory: {ETH: "1"}')],
        [
            ":48: risk.max_inventory: no limit for BTC (traded by btc, xq): every traded asset needs one"
        ],
    ),
    (
        "tick-zero",
        [
            (
                'tick: "0.1", lot: "0.00000001"}\n    paper:\n      balances: {BTC: "1", USD',
                'tick: "0", lot: "0.00000001"}\n    paper:\n      balances: {BTC: "1", USD',
            )
        ],
        [":23: venues.kraken.instruments.BTC/USD.tick: must be > 0, got 0"],
    ),
    (
        "min-size-off-grid",
        [('min_size: "0.00001"}', 'min_size: "0.000000001"}')],
        [
            ":16: venues.okx.instruments.BTC-USDT.min_size: 0.000000001 is not a whole number of size steps (0.00000001)"
        ],
    ),
    (
        "paper-no-balance",
        [('      balances: {BTC: "1", USD: "100000"}', '      balances: {BTC: "1"}')],
        [
            ':24: venues.kraken.paper.balances: no starting USD on paper venue kraken to buy with (pair xq); give USD: "0" if that is meant'
        ],
    ),
    (
        "live-pair",
        [
            (
                "    mode: paper",
                "    mode: live\n    credentials: {api_key: {env: K}, api_secret: {env: S}, passphrase: {env: P}}",
            )
        ],
        [
            ":35: pairs[0].b: venue okx is mode live, but this build has no live order gateway for okx; trade it in mode paper"
        ],
    ),
    (
        "rate-limit-form",
        [('    fee_bps: "60"\n', '    fee_bps: "60"\n    rate_limits:\n      - {orders: 10}\n')],
        [
            ":30: venues.coinbase.rate_limits[0]: give orders + seconds (a window), burst + refill + seconds (a bucket), or threshold + decay_per_s (a decaying counter)"
        ],
    ),
    (
        "usdm-no-default",
        [("    kind: coinbase", "    kind: binance_usdm")],
        [
            ":26: venues.coinbase.rate_limits: no documented default for binance_usdm; give rate_limits"
        ],
    ),
    (
        "futures-paper-position",
        [
            (
                "    kind: kraken",
                "    kind: binance_usdm\n    rate_limits: [{burst: 2, refill: 1, seconds: 1}]",
            )
        ],
        [
            ":26: venues.kraken.paper.balances.BTC: kraken trades futures: it starts with no BTC position; give only its margin asset USD"
        ],
    ),
    (
        "priority-share",
        [
            (
                '    fee_bps: "60"\n',
                '    fee_bps: "60"\n    rate_limits: [{burst: 2, refill: 1, seconds: 1}]\n    limits: {priority_share: "0.9"}\n',
            )
        ],
        [":30: venues.coinbase.limits.priority_share: 0.9 of a burst of 2 leaves nothing for arbs"],
    ),
    (
        "sim-unknown-venue",
        [("metrics:\n", "simulator:\n  venues: [binanse]\nmetrics:\n")],
        [":53: simulator.venues[0]: no venue 'binanse' in venues (did you mean \"binance\"?)"],
    ),
    (
        "sim-symbol",
        [("metrics:\n", "simulator:\n  venues: [coinbase]\nmetrics:\n")],
        [
            ":30: venues.coinbase.instruments.USDT-USD: the coinbase simulator has no USDT-USD (it has BTC-USD, ETH-USD)"
        ],
    ),
    (
        "sim-endpoints",
        [
            ('    fee_bps: "8"\n', '    fee_bps: "8"\n    endpoints: {ws: "ws://127.0.0.1:1"}\n'),
            ("metrics:\n", "simulator:\n  venues: [okx]\nmetrics:\n"),
        ],
        [":15: venues.okx.endpoints: a simulated venue's endpoints are the simulator's"],
    ),
    (
        "sim-live",
        [
            (
                "    mode: paper",
                "    mode: live\n    credentials: {api_key: {env: K}, api_secret: {env: S}, passphrase: {env: P}}",
            ),
            ("metrics:\n", "simulator:\n  venues: [okx]\nmetrics:\n"),
        ],
        [
            ":35: pairs[0].b: venue okx is mode live, but this build has no live order gateway for okx; trade it in mode paper",
            ":54: venues.okx.mode: a simulated venue trades on paper only",
        ],
    ),
    (
        "bad-url",
        [('    fee_bps: "8"\n', '    fee_bps: "8"\n    endpoints: {ws: "http://example.com"}\n')],
        [":15: venues.okx.endpoints.ws: 'http://example.com' is not a ws:// or wss:// URL"],
    ),
    (
        "bad-host",
        [("  port: 9108", "  port: 9108\n  host: 'not a host'")],
        [":54: metrics.host: 'not a host' is not an IP address or host name"],
    ),
    (
        "socket-long",
        [
            (
                "metrics:\n",
                "control:\n  socket: /tmp/ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss\nmetrics:\n",
            )
        ],
        [":53: control.socket: a Unix socket path must be 1 to 107 bytes, this one is 125"],
    ),
    (
        "reference",
        [('  max_drawdown: "2000"', '  max_drawdown: "2000"\n  reference: EUR')],
        [
            ":52: risk.reference: EUR is not an asset of any pair (BTC, USD, USDT): PnL could not be valued in it"
        ],
    ),
    (
        "prob-range",
        [
            (
                '      balances: {BTC: "1", USD: "100000"}',
                '      balances: {BTC: "1", USD: "100000"}\n      reject_prob: 1.5',
            )
        ],
        [":26: venues.kraken.paper.reject_prob: must be <= 1, got 1.5"],
    ),
    (
        "prob-sum",
        [
            (
                '      balances: {BTC: "1", USD: "100000"}',
                '      balances: {BTC: "1", USD: "100000"}\n      reject_prob: 0.6\n      timeout_prob: 0.6',
            )
        ],
        [":27: venues.kraken.paper.timeout_prob: reject_prob + timeout_prob must be <= 1"],
    ),
    (
        "list-not-map",
        [("metrics:\n  port: 9108", "metrics: [9108]")],
        [":52: metrics: expected a mapping, got a list"],
    ),
    (
        "null-required",
        [
            (
                '    max_size: "0.05"\n    max_notional: "10000"\n  - id: xq',
                '    max_size:\n    max_notional: "10000"\n  - id: xq',
            )
        ],
        [":37: pairs[0].max_size: a value is required here, not null"],
    ),
    (
        "base-eq-quote",
        [("USDT-USD: {base: USDT, quote: USD,", "USDT-USD: {base: USD, quote: USD,")],
        [
            ":30: venues.coinbase.instruments.USDT-USD.quote: base and quote are both USD",
            ":42: pairs[1].conversion: coinbase:USDT-USD trades USD/USD, not USDT against USD",
        ],
    ),
    (
        "reconcile-leftovers",
        [("metrics:\n  port: 9108", "metrics:\n  port: 9108\nreconcile:\n  leftovers: keep")],
        [':55: reconcile.leftovers: "keep" is not one of cancel, adopt'],
    ),
    (
        "reconcile-interval",
        [("metrics:\n  port: 9108", "metrics:\n  port: 9108\nreconcile:\n  interval_s: 0")],
        [":55: reconcile.interval_s: must be > 0, got 0"],
    ),
    (
        "drift-tolerance-float",
        [
            (
                "metrics:\n  port: 9108",
                "metrics:\n  port: 9108\nreconcile:\n  drift_tolerance: {BTC: 0.001}",
            )
        ],
        [
            ':55: reconcile.drift_tolerance.BTC: 0.001 is a YAML float, which is not exact: write it as a quoted string ("0.001")'
        ],
    ),
    (
        "recv-window",
        [("    mode: paper", "    mode: paper\n    recv_window_ms: 70000")],
        [":14: venues.okx.recv_window_ms: must be <= 60000, got 70000"],
    ),
    (
        "order-ws-url",
        [
            (
                '    fee_bps: "8"\n',
                '    fee_bps: "8"\n    endpoints: {ws_orders: "https://example.com"}\n',
            )
        ],
        [":15: venues.okx.endpoints.ws_orders: 'https://example.com' is not a ws:// or wss:// URL"],
    ),
    (
        "empty-instruments",
        [
            (
                '    instruments:\n      USDT-USD: {base: USDT, quote: USD, tick: "0.0001", lot: "0.01"}',
                "    instruments: {}",
            )
        ],
        [":29: venues.coinbase.instruments: must not be empty"],
    ),
]


def config_text(edits: Edits | WHOLE) -> str:
    if isinstance(edits, WHOLE):
        return str(edits)
    text = BASE
    for old, new in edits:
        assert text.count(old) == 1, f"edit target not unique in good.yaml: {old!r}"
        text = text.replace(old, new)
    return text


def test_the_base_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(GOOD)]) == 0
    assert capsys.readouterr().out == f"{GOOD}: ok (4 venues, 2 pairs)\n"


def test_a_paper_futures_venue_needs_only_its_margin_asset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "usdm.yaml"
    path.write_text(
        BASE.replace(
            "    kind: kraken",
            "    kind: binance_usdm\n    rate_limits: [{burst: 2, refill: 1, seconds: 1}]",
        ).replace('      balances: {BTC: "1", USD: "100000"}', '      balances: {USD: "100000"}')
    )
    assert main(["check-config", str(path)]) == 0, capsys.readouterr()
    assert capsys.readouterr().out == f"{path}: ok (4 venues, 2 pairs)\n"


def test_the_table_has_thirty_kinds_of_mistake() -> None:
    assert len({name for name, _, _ in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize(("name", "edits", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_config(
    name: str,
    edits: Edits | WHOLE,
    expected: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(config_text(edits))
    assert main(["check-config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"{path}{line}" for line in expected]


def test_every_problem_at_once_in_file_order(tmp_path: Path) -> None:
    edits = [
        ('tick: "0.01"', "tick: 0.01"),
        ("    kind: kraken", "    kind: krakn"),
        ("    b: okx:BTC-USDT", "    b: okex:BTC-USDT"),
        ('  max_inventory: {BTC: "1"}', '  max_inventory: {BTC: "1"}\n  max_inventory: {}'),
        ("  port: 9108", "  port: 70000"),
    ]
    path = tmp_path / "many.yaml"
    path.write_text(config_text(edits))
    with pytest.raises(ConfigError) as err:
        load(path)
    lines = err.value.lines
    assert [line.split(":")[1] for line in lines] == ["8", "20", "34", "49", "54"]
    assert all(line.startswith(f"{path}:") for line in lines)
    assert str(err.value) == "\n".join(lines)


def test_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"venues: \xff\xfe\n")
    for path, message in (
        (missing, "cannot read: No such file or directory"),
        (tmp_path, "cannot read: it is a directory"),
        (binary, "not UTF-8 text (invalid start byte)"),
    ):
        assert main(["check-config", str(path)]) == 1
        out, err = capsys.readouterr()
        assert (out, err) == ("", f"{path}: {message}\n")


def test_too_many_arguments_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "a.yaml", "b.yaml"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: arbengine: unrecognized arguments: b.yaml") and err.count("\n") == 1
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    if not ARBENGINE.exists():
        pytest.fail(f"no arbengine console script next to {sys.executable}: pip install -e .")
    return subprocess.run(
        [str(ARBENGINE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"},
    )


@pytest.mark.parametrize("name", ["float-money", "literal-secret", "yaml-syntax"])
def test_subprocess(name: str, tmp_path: Path) -> None:
    (edits, expected) = next((e, x) for n, e, x in CASES if n == name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(config_text(edits))
    proc = run("check-config", str(path))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"{path}{line}" for line in expected]
    assert "Traceback" not in proc.stderr


def test_subprocess_ok(tmp_path: Path) -> None:
    proc = run("check-config", str(GOOD))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0,
        f"{GOOD}: ok (4 venues, 2 pairs)\n",
        "",
    )


# --- properties ---------------------------------------------------------------------------

_KEYS = st.from_regex(r"[a-z][a-z_]{0,14}", fullmatch=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=_KEYS, where=st.sampled_from(["top", "venue", "pair", "instrument", "risk"]))
def test_an_unknown_key_anywhere_is_refused(key: str, where: str) -> None:
    known = {
        "top": {
            "venues",
            "pairs",
            "risk",
            "simulator",
            "engine",
            "journal",
            "metrics",
            "control",
            "status",
            "reconcile",
        },
        "venue": {
            "kind",
            "mode",
            "fee_bps",
            "endpoints",
            "credentials",
            "instruments",
            "paper",
            "limits",
            "rate_limits",
            "recv_window_ms",
            "order_timeout_ms",
            "order_ws",
        },
        "pair": {
            "id",
            "a",
            "b",
            "conversion",
            "enabled",
            "min_edge_bps",
            "max_edge_bps",
            "min_size",
            "max_size",
            "min_notional",
            "max_notional",
            "fee_a_bps",
            "fee_b_bps",
            "tif",
            "leg_policy",
            "max_slippage_bps",
            "leg_deadline_s",
            "order_timeout_s",
            "query_interval_s",
        },
        "instrument": {
            "base",
            "quote",
            "tick",
            "lot",
            "min_size",
            "min_notional",
            "size_step",
            "multiplier",
        },
        "risk": {
            "reference",
            "max_inventory",
            "max_net_exposure",
            "max_daily_loss",
            "max_drawdown",
            "max_open_orders_total",
            "max_data_age_ms",
            "kill",
        },
    }[where]
    assume(key not in known)
    anchor, line, path = {
        "top": ("", 54, key),
        "venue": ("    kind: okx\n", 13, f"venues.okx.{key}"),
        "pair": ("  - id: xq\n", 40, f"pairs[1].{key}"),
        "instrument": ("{base: BTC, quote: USD,", 23, f"venues.kraken.instruments.BTC/USD.{key}"),
        "risk": ('  max_drawdown: "2000"\n', 52, f"risk.{key}"),
    }[where]
    indent = {"top": "", "venue": "    ", "pair": "    ", "risk": "  "}.get(where)
    if where == "top":
        text = f"{BASE}{key}: 1\n"
    elif where == "instrument":
        text = BASE.replace(anchor, f"{{{key}: x, base: BTC, quote: USD,")
    else:
        text = BASE.replace(anchor, f"{anchor}{indent}{key}: 1\n")
    with pytest.raises(ConfigError) as err:
        load_text(text, "f.yaml")
    (problem,) = err.value.problems
    assert (problem.line, problem.path) == (line, path)
    assert problem.message.startswith("unknown ")


@settings(max_examples=100, deadline=None)
@given(
    value=st.decimals(
        min_value=0, max_value=10**12, allow_nan=False, allow_infinity=False, places=8
    )
)
def test_decimal_text_round_trips_exactly(value: object) -> None:
    from decimal import Decimal

    assert isinstance(value, Decimal)
    shown = format(value, "f")
    text = BASE.replace('  max_daily_loss: "1000"', f'  max_daily_loss: "{shown}"')
    config = load_text(text, "f.yaml")
    assert config.risk.max_daily_loss == value
    assert format(config.risk.max_daily_loss, "f") == shown


@settings(max_examples=50, deadline=None)
@given(value=st.floats(min_value=0.001, max_value=1e6, allow_nan=False))
def test_a_yaml_float_is_never_money(value: float) -> None:
    shown = repr(value)
    if "e" in shown or "." not in shown:
        shown = f"{value:.3f}"
    text = BASE.replace('  max_daily_loss: "1000"', f"  max_daily_loss: {shown}")
    with pytest.raises(ConfigError) as err:
        load_text(text, "f.yaml")
    (problem,) = err.value.problems
    assert (problem.line, problem.path) == (50, "risk.max_daily_loss")
    assert problem.message.endswith(f'write it as a quoted string ("{shown}")')
