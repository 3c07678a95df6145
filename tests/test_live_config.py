"""Live venues in the config and at startup: a pair on a live venue is accepted when this
build has the kind's gateway; the gateway registry builds it with the venue's order options;
a missing or malformed credential, or a missing gateway module, is one line naming the venue
and the credential's reference, never its value (in-process, and from the real daemon)."""

# ruff: noqa: E501
# (the table keeps each expected error as the one line it is printed as)
from __future__ import annotations

import json
from pathlib import Path

import pytest

from arbengine.cli import main
from arbengine.config import load_text
from arbengine.config_build import instruments
from arbengine.config_schema import Config, Leftovers, VenueKind
from arbengine.gateways import registry
from arbengine.gateways.base import LiveGateway
from arbengine.gateways.registry import GatewayBuildError, build_live_gateway
from tests.daemon_proc import DaemonProc

SECRET = "s3cr3t-VALUE-never-shown"  # a test value: must never be printed

LIVE = """\
venues:
  binance:
    kind: binance
    fee_bps: "7.5"
    endpoints: {ws: "ws://127.0.0.1:9", rest: "http://127.0.0.1:9"}
    instruments:
      BTCUSDT: {base: BTC, quote: USDT, tick: "0.01", lot: "0.00001", min_notional: "5"}
    paper:
      balances: {BTC: "1", USDT: "100000"}
  okx:
    kind: okx
    mode: live
    fee_bps: "8"
    recv_window_ms: 3000
    order_timeout_ms: 1500
    order_ws: false
    endpoints: {ws: "ws://127.0.0.1:9", rest: "http://127.0.0.1:9", ws_orders: "ws://127.0.0.1:9/ws/v5/private"}
    credentials:
      api_key: {env: OKX_KEY}
      api_secret: {env: OKX_SECRET}
      passphrase: {credential: okx-passphrase}
    instruments:
      BTC-USDT: {base: BTC, quote: USDT, tick: "0.1", lot: "0.00000001", min_size: "0.00001"}
pairs:
  - id: btc
    a: binance:BTCUSDT
    b: okx:BTC-USDT
    min_edge_bps: "5"
    max_edge_bps: "500"
    max_size: "0.05"
    max_notional: "10000"
risk:
  max_inventory: {BTC: "1"}
  max_net_exposure: {BTC: "1"}
  max_daily_loss: "1000"
  max_drawdown: "2000"
reconcile:
  leftovers: adopt
  interval_s: 5
  drift_tolerance: {USDT: "0.01"}
metrics:
  enabled: false
"""

# A live venue with no pair (market data only): valid in any build, and the daemon still
# builds its gateway, so its credentials are resolved at startup.
DATA_ONLY = LIVE.replace("    b: okx:BTC-USDT", "    b: binance2:BTCUSDT").replace(
    "  okx:\n",
    '  binance2:\n    kind: binance\n    fee_bps: "7.5"\n    endpoints: {ws: "ws://127.0.0.1:9", rest: "http://127.0.0.1:9"}\n'
    '    instruments:\n      BTCUSDT: {base: BTC, quote: USDT, tick: "0.01", lot: "0.00001", min_notional: "5"}\n'
    '    paper:\n      balances: {BTC: "1", USDT: "100000"}\n  okx:\n',
)


def data_only() -> Config:
    return load_text(DATA_ONLY, "live.yaml")


@pytest.fixture
def okx_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build whose OKX kind has a gateway: the shared base class stands in for the venue
    module here (these tests are about the config and credentials, not the venue)."""
    monkeypatch.setitem(registry.GATEWAYS, VenueKind.OKX, "arbengine.gateways.base:LiveGateway")


@pytest.fixture
def no_okx_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.GATEWAYS, VenueKind.OKX, "arbengine.gateways.absent:OkxGateway")


def test_a_live_pair_is_accepted_when_the_kind_has_a_gateway(
    okx_gateway: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(LIVE)
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok (2 venues, 1 pair)\n"
    config = load_text(LIVE, "live.yaml")
    okx = config.venues["okx"]
    assert (okx.recv_window_ms, okx.order_timeout_ms, okx.order_ws) == (3000, 1500, False)
    assert config.reconcile.leftovers is Leftovers.ADOPT
    assert config.reconcile.drift_tolerance == {
        "USDT": load_text(LIVE, "x").reconcile.drift_tolerance["USDT"]
    }
    assert str(config.reconcile.drift_tolerance["USDT"]) == "0.01"


def test_a_live_pair_is_refused_when_the_build_lacks_the_gateway(
    no_okx_gateway: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(LIVE)
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:27: pairs[0].b: venue okx is mode live, but this build has no live order gateway for okx; trade it in mode paper"
    ]


def test_a_fok_pair_on_live_kraken_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kraken spot has no fill-or-kill: the config says so instead of every leg being
    rejected at the gateway."""
    text = (
        LIVE.replace("  okx:\n    kind: okx\n", "  okx:\n    kind: kraken\n")
        .replace("      passphrase: {credential: okx-passphrase}\n", "")
        .replace('    max_notional: "10000"\n', '    max_notional: "10000"\n    tif: FOK\n')
        .replace("BTC-USDT: {base: BTC, quote: USDT", "BTC/USDT: {base: BTC, quote: USDT")
        .replace("b: okx:BTC-USDT", "b: okx:BTC/USDT")
    )
    path = tmp_path / "live.yaml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith("pairs[0].tif: venue okx (kraken) has no fill-or-kill orders; use IOC"), (
        line
    )
    path.write_text(text.replace("    tif: FOK\n", ""))
    assert main(["check-config", str(path)]) == 0


def test_reconcile_defaults(okx_gateway: None) -> None:
    config = load_text(
        LIVE.replace(
            'reconcile:\n  leftovers: adopt\n  interval_s: 5\n  drift_tolerance: {USDT: "0.01"}\n',
            "",
        ),
        "x",
    )
    assert config.reconcile.leftovers is Leftovers.CANCEL
    assert str(config.reconcile.interval_s) == "30"
    assert config.reconcile.drift_tolerance == {}
    okx = load_text(LIVE.replace("    order_ws: false\n", ""), "x").venues["okx"]
    assert okx.order_ws is True


# --- building the gateway ------------------------------------------------------------------


def good_env(tmp_path: Path) -> dict[str, str]:
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "okx-passphrase").write_text("pass-phrase\n")
    return {"OKX_KEY": "key-1", "OKX_SECRET": SECRET, "CREDENTIALS_DIRECTORY": str(creds)}


def build(config: Config, env: dict[str, str]) -> LiveGateway:
    return build_live_gateway(config, "okx", instruments(config).values(), None, environ=env)


def test_the_gateway_gets_the_venues_options_and_credentials(
    okx_gateway: None, tmp_path: Path
) -> None:
    config = load_text(LIVE, "live.yaml")
    seen: list[tuple[str, float, bool]] = []
    gw = build_live_gateway(
        config,
        "okx",
        instruments(config).values(),
        lambda v, s, b: seen.append((v, s, b)),
        environ=good_env(tmp_path),
    )
    assert type(gw) is LiveGateway
    assert gw.venue == "okx"
    assert list(gw.instruments) == ["BTC-USDT"]  # only its own venue's
    assert (gw.rest_url, gw.ws_url) == ("http://127.0.0.1:9", None)  # order_ws: false
    assert (gw.recv_window_ms, gw.timeout_s) == (3000, 1.5)
    assert gw.credentials.api_secret.reveal() == SECRET
    assert gw.credentials.passphrase is not None
    assert gw.credentials.passphrase.reveal() == "pass-phrase"  # the file's newline is not in it
    assert SECRET not in repr(gw.credentials)
    assert gw.on_rate_limit is not None
    gw.on_rate_limit("okx", 2.0, False)
    assert seen == [("okx", 2.0, False)]
    with_ws = load_text(LIVE.replace("    order_ws: false\n", ""), "x")
    assert build(with_ws, good_env(tmp_path)).ws_url == "ws://127.0.0.1:9/ws/v5/private"
    public = load_text(
        LIVE.replace("    order_ws: false\n", "").replace(
            ', ws_orders: "ws://127.0.0.1:9/ws/v5/private"', ""
        ),
        "x",
    )
    assert build(public, good_env(tmp_path)).ws_url == "wss://ws.okx.com:8443/ws/v5/private"


def _without(env: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != key}


# (name, how the good environment is changed, the one line expected)
CREDENTIAL_CASES: list[tuple[str, str, str]] = [
    (
        "env-missing",
        "no OKX_KEY",
        "venue okx: credentials.api_key (env:OKX_KEY): environment variable OKX_KEY is not set",
    ),
    (
        "env-empty",
        "OKX_SECRET empty",
        "venue okx: credentials.api_secret (env:OKX_SECRET): environment variable OKX_SECRET is empty",
    ),
    (
        "env-space",
        "OKX_SECRET with a space",
        "venue okx: credentials.api_secret (env:OKX_SECRET): malformed (contains whitespace or control characters)",
    ),
    (
        "env-newline",
        "OKX_SECRET ending in a newline",
        "venue okx: credentials.api_secret (env:OKX_SECRET): malformed (contains whitespace or control characters)",
    ),
    (
        "file-missing",
        "no passphrase file",
        "venue okx: credentials.passphrase (credential:okx-passphrase): credential okx-passphrase: no such file {creds}/okx-passphrase",
    ),
    (
        "no-credentials-dir",
        "no CREDENTIALS_DIRECTORY",
        "venue okx: credentials.passphrase (credential:okx-passphrase): credential okx-passphrase: $CREDENTIALS_DIRECTORY is not set (is the service given LoadCredential=okx-passphrase:...?)",
    ),
    (
        "file-empty",
        "empty passphrase file",
        "venue okx: credentials.passphrase (credential:okx-passphrase): credential okx-passphrase: {creds}/okx-passphrase is empty",
    ),
]


def _broken(how: str, tmp_path: Path) -> dict[str, str]:
    env = good_env(tmp_path)
    creds = Path(env["CREDENTIALS_DIRECTORY"])
    if how == "no OKX_KEY":
        return _without(env, "OKX_KEY")
    if how == "OKX_SECRET empty":
        return {**env, "OKX_SECRET": ""}
    if how == "OKX_SECRET with a space":
        return {**env, "OKX_SECRET": f"{SECRET} x"}
    if how == "OKX_SECRET ending in a newline":
        return {**env, "OKX_SECRET": f"{SECRET}\n"}
    if how == "no passphrase file":
        (creds / "okx-passphrase").unlink()
        return env
    if how == "no CREDENTIALS_DIRECTORY":
        return _without(env, "CREDENTIALS_DIRECTORY")
    assert how == "empty passphrase file"
    (creds / "okx-passphrase").write_text("\n")
    return env


@pytest.mark.parametrize(
    ("name", "how", "expected"), CREDENTIAL_CASES, ids=[c[0] for c in CREDENTIAL_CASES]
)
def test_a_bad_credential_is_one_line_naming_its_reference(
    okx_gateway: None, name: str, how: str, expected: str, tmp_path: Path
) -> None:
    config = data_only()
    env = _broken(how, tmp_path)
    with pytest.raises(GatewayBuildError) as err:
        build(config, env)
    message = str(err.value)
    assert message == expected.format(creds=tmp_path / "creds")
    assert "\n" not in message
    assert SECRET not in message
    assert err.value.__cause__ is None  # nothing chained that could carry the value
    assert err.value.__context__ is None or err.value.__suppress_context__


def test_a_missing_gateway_module_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = data_only()  # valid in any build: the module is looked for at startup
    monkeypatch.setitem(registry.GATEWAYS, VenueKind.OKX, "arbengine.gateways.absent:OkxGateway")
    with pytest.raises(GatewayBuildError) as err:
        build(config, good_env(tmp_path))
    assert str(err.value) == (
        "no live order gateway for okx in this build (arbengine.gateways.absent: "
        "No module named 'arbengine.gateways.absent')"
    )
    assert not registry.available(VenueKind.OKX)


def test_a_module_without_the_class_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(registry.GATEWAYS, VenueKind.OKX, "arbengine.gateways.base:OkxGateway")
    with pytest.raises(
        GatewayBuildError,
        match=r"^no live order gateway for okx in this build \(arbengine.gateways.base has no LiveGateway OkxGateway\)$",
    ):
        build(data_only(), good_env(tmp_path))


# --- the daemon -------------------------------------------------------------------------------


def test_the_daemon_refuses_to_start_without_a_credential(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(DATA_ONLY)
    env = _without(good_env(tmp_path), "OKX_SECRET")
    daemon = DaemonProc(tmp_path / "d", path, env=env)
    daemon.env.pop("OKX_SECRET", None)
    try:
        assert daemon.start().wait_exit() == 1
        failed = daemon.event("startup failed")
        assert failed is not None, daemon.stderr()
        assert failed["error"] == (
            "venue okx: credentials.api_secret (env:OKX_SECRET): environment variable "
            "OKX_SECRET is not set"
        )
        text = daemon.stderr()
        assert "Traceback" not in text
        for line in text.splitlines():
            json.loads(line)  # every line a JSON log line: nothing else was printed
    finally:
        daemon.close()


def test_the_daemon_never_prints_a_malformed_secret(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(DATA_ONLY)
    env = {**good_env(tmp_path), "OKX_SECRET": f"{SECRET}\n"}
    daemon = DaemonProc(tmp_path / "d", path, env=env)
    try:
        assert daemon.start().wait_exit() == 1
        failed = daemon.event("startup failed")
        assert failed is not None, daemon.stderr()
        assert "credentials.api_secret (env:OKX_SECRET): malformed" in failed["error"]
        assert SECRET not in daemon.stderr()
    finally:
        daemon.close()


def test_the_daemon_refuses_to_start_when_a_live_venue_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(DATA_ONLY)  # okx's REST is 127.0.0.1:9, where nothing listens
    daemon = DaemonProc(tmp_path / "d", path, env=good_env(tmp_path))
    try:
        assert daemon.start().wait_exit() == 1
        failed = daemon.event("startup failed")
        assert failed is not None, daemon.stderr()
        assert failed["error"].startswith(
            "venue okx: connecting (server time) failed 3 times (last: UnknownOutcome: "
        )
        assert "Traceback" not in daemon.stderr()
        assert SECRET not in daemon.stderr()
    finally:
        daemon.close()
