#!/usr/bin/env python
"""Build the faceexp book offline: the command line of the steps in ``book/*.py``.

Usage (from anywhere; paths are relative to the repository root)::

    python book/build.py [--profile demo] [--only NAME ...] [--param KEY=VALUE ...] [--force] [--quiet]
    python book/build.py --profile quick --skip-execute  # publish the executed copies as they are, build
    python book/build.py --check [--skip-build]     # audit the built HTML, check and screenshot every page
    python book/build.py --strip                    # clear outputs from notebooks/*.ipynb

Steps of a build:

1. Each ``notebooks/NN_*.ipynb`` is executed by papermill into
   ``book/executed/<profile>/<stem>.ipynb`` (:mod:`book.execute`), with the parameters
   merged from ``params/<profile>/common.yaml`` (only the keys the notebook declares in its
   cell tagged ``parameters``), ``params/<profile>/<stem>.yaml`` (every key must be
   declared), ``--param`` options, and the injected ``profile`` and ``output_dir``
   (``book/executed/<profile>/outputs``) (:mod:`book.parameters`); every value is checked
   against its parameter's default (kind, None, positive counts, seeds >= 0) before the
   first notebook runs. Up-to-date copies are
   skipped. While a notebook runs, the terminal shows each code cell as it starts, what
   the cell prints and its progress bars (a bar's state at most every 10 s), each line
   prefixed with the notebook's stem; ``--quiet`` turns that off. The executed copies keep
   no progress bars.
2. The profile's executed notebooks are published to ``book/executed/<stem>.ipynb`` (the
   files ``_toc.yml`` names), and ``book/executed/results_summary.md`` is generated from
   the summaries the notebooks wrote and the settings they ran with (:mod:`book.results`);
   ``book/results.md`` includes it.
3. MathJax 3 is unpacked into the book, and ``jupyter-book build . -W -n`` renders
   ``_build/html`` with execution off (:mod:`book.site`).
4. ``--check`` audits the HTML and renders every page in headless Chromium at 1280 px
   (:mod:`book.browser`, :mod:`book.page_checks`), screenshots in ``_build/screenshots/``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

# book/ is no installed package: put the repository root first on the path so that
# `book.<step>` imports the modules next to this file, however this file was started.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

# The command line uses some of these names; the rest are re-exported so that a script or
# test that loads this file reaches every step's public functions as `build.<name>`.
# ruff: noqa: E402, F401
from book import browser, execute, notebooks, parameters, results, site
from book.browser import audit_book, check_book, find_chromium, rendered_formulas
from book.execute import (ProgressRelay, dependencies, execute_notebook, execute_profile, execution_key,
                          is_up_to_date, stale_notebooks, strip_progress_bars)
from book.layout import BookError, NotebookError, display_path
from book.notebooks import error_outputs, hygiene_problems, notebook_paths, select_notebooks, strip_notebook
from book.parameters import (check_profile_parameters, declared_parameters, notebook_parameters,
                             parameter_specs, parameters_cell_problems, parse_overrides, profiles)
from book.results import write_results_summary
from book.site import build_book, publish


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python book/build.py",
        description="Execute the notebooks (papermill, skipping the up-to-date ones) and build the book.")
    parser.add_argument("--profile", default="demo", help="params/<profile>/: quick, demo or full (default: demo)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="execute only these notebooks (03, gap_vs_softmax, ...)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter for every notebook that declares it, e.g. data_root=/data/vggface2")
    parser.add_argument("--force", action="store_true", help="execute even the up-to-date notebooks")
    parser.add_argument("--quiet", action="store_true",
                        help="do not show the running notebooks' cells, printed lines and progress bars")
    parser.add_argument("--skip-build", action="store_true", help="neither execute nor build: with --check, check the built book")
    parser.add_argument("--skip-execute", action="store_true",
                        help="execute nothing: publish the profile's executed copies as they are and build the HTML")
    parser.add_argument("--check", action="store_true",
                        help="audit the built HTML, check every page in headless Chromium at 1280 px, screenshot it (_build/screenshots/)")
    parser.add_argument("--strip", action="store_true", help="clear outputs and execution counts from notebooks/*.ipynb")
    args = parser.parse_args(argv)
    try:
        if args.strip:
            for path in notebook_paths():
                print(f"{'stripped' if strip_notebook(path) else 'clean   '} {display_path(path)}")
            return 0
        if not args.skip_build:
            if args.profile not in profiles():
                raise ValueError(f"--profile must be one of {', '.join(profiles())}, got {args.profile!r}")
            # Every parameter value is checked before the first notebook runs.
            check_profile_parameters(args.profile, select_notebooks(notebook_paths(), args.only),
                                     overrides=parse_overrides(args.param))
            start = time.perf_counter()
            results = [] if args.skip_execute else execute_profile(
                args.profile, only=args.only, overrides=parse_overrides(args.param), force=args.force,
                progress=None if args.quiet else sys.stdout)
            print(f"notebooks: {sum(r.status == 'executed' for r in results)} executed, "
                  f"{sum(r.status != 'executed' for r in results)} up to date, {time.perf_counter() - start:.1f} s"
                  + (" (--skip-execute)" if args.skip_execute else ""))
            if args.only:
                rest = [p for p in notebook_paths() if p.stem not in {r.name for r in results}]
                stale = stale_notebooks(rest, args.profile, overrides=parse_overrides(args.param))
                if stale:
                    print(f"not re-run (--only), out of date: {', '.join(stale)}")
            try:
                changed = publish(args.profile)
            except FileNotFoundError as exc:
                print(f"book not built: {exc}")
                return 0
            print(f"published profile {args.profile!r}: {len(changed)} page(s) changed")
            index = build_book()
            print(f"the book: {index}")
        if args.check:
            problems = check_book()
            for problem in problems:
                print(f"check: {problem}", file=sys.stderr)
            if problems:
                return 1
            print("check: the book is complete and loads nothing from the web")
        return 0
    except NotebookError as exc:
        print(f"build.py: {exc}", file=sys.stderr)
        return 1
    except BookError as exc:
        print(f"build.py: {exc}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
