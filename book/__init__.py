"""The steps of the book's build, one module each; ``book/build.py`` is their command line.

- :mod:`book.layout`: where the notebooks, parameters and executed copies are; the errors.
- :mod:`book.notebooks`: the notebooks in git (listing, titles, hygiene, stripping).
- :mod:`book.parameters`: the parameters cell, ``params/<profile>/*.yaml``, ``--param``.
- :mod:`book.execute`: papermill runs and the keys that say when a copy is up to date.
- :mod:`book.results`: the results page written from the notebooks' summary JSON files,
  the findings summary, ``claims.json`` and the downloadable data.
- :mod:`book.verdict_matrix`: the results page's matrix of claims and subjects.
- :mod:`book.present`: a chapter as the book shows it (parameters in a dropdown, code collapsed).
- :mod:`book.site`: publishing the executed copies, offline MathJax, ``jupyter-book build``.
- :mod:`book.browser`: the audit of the built HTML and the headless-Chromium check.
- :mod:`book.page_checks`: what a reader would see wrong on a page (HTML and browser checks).
- :mod:`book.prose`: the check that hand-written Markdown states no result.
"""
