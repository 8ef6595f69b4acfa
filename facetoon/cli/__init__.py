"""The ``facetoon`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers) -> None``, which adds an ``argparse`` sub-parser whose ``func`` default
is called with the parsed arguments and returns an exit code. Modules are discovered
automatically, so adding a command means adding one file. Subcommand modules must not import
torch or dlib at module level (``facetoon --help`` stays fast); they import inside ``func``.

Errors: a :class:`facetoon.errors.FacetoonError` (or any other exception) prints one line on
stderr and exits with status 1 (2 for usage errors, 130 on Ctrl-C); ``--debug`` shows the
traceback and enables debug logging.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Iterator, Sequence

from .._version import __version__
from ..errors import FacetoonError

__all__ = ["main", "build_parser"]

log = logging.getLogger("facetoon")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facetoon",
        description="Turn portrait photos and videos into anime-style pictures.",
    )
    parser.add_argument("--version", action="version", version=f"facetoon {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
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
    args = parser.parse_args(argv)
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
        print(f"facetoon: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's promise: one line, no traceback
        if args.debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"facetoon: error: {type(exc).__name__}: {first} (run with --debug for details)",
              file=sys.stderr)
        return 1
