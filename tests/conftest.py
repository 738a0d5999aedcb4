"""Shared test fixtures: tiny image trees written into ``tmp_path``, and ``book/build.py``
loaded as a module (it puts the repository root on ``sys.path``, so the build steps in
``book/*.py`` import as ``book.<step>``)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def load_build_script():
    """``book/build.py`` imported as a module (once; the same object for every test file)."""
    name = "faceexp_book_build"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "book" / "build.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def write_identity_tree(
    root,
    *,
    n_identities: int = 3,
    n_images: int = 4,
    size: tuple[int, int] = (40, 30),
    ext: str = ".png",
    seed: int = 0,
) -> Path:
    """Write ``root/n00000<k>/000<j>_01<ext>``: VGGFace2's layout, tiny RGB noise images.

    ``size`` is (width, height). PNG keeps the pixel values exact. Returns ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for k in range(1, n_identities + 1):
        folder = root / f"n{k:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(1, n_images + 1):
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{j:04d}_01{ext}")
    return root


@pytest.fixture
def make_identity_tree(tmp_path):
    """Factory: ``make_identity_tree(name="faces", **options)`` -> root of a fresh tree.

    Options as :func:`write_identity_tree` (3 identities x 4 PNG images of
    40x30 pixels by default).
    """

    def make(name: str = "faces", **options) -> Path:
        return write_identity_tree(tmp_path / name, **options)

    return make
