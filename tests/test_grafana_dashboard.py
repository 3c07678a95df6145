"""configs/grafana: the dashboard is provisioning-ready and well formed, and its queries
parse as PromQL (promtool); tests/test_prometheus_e2e.py runs them on real data.

Provisioning-ready means: a fixed uid, no numeric id and no import-time ``__inputs`` (file
provisioning does not resolve them), every query on the ``${datasource}`` variable, which
the provisioned Prometheus data source satisfies.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.prometheus_server import require_binary
from tests.test_prometheus_e2e import VARIABLES, dashboard_queries, expand

GRAFANA = Path(__file__).resolve().parents[1] / "configs" / "grafana"
DS = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GRAFANA / "arbengine.json").read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_the_dashboard_is_provisioning_ready(board: dict[str, Any]) -> None:
    assert board["uid"] == "arbengine-main" and board["title"] == "arbengine"
    assert "id" not in board or board["id"] is None
    assert "__inputs" not in board and "__requires" not in board
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("instance", "venue", "pair"):
        v = variables[name]
        assert v["type"] == "query" and v["datasource"] == DS
        assert v["includeAll"] and v["allValue"] == ".*"  # what the e2e test substitutes
        assert v["definition"].startswith("label_values(")


def test_every_panel_queries_the_datasource_variable(board: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DS, panel["title"]
        targets = panel["targets"]
        assert targets, panel["title"]
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        for target in targets:
            assert target["datasource"] == DS and target["expr"].strip(), panel["title"]


def test_every_variable_a_query_uses_is_defined(board: dict[str, Any]) -> None:
    defined = {f"${v['name']}" for v in board["templating"]["list"]} | {"$__rate_interval"}
    assert set(VARIABLES) <= defined
    for where, expr in dashboard_queries():
        assert set(re.findall(r"\$\w+", expr)) <= defined, where


def test_panels_tile_the_grid_without_overlapping(board: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] >= 1 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_dashboard_covers_what_the_issue_asks_to_watch(board: dict[str, Any]) -> None:
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == [
        "Overview",
        "Latency",
        "Books and feeds",
        "Opportunities and edges",
        "Risk",
        "Orders and fills",
        "Exposure and PnL",
        "Event loop and journal",
    ]
    exprs = " ".join(expr for _, expr in dashboard_queries())
    for metric in (
        "arbengine_tick_to_order_seconds_bucket",
        "arbengine_stage_latency_seconds_bucket",
        "arbengine_book_live",
        "arbengine_book_resyncs_total",
        "arbengine_feed_reconnects_total",
        "arbengine_opportunities_total",
        "arbengine_pair_top_edge_bps",
        "arbengine_risk_rejections_total",
        "arbengine_orders_total",
        "arbengine_fills_total",
        "arbengine_orders_unknown_total",
        "arbengine_net_exposure",
        "arbengine_inventory",
        "arbengine_realized_pnl",
        "arbengine_drawdown",
        "arbengine_event_loop_lag_seconds",
        "arbengine_journal_write_seconds_bucket",
        "arbengine_journal_fsync_seconds_bucket",
    ):
        assert re.search(rf"\b{metric}\b", exprs), metric


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    """promtool parses each expression (Grafana variables expanded) as a recording rule."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": expand(expr)}
                    for i, (_, expr) in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    proc = subprocess.run(
        [require_binary("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(dashboard_queries())} rules found" in proc.stdout


def test_the_provisioning_files_point_grafana_at_the_dashboard_and_prometheus() -> None:
    # PyYAML is a dependency of the config loader (arbengine.config).
    yaml = importlib.import_module("yaml")
    dashboards = yaml.safe_load((GRAFANA / "provisioning/dashboards/arbengine.yaml").read_text())
    (provider,) = dashboards["providers"]
    assert dashboards["apiVersion"] == 1 and provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/arbengine.yaml").read_text())
    (source,) = sources["datasources"]
    assert sources["apiVersion"] == 1 and source["type"] == "prometheus"
    assert source["url"] == "http://127.0.0.1:9090" and source["access"] == "proxy"
    # $__rate_interval is sized from the scrape interval of configs/prometheus.
    scrape = (GRAFANA.parent / "prometheus" / "prometheus.yml").read_text()
    assert f"scrape_interval: {source['jsonData']['timeInterval']}" in scrape
