"""What a benchmark prints about where it ran: package versions, the commit, the CPU."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

from bench._paths import REPO_ROOT


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_state() -> str:
    """The short HEAD, flagged when arbengine/ has uncommitted changes (figures of a dirty
    tree do not belong to that commit)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "arbengine"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (arbengine/ has uncommitted changes)" if dirty else "")


def cpu_info() -> dict[str, str]:
    """The first CPU's model name, MHz and cache size from /proc/cpuinfo."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu MHz", "cache size") and key not in info:
                    info[key] = value.strip()
    except OSError:
        info["model name"] = platform.processor() or "unknown"
    return info
