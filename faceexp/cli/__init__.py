"""The ``faceexp`` command line: ``faceexp <subcommand> ...``.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers)``, which registers the subcommand and sets
``func`` (called with the parsed arguments, returning an exit code).
Heavy imports (torch) happen inside ``func``, so ``faceexp --help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

#: Subcommand modules, in the order ``faceexp --help`` lists them.
SUBCOMMANDS = ("train", "explain", "explain_set", "eer", "pose", "verify")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceexp",
        description="Explainable face verification (LIME adapted to CNN embeddings).",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"faceexp.cli.{name}")
        except ModuleNotFoundError as exc:  # a subcommand not written yet
            if exc.name != f"faceexp.cli.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; expected failures are one line on stderr and exit code 2.

    Bad input of any kind (a value, a file, a folder, a device, a YAML file) is a
    ``ValueError`` or ``OSError`` and prints ``faceexp <cmd>: error: <message>``, on one
    line (a message of several lines has them joined, :func:`one_line`).
    Anything else is a bug: one line and exit code 1, and the traceback with
    ``--debug``. Warnings are one line each too, ``faceexp <cmd>: warning: <message>``
    (with ``--debug``, Python's own form, which names the line that warned).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _one_line_warnings(args.command)
            return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:
        if args.debug:
            raise
        message = str(exc)
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{exc.filename}: {message}"
        print(f"faceexp {args.command}: error: {one_line(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"faceexp {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so in one line, the traceback behind --debug
        if args.debug:
            raise
        print(f"faceexp {args.command}: internal error: {type(exc).__name__}: "
              f"{one_line(str(exc))} (run again with --debug for the traceback)",
              file=sys.stderr)
        return 1


def one_line(message: str) -> str:
    """``message`` on one line: a library's multi-line text (a traceback-like hint, a list
    of keys) has its lines joined by single spaces, so an error stays one line."""
    return " ".join(str(message).split())


def _one_line_warnings(command: str):
    """A ``warnings.showwarning`` that prints ``faceexp <command>: warning: <message>``."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"faceexp {command}: warning: {one_line(message)}",
              file=sys.stderr if file is None else file)
    return show


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
