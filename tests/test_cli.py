"""The command line on bad input: every case is one line on stderr, exit code 2, and
nothing half-written left behind (a corpus of the mistakes users make)."""
from __future__ import annotations

import shutil

import pytest
import torch

from faceexp.cli import main
from faceexp.data.folders import load_orl


@pytest.fixture(scope="module")
def face(tmp_path_factory):
    folder = tmp_path_factory.mktemp("face")
    target = folder / "face.pgm"
    shutil.copy(load_orl()["path"].iloc[0], target)
    return target


def _bad_files(folder):
    zero = folder / "zero.png"
    zero.write_bytes(b"")
    truncated = folder / "truncated.png"
    truncated.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    text = folder / "text.jpg"
    text.write_text("not an image")
    directory = folder / "dir.png"
    directory.mkdir()
    return {"zero-byte": zero, "truncated": truncated, "text-as-image": text,
            "directory-as-image": directory}


def _one_line_error(capsys, command):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"faceexp {command}: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("kind", ["zero-byte", "truncated", "text-as-image",
                                  "directory-as-image"])
def test_explain_refuses_bad_images(tmp_path, capsys, kind):
    image = _bad_files(tmp_path)[kind]
    out = tmp_path / "out.npz"
    assert main(["explain", str(image), "--model", "mobilenetv2", "--out", str(out),
                 "--samples", "10", "--quiet"]) == 2
    assert image.name in _one_line_error(capsys, "explain")
    assert not out.exists()


@pytest.mark.parametrize("options, message", [
    (["--out", "{dir}"], "is a directory"),
    (["--out", "{file}/x.npz"], "is a file, not a directory"),
    (["--out", "{dir}/x.npz", "--png", "{dir}"], "--png"),
    (["--out", "{dir}/x.npz", "--class-index", "-1", "--target", "softmax",
      "--layers", "softmax"], "class_index must be >= 0"),
    (["--out", "{dir}/x.npz", "--segments", "1"], "--segments must be an int >= 2"),
])
def test_explain_checks_options_before_computing(tmp_path, capsys, face, options, message):
    (tmp_path / "file").write_text("x")
    options = [o.format(dir=tmp_path, file=tmp_path / "file") for o in options]
    assert main(["explain", str(face), "--model", "mobilenetv2", "--samples", "10",
                 "--quiet", *options]) == 2
    assert message in _one_line_error(capsys, "explain")
    assert not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_one_line(tmp_path, capsys, face):
    assert main(["explain", str(face), "--model", "mobilenetv2", "--out",
                 str(tmp_path / "x.npz"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in _one_line_error(capsys, "explain")
    assert main(["pose", "--out", str(tmp_path / "p.csv"), "--device", "cuda"]) == 2
    assert "CUDA is not available" in _one_line_error(capsys, "pose")


def test_train_and_pose_check_their_outputs_and_config(tmp_path, capsys):
    a_file = tmp_path / "run"
    a_file.write_text("x")
    assert main(["train", "--out", str(a_file), "--max-epochs", "1"]) == 2
    assert "is a file" in _one_line_error(capsys, "train")
    config = tmp_path / "bad.yaml"
    config.write_text("max_epochs: [1,\n")
    assert main(["train", "--out", str(tmp_path / "r"), "--config", str(config)]) == 2
    assert "is not valid YAML" in _one_line_error(capsys, "train")
    config.write_text("- 1\n- 2\n")
    assert main(["train", "--out", str(tmp_path / "r"), "--config", str(config)]) == 2
    assert "must hold a mapping" in _one_line_error(capsys, "train")
    assert main(["train", "--out", str(tmp_path / "r"), "--config",
                 str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in _one_line_error(capsys, "train")
    assert main(["pose", "--out", str(tmp_path)]) == 2
    assert "is a directory" in _one_line_error(capsys, "pose")


def test_eer_reads_excel_csv_and_names_bad_files(tmp_path, capsys):
    bom = tmp_path / "excel.csv"
    bom.write_bytes("score,label\n0.9,1\n0.1,0\n0.8,1\n0.3,0\n".encode("utf-8-sig"))
    assert main(["eer", str(bom), "--json"]) == 0
    assert '"eer": 0.0' in capsys.readouterr().out
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("score,label\n0.9,1\n".encode("utf-16"))
    assert main(["eer", str(utf16)]) == 2
    assert "utf16.csv is not UTF-8 text" in _one_line_error(capsys, "eer")
    assert main(["eer", str(tmp_path)]) == 2
    assert "is a directory" in _one_line_error(capsys, "eer")


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    import faceexp.cli.eer as cli_eer

    def broken(args):
        raise KeyError("bug")

    monkeypatch.setattr(cli_eer, "run", broken)
    assert main(["eer", "x.csv"]) == 1
    err = capsys.readouterr().err.strip()
    assert "internal error: KeyError" in err and "--debug" in err and "\n" not in err
    with pytest.raises(KeyError):
        main(["--debug", "eer", "x.csv"])


def test_model_names_are_the_recognisers():
    from faceexp import recognisers
    from faceexp.cli.common import MODELS

    assert sorted(MODELS) == sorted(recognisers.available())


def test_explain_defaults_to_a_real_recogniser_and_explains_pairs(tmp_path, capsys):
    from faceexp.explain.explanation import Explanation

    orl = load_orl()
    probe, partner = orl.loc[orl["identity"] == "s5", "path"].iloc[:2]
    out = tmp_path / "pair.npz"
    assert main(["explain", probe, "--reference", partner, "--samples", "120", "--segments",
                 "30", "--out", str(out), "--quiet"]) == 0
    explanation = Explanation.load(out)
    assert explanation.heatmaps.shape == (1, 112, 112)         # SFace's aligned geometry
    assert explanation.options["reference"] == "image" and explanation.layers == ["embedding"]
    assert "no --checkpoint" not in capsys.readouterr().err
    assert main(["explain", probe, "--model", "dlib", "--layers", "block3",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "dlib gives one embedding" in _one_line_error(capsys, "explain")


def test_warnings_are_one_line_each(tmp_path, capsys, face):
    """An explanation with fewer samples than unknowns warns (its R2 means nothing): on the
    command line that is one ``faceexp explain: warning:`` line, not Python's two-line form
    with the source line that warned; ``--debug`` leaves warnings to Python."""
    options = ["explain", str(face), "--model", "mobilenetv2", "--samples", "12",
               "--segments", "20", "--quiet", "--out", str(tmp_path / "x.npz")]
    assert main(options) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    warned = [line for line in lines if line.startswith("faceexp explain: warning: ")]
    assert any("under-determined" in line for line in warned), lines
    assert all(line.startswith("faceexp explain: ") for line in lines), lines
    with pytest.warns(Warning, match="under-determined"):     # Python's own, under --debug
        assert main(["--debug", *options]) == 0


def test_samples_auto_reaches_the_explainer_and_bad_values_are_one_line(tmp_path, capsys, face):
    import argparse

    from faceexp.cli import common

    parser = argparse.ArgumentParser()
    common.add_explainer_arguments(parser)
    args = parser.parse_args(["--samples", "auto", "--tolerance", "0.2", "--max-samples", "600"])
    common.check_explainer_arguments(args)
    options = common.explainer_options(args)
    assert (options["n_samples"], options["tolerance"], options["max_samples"]) == ("auto", 0.2, 600)
    assert "tolerance" not in common.explainer_options(parser.parse_args(["--samples", "300"]))
    out = str(tmp_path / "x.npz")
    for extra, message in ((["--samples", "auto", "--tolerance", "1.5"], "--tolerance must lie"),
                           (["--samples", "auto", "--max-samples", "1"], "--max-samples must be an int >= 3")):
        assert main(["explain", str(face), "--model", "mobilenetv2", "--quiet", "--out", out, *extra]) == 2
        assert message in _one_line_error(capsys, "explain")
    with pytest.raises(SystemExit):
        main(["explain", str(face), "--model", "mobilenetv2", "--samples", "fast", "--out", out])
    assert "must be a whole number or 'auto'" in capsys.readouterr().err
