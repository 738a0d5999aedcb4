"""The steps of the book's build, one module each; ``book/build.py`` is their command line.

- :mod:`book.layout`: where the notebooks, parameters and executed copies are; the errors.
- :mod:`book.notebooks`: the notebooks in git (listing, titles, hygiene, stripping).
- :mod:`book.parameters`: the parameters cell, ``params/<profile>/*.yaml``, ``--param``.
- :mod:`book.execute`: papermill runs and the keys that say when a copy is up to date.
- :mod:`book.results`: the results page written from the notebooks' summary JSON files.
- :mod:`book.site`: publishing the executed copies, offline MathJax, ``jupyter-book build``.
- :mod:`book.browser`: the audit of the built HTML and the headless-Chromium check.
"""
