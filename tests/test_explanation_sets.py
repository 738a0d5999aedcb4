"""faceexp.explain.explanation_sets and ``faceexp explain-set``: whole data sets, resumable, sharded."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from faceexp.data.folders import load_orl, scan_identity_folders
from faceexp.explain.explanation import Explanation
from faceexp.explain.explanation_sets import explain_set, result_path

OPTIONS = dict(n_samples=40, n_segments=12, batch_size=8)


def _tree(root, identities=("s1", "s2"), per_identity=3, corrupt=True):
    orl = load_orl()
    for identity in identities:
        (root / identity).mkdir(parents=True)
        for path in orl.loc[orl["identity"] == identity, "path"].iloc[:per_identity]:
            shutil.copy(path, root / identity)
    if corrupt:
        (root / identities[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    return root


def _embed(batch):
    """A fast deterministic embedding: 4x4 average pooling of the image."""
    return torch.nn.functional.avg_pool2d(batch, 16).flatten(1)


def _heatmaps(out_dir):
    return {p.relative_to(out_dir).as_posix(): Explanation.load(p).heatmaps
            for p in sorted(out_dir.rglob("*.npz"))}


def test_every_image_once_failures_listed_and_resume(tmp_path):
    frame = scan_identity_folders(_tree(tmp_path / "set"))
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="could not explain .*broken.png"):
        result = explain_set(frame, _embed, out, progress=False, **OPTIONS)
    assert sorted(result["status"]) == ["done"] * 6 + ["failed"]
    import pandas as pd

    failed = pd.read_csv(out / "failed-0.csv")
    assert failed["image"].tolist() == ["s1/broken.png"]
    first = _heatmaps(out)
    assert sorted(first) == sorted(f"{image}.npz" for image in frame["image"]
                                   if "broken" not in image)
    # The file of image k holds the explanation with seed k, and the image itself.
    k = int(np.flatnonzero(frame["image"] == "s2/1.pgm")[0])
    with np.load(result_path(out, "s2/1.pgm")) as data:
        assert int(str(data["seed"])) == k and data["image"].shape == (113, 113, 3)
    # Resume: only the missing file is computed again, to the same values.
    result_path(out, "s2/1.pgm").unlink()
    with pytest.warns(UserWarning):
        again = explain_set(frame, _embed, out, progress=False, **OPTIONS)
    assert (again["status"] == "done").sum() == 1 and (again["status"] == "existing").sum() == 5
    for name, heatmaps in _heatmaps(out).items():
        assert np.array_equal(heatmaps, first[name]), name


def test_shards_union_is_the_one_process_run(tmp_path):
    frame = scan_identity_folders(_tree(tmp_path / "set", corrupt=False))
    explain_set(frame, _embed, tmp_path / "one", progress=False, **OPTIONS)
    shares = [explain_set(frame, _embed, tmp_path / "two", rank=r, world_size=2,
                          progress=False, **OPTIONS) for r in (0, 1)]
    assert [len(s) for s in shares] == [3, 3]
    one, two = _heatmaps(tmp_path / "one"), _heatmaps(tmp_path / "two")
    assert sorted(one) == sorted(two)
    assert all(np.array_equal(one[name], two[name]) for name in one)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        explain_set(frame, _embed, tmp_path / "x", rank=2, world_size=2)


def _cli(*args, env_extra=None, one_thread=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if not one_thread:        # every core, as a user's one-process run has
        env.pop("OMP_NUM_THREADS")
    env.update(env_extra or {})
    return [sys.executable, *args], env


def test_torchrun_two_cpu_processes_equal_one_process(tmp_path):
    root = _tree(tmp_path / "set", per_identity=2, corrupt=False)
    common = ["explain-set", str(root), "--model", "mobilenetv2", "--samples", "20",
              "--segments", "10", "--quiet"]
    # The single process uses every core; torchrun gives each shard one thread.
    command, env = _cli("-m", "faceexp", *common, "--out", str(tmp_path / "one"),
                        one_thread=False)
    single = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr
    command, env = _cli("-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29517", "-m", "faceexp", *common,
                        "--out", str(tmp_path / "two"))
    sharded = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    # Both processes of the one run worked in the folder that process 0 locked.
    assert "process 1/2: 2 images: 2 explained" in sharded.stdout
    assert "process 2/2: 2 images: 2 explained" in sharded.stdout
    one, two = _heatmaps(tmp_path / "one"), _heatmaps(tmp_path / "two")
    assert len(one) == 4 and sorted(one) == sorted(two)
    assert all(np.array_equal(one[name], two[name]) for name in one)
    # One manifest, the same settings as the one-process run: either resumes the other.
    assert (tmp_path / "one" / "manifest.json").read_bytes() == \
        (tmp_path / "two" / "manifest.json").read_bytes()


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    root = _tree(tmp_path / "set", identities=("s3", "s4"), per_identity=3, corrupt=False)
    common = ["explain-set", str(root), "--model", "mobilenetv2", "--samples", "150",
              "--segments", "20", "--quiet"]
    killed_out = tmp_path / "killed"
    command, env = _cli("-m", "faceexp", *common, "--out", str(killed_out))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(killed_out.rglob("*.npz"))) < 2:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = len(list(killed_out.rglob("*.npz")))
    assert 2 <= finished_before < 6
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished_before} already done" in resumed.stdout
    command, env = _cli("-m", "faceexp", *common, "--out", str(tmp_path / "whole"))
    subprocess.run(command, env=env, capture_output=True, check=True, timeout=600)
    whole, killed = _heatmaps(tmp_path / "whole"), _heatmaps(killed_out)
    assert sorted(whole) == sorted(killed) and len(whole) == 6
    assert all(np.array_equal(whole[name], killed[name]) for name in whole)
    assert not list(killed_out.rglob(".*.tmp"))
