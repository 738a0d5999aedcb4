"""Issue 22, cases 1, 2 and 11 (``Explanation.load``): explain-set results that know what
made them, one run per folder, and explanation files checked when they are read.

* every ``.npz`` records its run's settings (model and weights hash, layers, every
  explainer option, seed, faceexp's version) and its image's content hash; the
  folder holds one ``manifest.json``; a run with other settings is refused naming
  them (exit 2), ``--restart`` replaces; an image whose content changed is explained
  again;
* a lock on ``--out``: a second run is refused (exit 2), a killed holder blocks
  nothing; a run killed at random points and resumed equals an uninterrupted one;
* ``Explanation.load`` refuses a wrong format tag, wrong shapes or a wrong layer count
  in one line naming the file; first-format files still load.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from faceexp.core.version import __version__
from faceexp.data.folders import load_orl, scan_identity_folders
from faceexp.explain.explainer import Explainer
from faceexp.explain.explanation import Explanation
from faceexp.explain.explanation_sets import explain_set, result_path

# The names this issue added are imported in the tests that use them, so that every
# test of this file runs (and fails) on the code as it was before.

OPTIONS = dict(n_samples=40, n_segments=12, batch_size=8)


# --------------------------------------------------------------------------- helpers
# (the pattern of tests/test_explanation_sets.py: ORL faces copied into a small tree)
def _tree(root, identities=("s1", "s2"), per_identity=2):
    orl = load_orl()
    for identity in identities:
        (root / identity).mkdir(parents=True)
        for path in orl.loc[orl["identity"] == identity, "path"].iloc[:per_identity]:
            shutil.copy(path, root / identity)
    return root


def _embed(batch):
    """A fast deterministic embedding: 4x4 average pooling of the image."""
    return torch.nn.functional.avg_pool2d(batch, 16).flatten(1)


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.AvgPool2d(16), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 7 * 7, 8)).eval()


def _files(out_dir):
    """Every file under ``out_dir`` but the lock (it names its last holder): name -> bytes."""
    return {p.relative_to(out_dir).as_posix(): p.read_bytes() for p in sorted(out_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _contents(out_dir):
    """The folder as values: every array of every .npz, and the other files' bytes."""
    found = {}
    for name, raw in _files(out_dir).items():
        if name.endswith(".npz"):
            with np.load(out_dir / name) as data:
                found[name] = {k: data[k] for k in data.files}
        else:
            found[name] = raw
    return found


def _assert_same_folder(a, b):
    one, two = _contents(a), _contents(b)
    assert sorted(one) == sorted(two)
    for name in one:
        if isinstance(one[name], dict):
            assert sorted(one[name]) == sorted(two[name]), name
            for key in one[name]:
                assert np.array_equal(one[name][key], two[name][key]), (name, key)
        else:
            assert one[name] == two[name], name
    assert not list(b.rglob(".*.tmp"))


def _cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return [sys.executable, "-m", "faceexp", *args], env


def _error_lines(stderr):
    return [line for line in stderr.splitlines() if ": error:" in line]


# --------------------------------------------------------------------------- case 1: records
def test_every_file_and_the_folder_record_what_made_them(tmp_path):
    from faceexp.explain.explanation import read_provenance

    root = _tree(tmp_path / "set")
    frame = scan_identity_folders(root)
    out = tmp_path / "out"
    result = explain_set(frame, _embed, out, progress=False, seed=3, **OPTIONS)
    assert (result["status"] == "done").all()
    manifest = json.loads((out / "manifest.json").read_text())
    settings = manifest["settings"]
    assert settings["n_samples"] == 40 and settings["n_segments"] == 12
    assert settings["seed"] == 3 and settings["faceexp_version"] == __version__
    assert settings["model"].endswith("_embed") and settings["target"] == "cosine"
    assert settings["p_off"] == 0.6 and settings["kernel"] == "matlab"
    for k, (image, path) in enumerate(zip(frame["image"], frame["path"])):
        explanation = Explanation.load(result_path(out, image))
        made = explanation.provenance
        assert made == read_provenance(result_path(out, image))
        assert made["faceexp_version"] == __version__
        assert made["settings"] == settings and made["model"] == manifest["model"]
        assert made["settings_sha256"] == manifest["settings_sha256"]
        with open(path, "rb") as file:
            assert made["image"]["sha256"] == hashlib.sha256(file.read()).hexdigest()
        assert made["image"]["seed"] == explanation.seed == 3 + k
        assert made["image"]["name"] == image and made["image"]["box"] is None


def test_describe_model_hashes_the_weights(tmp_path):
    from faceexp.explain.provenance import describe_model, record_for

    weights = tmp_path / "weights.onnx"
    weights.write_bytes(b"some weights")

    class Recogniser:                       # a recogniser: a name and its weights file
        name, source = "sface-like", {"file": str(weights)}

        def __call__(self, batch):
            return _embed(batch)

    described = describe_model(Recogniser())
    assert described["model"] == "sface-like"
    assert described["weights_sha256"] == hashlib.sha256(b"some weights").hexdigest()
    checkpoint = tmp_path / "net.pt"
    checkpoint.write_bytes(b"a checkpoint")
    net = _net()
    described = describe_model(net, checkpoint=checkpoint)
    assert described["checkpoint"] == str(checkpoint)
    assert described["checkpoint_sha256"] == hashlib.sha256(b"a checkpoint").hexdigest()
    with torch.no_grad():
        net[2].weight[0, 0] += 1.0
    assert describe_model(net)["weights_sha256"] != described["weights_sha256"]
    # One explanation of an image file (faceexp explain): the model and both images.
    face, other = tmp_path / "a.png", tmp_path / "b.png"
    face.write_bytes(b"face bytes")
    other.write_bytes(b"other bytes")
    record = record_for(Recogniser(), face, box=(1, 2, 3, 4), reference=other)
    assert record["model"]["weights_sha256"] == hashlib.sha256(b"some weights").hexdigest()
    assert record["image"] == {"path": str(face), "box": [1, 2, 3, 4],
                               "sha256": hashlib.sha256(b"face bytes").hexdigest()}
    assert record["reference"]["sha256"] == hashlib.sha256(b"other bytes").hexdigest()


# --------------------------------------------------------------------------- case 1: resume
def test_resume_with_other_settings_is_refused_naming_them(tmp_path):
    frame = scan_identity_folders(_tree(tmp_path / "set"))
    out = tmp_path / "out"
    explain_set(frame, _embed, out, progress=False, **OPTIONS)
    before = _files(out)
    with pytest.raises(ValueError) as refused:
        explain_set(frame, _embed, out, progress=False, seed=5, **dict(OPTIONS, n_samples=30))
    message = str(refused.value)
    assert "\n" not in message and str(out) in message
    assert "n_samples: 40 -> 30" in message and "seed: 0 -> 5" in message
    assert "n_segments" not in message
    assert _files(out) == before                     # nothing written, nothing removed
    # Another model (a network, then the same network with one weight changed).
    net = _net()
    explain_set(frame, net, tmp_path / "net", progress=False, **OPTIONS)
    with torch.no_grad():
        net[2].weight[0, 0] += 1.0
    with pytest.raises(ValueError, match=r"weights_sha256: [0-9a-f]{12} -> [0-9a-f]{12}"):
        explain_set(frame, net, tmp_path / "net", progress=False, **OPTIONS)
    with pytest.raises(ValueError, match=r"model: .*_embed.* -> .*Sequential"):
        explain_set(frame, net, out, progress=False, **OPTIONS)
    # restart=True replaces them: the folder then equals a fresh run with the new settings.
    again = explain_set(frame, _embed, out, progress=False, seed=5, restart=True,
                        **dict(OPTIONS, n_samples=30))
    assert (again["status"] == "done").all()
    explain_set(frame, _embed, tmp_path / "fresh", progress=False, seed=5,
                **dict(OPTIONS, n_samples=30))
    _assert_same_folder(tmp_path / "fresh", out)


def test_changed_image_content_is_explained_again(tmp_path):
    root = _tree(tmp_path / "set")
    frame = scan_identity_folders(root)
    out = tmp_path / "out"
    explain_set(frame, _embed, out, progress=False, **OPTIONS)
    # Another face under the same name.
    shutil.copy(root / "s2" / "1.pgm", root / "s1" / "1.pgm")
    again = explain_set(frame, _embed, out, progress=False, **OPTIONS)
    status = dict(zip(again["image"], again["status"]))
    reason = dict(zip(again["image"], again["reason"]))
    assert status.pop("s1/1.pgm") == "done"
    assert reason["s1/1.pgm"] == "replaced: the image's content changed"
    assert set(status.values()) == {"existing"}
    explain_set(frame, _embed, tmp_path / "fresh", progress=False, **OPTIONS)
    _assert_same_folder(tmp_path / "fresh", out)
    # A file of the first format (before provenance) is explained again too.
    target = result_path(out, "s2/1.pgm")
    with np.load(target) as data:
        arrays = {k: data[k] for k in data.files if k != "provenance"}
    np.savez(target, **dict(arrays, format=np.array("faceexp-explanation-1")))
    assert Explanation.load(target).provenance is None         # old files still load
    third = explain_set(frame, _embed, out, progress=False, **OPTIONS)
    assert dict(zip(third["image"], third["reason"]))["s2/1.pgm"].startswith(
        "replaced: made by a faceexp that did not record")
    _assert_same_folder(tmp_path / "fresh", out)


# --------------------------------------------------------------------------- case 2: lock
_HOLDER = ("import sys, time; from faceexp.core.locks import FolderLock; "
           "FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(300)")


def test_a_folder_in_use_is_refused_and_a_killed_holder_blocks_nothing(tmp_path):
    from faceexp.core.locks import FolderInUse, FolderLock

    frame = scan_identity_folders(_tree(tmp_path / "set"))
    out = tmp_path / "out"
    with FolderLock(out):                  # even in this process: the lock is the open file
        with pytest.raises(FolderInUse, match=rf"in use by another run \(pid {os.getpid()} "):
            explain_set(frame, _embed, out, progress=False, **OPTIONS)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse) as refused:
            explain_set(frame, _embed, out, progress=False, **OPTIONS)
        assert f"pid {holder.pid} " in str(refused.value) and "\n" not in str(refused.value)
        assert not list(out.rglob("*.npz")) and not (out / "manifest.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = explain_set(frame, _embed, out, progress=False, **OPTIONS)
    assert (result["status"] == "done").sum() == 4


def test_cli_second_run_refused_in_one_line_and_a_killed_run_blocks_nothing(tmp_path):
    root = _tree(tmp_path / "set", identities=("s3", "s4"))
    out = tmp_path / "out"
    common = ["explain-set", str(root), "--model", "mobilenetv2", "--segments", "10",
              "--quiet", "--out", str(out)]
    command, env = _cli(*common, "--samples", "3000")     # minutes: still going when refused
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and f"pid {first.pid} " not in (
                (out / ".lock").read_text() if (out / ".lock").exists() else ""):
            time.sleep(0.1)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert first.poll() is None                      # the first run was still going
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2
    (line,) = _error_lines(second.stderr)
    since = line.split(" since ")[1].split(")")[0]
    assert line == (f"faceexp explain-set: error: --out {str(out)!r} is in use by another "
                    f"explain-set run (pid {first.pid} on {os.uname().nodename} since "
                    f"{since}): wait for it to end, or give another --out")
    # The killed run's lock does not stay: the next run on the folder goes on.
    command, env = _cli(*common, "--samples", "20", "--restart")
    after = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert after.returncode == 0, after.stderr
    assert len(list(out.rglob("*.npz"))) == 4


def test_torchrun_refused_by_every_process_said_once(tmp_path):
    root = _tree(tmp_path / "set", identities=("s3",))
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        command, env = _cli("explain-set", str(root), "--model", "mobilenetv2", "--samples",
                            "20", "--segments", "10", "--quiet", "--out", str(out))
        command[1:3] = ["-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29519", "-m", "faceexp"]
        refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert refused.returncode != 0
    (line,) = _error_lines(refused.stderr)           # process 0 says it; process 1 exits 2
    assert f"is in use by another explain-set run (pid {holder.pid} " in line
    assert not list(out.rglob("*.npz"))


# --------------------------------------------------------------------------- killed at random
def test_killed_at_random_points_resumes_to_the_uninterrupted_folder(tmp_path):
    root = _tree(tmp_path / "set", identities=("s3", "s4"))
    common = ["explain-set", str(root), "--model", "mobilenetv2", "--samples", "20",
              "--segments", "10", "--quiet"]
    command, env = _cli(*common, "--out", str(tmp_path / "whole"))
    start = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True, timeout=300)
    seconds = time.perf_counter() - start
    assert len(list((tmp_path / "whole").rglob("*.npz"))) == 4
    for seed in (0, 1, 2):
        out = tmp_path / f"killed-{seed}"
        command, env = _cli(*common, "--out", str(out))
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(np.random.default_rng(seed).uniform(0.3, 1.0) * seconds)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for path in out.rglob("*.npz"):              # what the killed run left is whole
            Explanation.load(path)
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        _assert_same_folder(tmp_path / "whole", out)
    # Resuming with other settings is refused in one line naming them; nothing changes.
    before = _files(out)
    command, env = _cli(*common[:5], "30", *common[6:], "--out", str(out))
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    (line,) = _error_lines(refused.stderr)
    assert line == (f"faceexp explain-set: error: --out {str(out)!r} holds explanations made "
                    "with other settings (--samples: 20 -> 30): give the same settings to "
                    "resume, another --out, or --restart to replace them")
    assert _files(out) == before


def test_cli_restart_replaces_the_other_settings(tmp_path, capsys):
    from faceexp.cli import main

    root = _tree(tmp_path / "set", identities=("s3",))
    out = tmp_path / "out"
    common = ["explain-set", str(root), "--model", "mobilenetv2", "--segments", "10",
              "--quiet", "--out", str(out)]
    assert main([*common, "--samples", "20"]) == 0
    capsys.readouterr()
    assert main([*common, "--samples", "30", "--segments", "12", "--seed", "4"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "(--samples: 20 -> 30; --segments: 10 -> 12; --seed: 0 -> 4): " in line
    assert main([*common, "--samples", "30", "--segments", "12", "--seed", "4",
                 "--restart"]) == 0
    assert "2 images: 2 explained, 0 already done" in capsys.readouterr().out
    for path in out.rglob("*.npz"):
        explanation = Explanation.load(path)
        assert explanation.options["n_samples"] == 30 and explanation.options["n_segments"] == 12
    assert json.loads((out / "manifest.json").read_text())["settings"]["seed"] == 4


# --------------------------------------------------------------------------- case 11: load
def _saved(tmp_path):
    image = np.random.default_rng(0).random((32, 32, 3))
    explanation = Explainer(_embed, n_samples=12, n_segments=6).explain(image, seed=1)
    return explanation.save(tmp_path / "good.npz", image=image)


def _rewrite(source, target, drop=(), **changes):
    with np.load(source) as data:
        arrays = {k: data[k] for k in data.files if k not in drop}
    np.savez(target, **dict(arrays, **changes))
    return target


@pytest.mark.parametrize("drop, changes, message", [
    ((), {"format": np.array("something-else")},
     r"has format tag 'something-else'; this faceexp \(.*\) reads .*not a file written by"),
    ((), {"format": np.array("faceexp-explanation-9")}, r"upgrade faceexp to read it"),
    (("format",), {}, r"has no format tag"),
    ((), {"layers": np.array(["a", "b", "c"])}, r"names 3 layer\(s\) .* but holds 1 heatmap"),
    ((), {"heatmaps": np.zeros((2, 32, 32))}, r"names 1 layer\(s\) .* but holds 2 heatmap"),
    ((), {"heatmaps": np.zeros((32, 32))}, r"heatmaps must have shape \(layers, H, W\)"),
    ((), {"segments": np.zeros((16, 32), int)}, r"segments must be integers of shape \(32, 32\)"),
    ((), {"coefficients": np.zeros((1, 99))}, r"samples must have shape \(n_samples, 99\)"),
    ((), {"targets": np.zeros((1, 5))}, r"targets must have shape \(1, 12\)"),
    ((), {"r2": np.zeros(3)}, r"r2 must have shape \(1,\)"),
])
def test_load_checks_tag_shapes_and_layer_count_in_one_line(tmp_path, drop, changes, message):
    good = _saved(tmp_path)
    Explanation.load(good)
    bad = _rewrite(good, tmp_path / "bad.npz", drop=drop, **changes)
    with pytest.raises(ValueError) as caught:
        Explanation.load(bad)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(str(bad))
    assert __import__("re").search(message, text), text


def test_load_refuses_files_that_are_no_explanation_and_reads_the_first_format(tmp_path):
    from faceexp.explain.explanation import read_provenance

    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match=rf"^{text} is not an Explanation file") as caught:
        Explanation.load(text)
    assert "\n" not in str(caught.value)
    good = _saved(tmp_path)
    old = _rewrite(good, tmp_path / "old.npz", drop=("provenance",),
                   format=np.array("faceexp-explanation-1"))
    loaded = Explanation.load(old)
    assert loaded.provenance is None and read_provenance(old) is None
    assert np.array_equal(loaded.heatmaps, Explanation.load(good).heatmaps)
    assert Explanation.load(good).provenance == {"faceexp_version": __version__}
