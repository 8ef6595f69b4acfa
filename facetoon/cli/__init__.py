"""The ``facetoon`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds an ``argparse`` sub-parser whose ``func`` default
is called with the parsed arguments and returns an exit code. Modules are discovered
automatically, so adding a command means adding one file. Subcommand modules must not import
torch or dlib at module level (``facetoon --help`` stays fast); they import inside ``func``.

Errors: a :class:`facetoon.errors.FacetoonError` (or any other exception) prints one line on
stderr and exits with status 1 (130 on Ctrl-C), a value out of range included; a command line
that cannot be parsed (unknown option, missing or non-numeric value) prints one line too and exits
with status 2. ``--debug`` shows the traceback and enables debug logging;
``--debug`` and ``-q`` are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import re
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn

from .._version import __version__
from ..errors import FacetoonError

__all__ = ["main", "build_parser"]

log = logging.getLogger("facetoon")


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (exit status 2), like every
    other error of the command line, instead of the whole usage block. The sub-parsers of the
    commands are of this class too (``add_subparsers`` makes them of the parent's class)."""

    #: the parsers of the commands by name (set on the main parser by :func:`build_parser` only)
    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def _add_global_options(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("--debug", action="store_true", default=default, help="show tracebacks and debug logging")
    p.add_argument("-q", "--quiet", action="store_true", default=default, help="only print warnings and errors")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="facetoon",
        description="Turn portrait photos and videos into anime-style pictures.",
    )
    parser.add_argument("--version", action="version", version=f"facetoon {__version__}")
    _add_global_options(parser, False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    # --debug and -q also after the command (`facetoon stylize x.jpg --debug`); the default
    # SUPPRESS leaves the value given before the command when they are not repeated after it
    seen: set[int] = set()
    for sub in subparsers.choices.values():
        if id(sub) not in seen:  # aliases share their parser
            seen.add(id(sub))
            _add_global_options(sub, argparse.SUPPRESS)
    parser.commands = dict(subparsers.choices)
    return parser


@contextlib.contextmanager
def _cli_logging(debug: bool, quiet: bool) -> Iterator[None]:
    """Log facetoon's messages to stderr for the duration of one command, then restore the
    logger as it was (so that calling :func:`main` in-process leaves no trace)."""
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("facetoon")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facetoon`` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the parser of the command they follow, which lists its options
        commands: dict[str, argparse.ArgumentParser] = getattr(parser, "commands", {})
        where = commands.get(getattr(args, "command", None) or "", parser)
        where.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    with _cli_logging(args.debug, args.quiet):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("facetoon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`facetoon faces x.jpg --json | head -c 10`): stop quietly,
        # with the status a shell gives a process killed by SIGPIPE; stdout goes to devnull so that
        # the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except FacetoonError as exc:
        if args.debug:
            raise
        print(f"facetoon: error: {_message(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's promise: one line, no traceback
        if args.debug:
            raise
        print(f"facetoon: error: {type(exc).__name__}: {_message(exc)} (run with --debug for details)",
              file=sys.stderr)
        return 1


# how torch re-raises an error of a DataLoader worker (or of its pin-memory thread): the message is
# "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
# followed by the worker's whole traceback (torch/_utils.py, ExceptionWrapper.reraise)
_EMBEDDED_TRACEBACK = "\nOriginal Traceback (most recent call last):\n"
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning)(?:: (.*))?$")


def _message(exc: BaseException) -> str:
    """One line for ``exc``: the first line of its message or, for an error torch re-raised from a
    DataLoader worker with the worker's traceback in its message, the original error's own line
    (``module.TypeName: message`` at the end of that traceback, without the ``module.TypeName: ``)."""
    text = str(exc).strip()
    if _EMBEDDED_TRACEBACK in text:
        lines = text.splitlines()
        for line in reversed(lines):
            match = _EXCEPTION_LINE.match(line)
            if match:  # the last line of the traceback that starts an exception: the original error
                return (match.group(1) or "").strip()
        return lines[-1].strip()
    return text.splitlines()[0] if text else ""
