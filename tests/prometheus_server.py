"""A real Prometheus server for tests: scrape a target on loopback, then ask it PromQL.

    with PrometheusServer(["127.0.0.1:9108"], tmp_path) as prom:
        prom.wait_up()
        rows = prom.query('arbengine_book_live == 1')

``start`` writes a config (scrape and rule evaluation every ``interval``, optional rule
files) and a data directory under ``workdir``, runs the Debian ``prometheus`` binary on a
free loopback port and waits until it is ready; ``wait_up`` waits until every target has
been scraped successfully; ``query`` runs an instant query and returns its result rows
(``PromQLError`` on a query error); ``stop`` terminates it (and kills it if it hangs).

The target can be anything that serves /metrics: an exporter in the test's own process
(call ``query`` through ``asyncio.to_thread`` from async tests, or ``aquery``: the exporter
reads part of its state on the event loop, which must keep running while Prometheus
scrapes) or the daemon as a subprocess.

``require_binary`` finds ``prometheus``/``promtool``: missing under ``CI=true`` fails the
test (CI installs the package); elsewhere it skips with the apt command to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

APT_PACKAGE = "prometheus"  # Debian: /usr/bin/prometheus and /usr/bin/promtool


def require_binary(name: str) -> str:
    """Path of ``name``: fail under CI (it must be installed there), else skip."""
    path = shutil.which(name)
    if path is not None:
        return path
    why = f"{name} not found: apt-get install -y {APT_PACKAGE}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why)
    pytest.skip(why)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PromQLError(Exception):
    """Prometheus refused or failed a query (the message names the expression)."""


class PrometheusServer:
    """One Prometheus process scraping ``targets`` (``host:port``) as job ``job``."""

    def __init__(
        self,
        targets: Sequence[str],
        workdir: Path,
        *,
        interval: str = "500ms",
        job: str = "arbengine",
        metrics_path: str = "/metrics",
        rule_files: Sequence[Path] = (),
        binary: str | None = None,
    ) -> None:
        self.targets = list(targets)
        self.workdir = Path(workdir)
        self.interval = interval
        self.job = job
        self.metrics_path = metrics_path
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.binary = binary
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "prometheus.log"

    # -- lifecycle --------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "metrics_path": self.metrics_path,
                    "scrape_timeout": self.interval,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }

    def start(self, timeout: float = 30.0) -> None:
        binary = self.binary or require_binary("prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps(self.config(), indent=2))  # JSON is YAML
        for attempt in range(3):
            self.port = free_port()
            data = self.workdir / f"data{attempt}"
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config}",
                        f"--storage.tsdb.path={data}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=log,
                    cwd=self.workdir,
                )
            if self._wait_ready(timeout):
                return
            self.stop()
            if "address already in use" not in self.log():
                break  # not a port taken between free_port() and bind: retrying won't help
        raise RuntimeError(f"prometheus did not become ready; log:\n{self.log()[-3000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- the HTTP API ------------------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>: its ``data``, or PromQLError with Prometheus' own message."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad query, explained in the body
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            detail = params.get("query", path)
            raise PromQLError(f"{detail}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now: the result rows (a vector's samples; a scalar as one row)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        rows: list[dict[str, Any]] = data["result"]
        return rows

    async def aquery(self, expr: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.query, expr)

    def targets_health(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        return targets

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def wait_for(
        self,
        expr: str,
        cond: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Query ``expr`` until ``cond(rows)`` holds; AssertionError after ``timeout``."""
        end = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < end:
            rows = self.query(expr)
            if cond(rows):
                return rows
            time.sleep(0.2)
        raise AssertionError(f"{expr}: condition not met in {timeout} s; last result {rows}")

    async def await_for(
        self,
        expr: str,
        cond: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.wait_for, expr, cond, timeout)

    def wait_up(self, timeout: float = 30.0) -> None:
        """Every target scraped successfully at least once."""
        end = time.monotonic() + timeout
        targets: list[dict[str, Any]] = []
        while time.monotonic() < end:
            targets = self.targets_health()
            if len(targets) == len(self.targets) and all(t["health"] == "up" for t in targets):
                return
            time.sleep(0.2)
        raise AssertionError(f"targets not up in {timeout} s: {targets}")

    async def await_up(self, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self.wait_up, timeout)
