"""The daemon's own output on stderr: lifecycle events, and on a terminal a status line.

Not a terminal (systemd's journal, a pipe, a file): one JSON object per line (structlog,
rendered by orjson), for lifecycle events only (started, books live, ready, reload,
stopping, stopped, errors): never one per message or order, which would flood the log and
cost the hot path. Nothing logged here carries a secret: events name config paths, venues,
pairs and counts, and credentials are only ever references in the config.

On a terminal: the same events as plain ``HH:MM:SS event key=value`` lines, and a status
line (``status.summary``) rewritten in place at a steady rate underneath them.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, TextIO, cast

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

__all__ = ["DaemonLog"]

_CLEAR = "\r\x1b[K"  # back to column 0 and erase the line: the status line's redraw


def _orjson(event: EventDict, **_kw: Any) -> bytes:
    # OPT_NON_STR_KEYS: counters keyed by ints; default=str: a Path or Decimal in an event.
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS)


class _TerminalSink:
    """structlog's logger on a terminal: prints above the status line, then redraws it."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.status = ""

    def msg(self, message: str) -> None:
        self.out.write(f"{_CLEAR}{message}\n")
        if self.status:
            self.out.write(self.status)
        self.out.flush()

    info = warning = error = critical = debug = exception = msg

    def draw(self, line: str) -> None:
        self.status = line
        self.out.write(f"{_CLEAR}{line}")
        self.out.flush()

    def end(self) -> None:
        """Leave the terminal on a fresh line (the shell prompt must not land on it)."""
        if self.status:
            self.out.write(f"{_CLEAR}{self.status}\n")
            self.status = ""
            self.out.flush()


def _plain(_logger: WrappedLogger, _name: str, event: EventDict) -> str:
    stamp = time.strftime("%H:%M:%S")
    text = event.pop("event")
    level = event.pop("level", "info")
    event.pop("timestamp", None)
    fields = " ".join(f"{k}={v}" for k, v in event.items())
    mark = "" if level == "info" else f"{level.upper()}: "
    return f"{stamp} {mark}{text}{' ' + fields if fields else ''}"


class DaemonLog:
    """Where the daemon reports. ``tty`` defaults to whether ``out`` is a terminal."""

    def __init__(self, out: IO[str] | None = None, *, tty: bool | None = None) -> None:
        self.out = sys.stderr if out is None else out
        self.tty = self.out.isatty() if tty is None else tty
        self._sink: _TerminalSink | None = None
        if self.tty:
            self._sink = _TerminalSink(self.out)
            self._log: Any = structlog.wrap_logger(
                self._sink,
                processors=[structlog.processors.add_log_level, _plain],
            )
        else:
            binary = getattr(self.out, "buffer", None)
            if binary is None:  # a text stream with no bytes below (tests): decode
                logger: Any = structlog.PrintLogger(cast(TextIO, self.out))
                render: Any = structlog.processors.JSONRenderer(serializer=_text_json)
            else:
                logger = structlog.BytesLogger(binary)
                render = structlog.processors.JSONRenderer(serializer=_orjson)
            self._log = structlog.wrap_logger(
                logger,
                processors=[
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info,
                    render,
                ],
            )

    def info(self, event: str, **fields: Any) -> None:
        self._log.info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log.warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log.error(event, **fields)

    def status_line(self, line: str) -> None:
        """Redraw the terminal's status line (nothing when not a terminal)."""
        if self._sink is not None:
            self._sink.draw(line)

    def end(self) -> None:
        if self._sink is not None:
            self._sink.end()


def _text_json(event: EventDict, **kw: Any) -> str:
    return _orjson(event, **kw).decode()
