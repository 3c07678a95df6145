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


def _parser() -> _Parser:
    parser = _Parser(prog="arbengine", description="Cross-venue arbitrage engine.")
    parser.add_argument("--version", action="version", version=f"arbengine {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    _add_journal(commands)
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
