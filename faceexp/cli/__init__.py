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

#: Subcommand modules, in the order ``faceexp --help`` lists them.
SUBCOMMANDS = ("train", "explain", "eer", "pose")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceexp",
        description="Explainable face verification (LIME adapted to CNN embeddings).",
    )
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
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        # Bad input: a one-line message naming what to fix, no traceback.
        print(f"faceexp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
