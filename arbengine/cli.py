"""``arbengine`` command line: ``arbengine <command> [<subcommand>] ...``.

Each command is a function taking the parsed arguments and returning the exit code, hung on
the parser with ``set_defaults(func=...)``; adding ``run``, ``check-config``, ``ctl``,
``record`` or ``replay`` is one ``_add_<name>`` function registered in ``_parser``.

Exit codes: 0 success, 1 the command ran and found a problem (e.g. a broken journal), 2 the
command line or its inputs were unusable. Errors are one line on stderr, never a traceback:
these commands are run by operators and scripts that read the last line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from arbengine import __version__

Command = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A bad command line or unusable input: exit code 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block and calls sys.exit(2) itself; we want one line
    # and main() to decide, so errors become exceptions.
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _journal_verify(args: argparse.Namespace) -> int:
    # Imported here so that commands that don't need the journal don't pay for it.
    from arbengine.journal import verify

    paths: list[Path] = []
    for name in args.files:
        path = Path(name)
        if not path.exists():
            raise UsageError(f"journal verify: no such file: {name}")
        paths.append(path)
    try:
        result = verify(paths, partial=args.partial)
    except OSError as exc:  # unreadable file, a directory we can't list, ...
        raise UsageError(f"journal verify: {exc.filename or ''}: {exc.strerror}") from None
    print(result.describe())
    if not result.ok or (args.strict and result.torn is not None):
        return 1
    return 0


def _add_journal(commands: argparse._SubParsersAction[_Parser]) -> None:
    journal = commands.add_parser("journal", help="audit journal tools")
    sub = journal.add_subparsers(dest="journal_command", metavar="<subcommand>", required=True)
    verify = sub.add_parser(
        "verify",
        help="verify a journal's hash chain",
        description="Verify the hash chain across journal files given in order (a "
        "directory stands for its journal files). Prints one line: ok, or the first broken "
        "entry as file:line.",
    )
    verify.add_argument("files", nargs="+", metavar="FILE", help="journal files or directory")
    verify.add_argument(
        "--partial",
        action="store_true",
        help="the files are a suffix of the journal: anchor the chain at their first entry",
    )
    verify.add_argument(
        "--strict", action="store_true", help="a torn tail (crash mid-write) fails too"
    )
    verify.set_defaults(func=_journal_verify)


def _operator() -> str:
    """Who is at the keyboard: the user behind sudo, else the Unix user."""
    import getpass
    import os

    if os.getuid() == 0 and os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    try:
        return getpass.getuser()
    except OSError:  # a uid with no name (a dynamic user, a bare container)
        return f"uid {os.getuid()}"


def _ctl(args: argparse.Namespace) -> int:
    import orjson

    from arbengine import control
    from arbengine.status import STATUS_VERSION, Status, render

    cmd: str = args.ctl_command
    payload: dict[str, str] = {"cmd": cmd}
    if cmd != "status":
        try:
            by = _operator() if args.by is None else args.by
            payload["by"] = control.check_text(cmd, "by", by)
            payload["reason"] = control.check_text(cmd, "reason", args.reason)
        except control.ControlError as exc:
            raise UsageError(f"ctl {exc}") from None
    if cmd == "kill":
        payload["level"] = args.level
    if args.timeout <= 0:
        raise UsageError("ctl: --timeout must be > 0")
    path = args.socket or control.default_socket_path()
    try:
        result = control.request(path, payload, timeout=args.timeout)
    except (control.DaemonUnreachable, control.ControlError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if cmd == "status":
        if args.json:
            print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
            return 0
        if result.get("version") != STATUS_VERSION:
            print(
                f"error: the daemon's status is version {result.get('version')!r}, this ctl "
                f"reads {STATUS_VERSION}; use --json",
                file=sys.stderr,
            )
            return 1
        status: Status = result  # type: ignore[assignment]  # checked by its version
        try:
            text = render(status)
        except (KeyError, TypeError, AttributeError, ValueError):
            print("error: the daemon's status reply is malformed; use --json", file=sys.stderr)
            return 1
        print(text)
        return 0
    if cmd == "reload":
        changed, refused = result.get("changed") or [], result.get("refused") or []
        for line in changed:
            print(f"changed: {line}")
        for line in refused:
            print(f"refused: {line}")
        if not changed and not refused:
            print("reloaded: nothing changed")
        return 1 if refused else 0
    print(f"kill switch {result.get('level')} (was {result.get('previous')})")
    return 0


def _add_ctl(commands: argparse._SubParsersAction[_Parser]) -> None:
    from arbengine.control import KILL_LEVELS

    ctl = commands.add_parser(
        "ctl",
        help="control the running daemon",
        description="Talk to the running daemon over its control socket.",
    )
    ctl.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's control socket (default: $ARBENGINE_CONTROL_SOCKET, else "
        "$RUNTIME_DIRECTORY/control.sock, else /run/arbengine/control.sock for root, else "
        "$XDG_RUNTIME_DIR/arbengine/control.sock or /tmp/arbengine-UID/control.sock: where "
        "'arbengine run' listens by default)",
    )
    ctl.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for a reply (default: 30)",
    )
    sub = ctl.add_subparsers(dest="ctl_command", metavar="<command>", required=True)
    status = sub.add_parser("status", help="books, pairs, exposure, PnL, risk, latency")
    status.add_argument("--json", action="store_true", help="print the daemon's raw reply")
    helps = {
        "pause": "no new arbs; in-flight legs and hedges go on",
        "resume": "lower the kill switch: trade again",
        "kill": "raise the kill switch",
        "flatten": "raise the kill switch to FLATTEN: close what the portfolio holds",
        "reload": "reload the config (as SIGHUP); prints what changed and what was refused",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        if name == "kill":
            p.add_argument(
                "--level",
                choices=list(KILL_LEVELS),
                default="halt",
                help="halt: no new arbs, hedges go on (as pause; the default); reduce: only "
                "hedges that reduce exposure; flatten: as reduce, and the engine sells or "
                "buys back what the portfolio holds, IOC on the best book, until only dust "
                "is left",
            )
        p.add_argument("--by", help="who acts (default: the Unix user)")
        p.add_argument(
            "--reason",
            "-r",
            required=name != "reload",
            default="",
            help="why, for the journal" + ("" if name != "reload" else " (optional)"),
        )
    ctl.set_defaults(func=_ctl)


def _add_check_config(commands: argparse._SubParsersAction[_Parser]) -> None:
    def run(args: argparse.Namespace) -> int:
        from arbengine.config import ConfigError, load, load_demo

        try:
            config = load(args.file) if args.file is not None else load_demo()
        except ConfigError as exc:
            for line in exc.lines:
                print(line, file=sys.stderr)
            return 1
        pairs = len(config.pairs)
        print(
            f"{config.source}: ok ({len(config.venues)} venue{'s' * (len(config.venues) != 1)}"
            f", {pairs} pair{'s' * (pairs != 1)})"
        )
        return 0

    check = commands.add_parser(
        "check-config",
        help="validate a config file",
        description="Validate a YAML config: prints FILE: ok (N venues, M pairs) and exits 0, "
        "or every problem as FILE:LINE: key.path: message on stderr and exits 1. Without "
        "FILE, checks the embedded demo config.",
    )
    check.add_argument("file", nargs="?", metavar="FILE", help="config file (default: the demo)")
    check.set_defaults(func=run)


def _add_run(commands: argparse._SubParsersAction[_Parser]) -> None:
    def run(args: argparse.Namespace) -> int:
        from arbengine.daemon import main as run_daemon

        return run_daemon(args.config)

    p = commands.add_parser(
        "run",
        help="run the daemon (the embedded demo without -c)",
        description="Run the trading daemon on a YAML config; without -c, the embedded demo "
        "(two simulated venues on loopback, paper trading, no keys). Stops cleanly on "
        "SIGTERM or Ctrl-C, reloads the config on SIGHUP. Exits 1 when the config is "
        "invalid (one line per problem) or the daemon cannot start.",
    )
    p.add_argument("-c", "--config", metavar="FILE", help="config file (default: the demo)")
    p.set_defaults(func=run)


def _parser() -> _Parser:
    parser = _Parser(prog="arbengine", description="Cross-venue arbitrage engine.")
    parser.add_argument("--version", action="version", version=f"arbengine {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    _add_run(commands)
    _add_journal(commands)
    _add_ctl(commands)
    _add_check_config(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        func: Command = args.func
        return func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
