"""configs/prometheus: the scrape config and alert rules pass promtool, and the rules' own
unit tests (alerts_test.yml) pass ``promtool test rules``.

The same rule expressions also run against a real Prometheus scraping a trading engine in
tests/test_prometheus_e2e.py; here promtool checks syntax, semantics and firing behaviour
on synthetic series.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.prometheus_server import require_binary

PROMETHEUS_DIR = Path(__file__).resolve().parents[1] / "configs" / "prometheus"
ALERTS = (
    "ArbengineDown",
    "ArbengineNotScraped",
    "ArbengineJournalFailed",
    "ArbengineEventLoopLag",
    "ArbengineBookNotLive",
    "ArbengineResyncStorm",
    "ArbengineArbsPastBudget",
    "ArbengineTickToOrderSlow",
    "ArbengineKillSwitchEngaged",
    "ArbengineExposureOverLimit",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_scrape_config_is_valid_and_scrapes_the_default_exporter_address() -> None:
    proc = promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 1 rule files found" in proc.stdout
    text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    assert re.search(r'targets: \["127\.0\.0\.1:9108"\]', text)
    assert re.search(r"job_name: arbengine\b", text)  # the rules select job="arbengine"


def test_the_rules_are_valid_and_name_every_alert_the_issue_asks_for() -> None:
    proc = promtool("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in proc.stdout
    lint = promtool("check", "rules", "--lint=all", "--lint-fatal", "alerts.yml")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    names = re.findall(r"^\s*- alert: (\w+)$", (PROMETHEUS_DIR / "alerts.yml").read_text(), re.M)
    assert tuple(names) == ALERTS


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text()
    for alert in ALERTS:
        # Each alert is expected to fire (non-empty exp_alerts) in at least one case.
        firing = re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels:", tests)
        assert firing, f"{alert}: no test case where it fires"


def test_the_alert_unit_tests_pass() -> None:
    proc = promtool("test", "rules", "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_a_broken_expectation_fails_promtool_test_rules(tmp_path: Path) -> None:
    """The unit tests can fail: the same file with one expected label changed does."""
    (tmp_path / "alerts.yml").write_text((PROMETHEUS_DIR / "alerts.yml").read_text())
    text = (PROMETHEUS_DIR / "alerts_test.yml").read_text()
    broken = text.replace('summary: "okx BTC-USDT book not live"', 'summary: "wrong"', 1)
    assert broken != text
    (tmp_path / "alerts_test.yml").write_text(broken)
    proc = subprocess.run(
        [require_binary("promtool"), "test", "rules", "alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "ArbengineBookNotLive" in proc.stdout + proc.stderr
