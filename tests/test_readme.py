"""README's code examples run as written: every ```python block, in order, in one namespace,
in a scratch working directory, each followed by checks of what it claims to produce."""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def _in_unit_range(array) -> bool:
    array = np.asarray(array)
    return bool(np.all(np.isfinite(array)) and array.min() >= 0 and array.max() <= 1)


def _train_the_network_make_book_would(root: Path) -> Path:
    """A genuinely trained MobileNetV2 where :func:`faceexp.trained_checkpoint` looks after
    ``make book``: ``artifacts/demo/train/mobilenetv2-test/final.pt`` under ``root``.

    One epoch of faceexp's own training (ImageNet init, as the book) on 6 ORL people x 4
    images: about 10 s on a 2-core CPU. The README's example only needs a network that
    ``make book`` could have written, not a good one."""
    import faceexp
    from faceexp.models import training as ftrain

    faces = root / "tiny_orl"
    orl = faceexp.orl_root()
    for k in range(1, 7):
        (faces / f"s{k}").mkdir(parents=True)
        for i in range(1, 5):
            shutil.copy(orl / f"s{k}" / f"{i}.pgm", faces / f"s{k}" / f"{i}.pgm")
    out = root / "artifacts" / "demo" / "train" / "mobilenetv2-test"
    config = ftrain.TrainConfig(arch="mobilenetv2", data_root=str(faces), test_fraction=0.34,
                                batch_size=4, max_epochs=1, channels_last=False, device="cpu")
    result = ftrain.train(config, out, progress=False)
    assert result.final_checkpoint.is_file() and len(result.metrics) == 1
    return result.final_checkpoint


def _check_first(ns: dict, cwd: Path, printed: str) -> None:
    """A real recogniser on ORL: aligned faces, one explanation, one of a pair, its file."""
    assert len(ns["orl"]) == 400 and ns["orl"]["identity"].nunique() == 40
    for face in (ns["probe"], ns["partner"]):
        assert face.shape == (112, 112, 3) and _in_unit_range(face)
    explanation, pair = ns["explanation"], ns["pair"]
    assert explanation.heatmaps.shape == (1, 112, 112) and _in_unit_range(explanation.heatmaps)
    assert explanation.samples.shape[0] == 1000
    n_superpixels = len(np.unique(explanation.segments))
    assert explanation.coefficients.shape == (1, n_superpixels) and n_superpixels > 20
    assert explanation.samples.shape == (1000, n_superpixels)
    assert np.all(np.isfinite(explanation.coefficients)) and np.ptp(explanation.coefficients) > 0
    assert explanation.targets.shape == (1, 1000) and np.all(np.abs(explanation.targets) <= 1 + 1e-6)
    # sample 0 is the unperturbed probe: cosine 1 with itself, below 1 with its partner
    assert explanation.targets[0, 0] == pytest.approx(1, abs=1e-4)
    assert pair.options["reference"] == "image" and pair.heatmaps.shape == (1, 112, 112)
    assert pair.targets[0, 0] < 0.99 and _in_unit_range(pair.heatmaps)
    assert (cwd / "probe.npz").is_file()
    again = type(explanation).load(cwd / "probe.npz")
    np.testing.assert_allclose(again.heatmaps, explanation.heatmaps)


def _check_second(ns: dict, cwd: Path, printed: str) -> None:
    """Two recognisers in the canonical crop: heatmaps on the same pixels, a finite PSNR."""
    assert ns["face"].shape == (144, 144, 3) and _in_unit_range(ns["face"])
    assert len(ns["maps"]) == 2
    for heatmap in ns["maps"]:
        assert heatmap.shape == (144, 144) and _in_unit_range(heatmap)
    psnr = float(printed.strip().splitlines()[-1])
    assert math.isfinite(psnr) and 0 < psnr < 100, printed
    assert psnr == pytest.approx(float(ns["faceexp"].heatmap_psnr(*ns["maps"])))


def _check_third(ns: dict, cwd: Path, printed: str) -> None:
    """A paper CNN from the run `make book` left: three layers from one pass, one explanation."""
    assert ns["checkpoint"] == Path("artifacts/demo/train/mobilenetv2-test/final.pt")
    assert ns["image"].shape == (113, 113, 3) and ns["image"].dtype == np.float32
    assert _in_unit_range(ns["image"])
    explanation = ns["explanation"]
    assert explanation.layers == ["gap", "block16", "softmax"]
    assert explanation.heatmaps.shape == (3, 113, 113) and _in_unit_range(explanation.heatmaps)
    assert explanation.samples.shape[0] == 300 and explanation.targets.shape == (3, 300)
    softmax = explanation.targets[2]
    assert np.all((softmax >= 0) & (softmax <= 1)), "the softmax target is a probability"
    assert np.all(np.isfinite(explanation.coefficients))


CHECKS = [_check_first, _check_second, _check_third]


@pytest.mark.slow
def test_readme_examples_run_as_written(tmp_path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert len(blocks) == len(CHECKS), (
        f"README has {len(blocks)} python blocks and this test checks {len(CHECKS)}: "
        "add the checks of a new block to CHECKS (or remove those of a deleted one)")
    monkeypatch.chdir(tmp_path)
    _train_the_network_make_book_would(tmp_path)
    capsys.readouterr()
    namespace: dict = {}
    for number, (block, check) in enumerate(zip(blocks, CHECKS), start=1):
        exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        check(namespace, tmp_path, capsys.readouterr().out)


def test_every_readme_python_block_compiles():
    for number, block in enumerate(_python_blocks(), start=1):
        compile(block, f"README.md python block {number}", "exec")
