"""Tests of faceexp.verify.embeddings: flip averaging, batching, the cache, the layer sweep."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from faceexp.verify import embeddings as femb
from faceexp.core.similarity import pair_cosine
from faceexp.data.preprocessing import preprocess
from faceexp.verify.embeddings import compute_embeddings, frame_fingerprint
from faceexp.models import state_dict_hash
from faceexp.verify.layer_sweep import layer_sweep_scores, plan_layer_groups


class ToyEmbedder:
    """Three fixed 'layers' of a (N, 3, H, W) batch; not mirror-symmetric; counts calls."""

    def __init__(self, layers=("a", "b"), *, shape=(3, 4, 5), seed=0, compiled=None):
        gen = torch.Generator().manual_seed(seed)
        size = int(np.prod(shape))
        self.wa = torch.randn(size, 7, generator=gen)
        self.wb = torch.randn(size, 4, generator=gen)
        self.layers = tuple(layers)
        self.pooling = "flatten"
        self.calls: list[int] = []
        if compiled is not None:
            self.compiled = compiled

    def reference(self, x: np.ndarray) -> dict:
        flat = x.reshape(len(x), -1).astype(np.float64)
        out = {"a": flat @ self.wa.double().numpy(),
               "b": np.maximum(flat @ self.wb.double().numpy(), 0),
               "c": flat[:, :3] ** 2 + 0.1}
        return {k: out[k] for k in self.layers}

    def __call__(self, x):
        self.calls.append(int(x.shape[0]))
        flat = x.reshape(len(x), -1)
        out = {"a": flat @ self.wa, "b": torch.relu(flat @ self.wb), "c": flat[:, :3] ** 2 + 0.1}
        return {k: out[k] for k in self.layers}


def _images(n=7, shape=(3, 4, 5), seed=1):
    return np.random.default_rng(seed).random((n,) + shape).astype(np.float32)


def _expected(embedder, x, flip=True):
    own = embedder.reference(x)
    if not flip:
        return own
    mirror = embedder.reference(np.ascontiguousarray(x[..., ::-1]))
    return {k: (own[k] + mirror[k]) / 2 for k in own}


# --------------------------------------------------------------------------- #
# compute_embeddings
# --------------------------------------------------------------------------- #
def test_flip_average_in_one_forward_with_padding():
    x = _images(7)
    emb = ToyEmbedder()
    out = compute_embeddings(emb, x, batch_size=3, progress=False)
    expected = _expected(emb, x)
    assert list(out) == ["a", "b"]
    for k in out:
        assert out[k].dtype == np.float32 and out[k].shape == expected[k].shape
        np.testing.assert_allclose(out[k], expected[k], rtol=1e-5, atol=1e-5)
    # 3 images + their mirrors per forward; the last batch (1 image) padded to 3.
    assert emb.calls == [6, 6, 6]


def test_no_padding_for_an_uncompiled_embedder_and_no_flip():
    x = _images(7)
    emb = ToyEmbedder(compiled=False)
    out = compute_embeddings(emb, x, batch_size=3, flip_average=False, layers=["b"],
                             progress=False)
    assert emb.calls == [3, 3, 1]
    np.testing.assert_allclose(out["b"], emb.reference(x)["b"], rtol=1e-5, atol=1e-5)
    # Fewer images than a batch: a single batch of that size.
    emb = ToyEmbedder()
    compute_embeddings(emb, x[:2], batch_size=50, progress=False)
    assert emb.calls == [4]


def test_cache_reads_instead_of_recomputing(tmp_path):
    x = _images(5)
    emb = ToyEmbedder(layers=("a", "b", "c"))
    first = compute_embeddings(emb, x, layers=["a"], model_id="m1", cache_dir=tmp_path,
                               batch_size=2, progress=False)
    n_calls = len(emb.calls)
    second = compute_embeddings(emb, x, layers=["a"], model_id="m1", cache_dir=tmp_path,
                                batch_size=2, progress=False)
    assert len(emb.calls) == n_calls  # read from disk
    np.testing.assert_array_equal(first["a"], second["a"])
    entries = [p for p in tmp_path.iterdir() if p.name.startswith("emb-")]
    assert len(entries) == 1
    meta = json.loads((entries[0] / "meta.json").read_text())
    assert meta["key"]["model_id"] == "m1" and meta["key"]["flip_average"] is True
    assert list(meta["layers"]) == ["a"]
    # A new layer: computed and added to the same entry; "a" still read.
    both = compute_embeddings(emb, x, layers=["a", "c"], model_id="m1", cache_dir=tmp_path,
                              batch_size=2, progress=False)
    assert len(emb.calls) > n_calls
    assert sorted(json.loads((entries[0] / "meta.json").read_text())["layers"]) == ["a", "c"]
    np.testing.assert_allclose(both["c"], _expected(emb, x)["c"], rtol=1e-5)
    # Another checkpoint, another flip setting, other images: other entries.
    n_calls = len(emb.calls)
    compute_embeddings(emb, x, layers=["a"], model_id="m2", cache_dir=tmp_path, progress=False)
    compute_embeddings(emb, x, layers=["a"], model_id="m1", cache_dir=tmp_path,
                       flip_average=False, progress=False)
    compute_embeddings(emb, x[:4], layers=["a"], model_id="m1", cache_dir=tmp_path,
                       progress=False)
    assert len(emb.calls) == n_calls + 3
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("emb-")]) == 4


def test_cache_memory_maps_big_layers(tmp_path):
    x = _images(4)
    emb = ToyEmbedder()
    compute_embeddings(emb, x, model_id="m", cache_dir=tmp_path, progress=False)
    again = compute_embeddings(emb, x, model_id="m", cache_dir=tmp_path, progress=False,
                               mmap_threshold_mb=0)
    assert isinstance(again["a"], np.memmap) and not again["a"].flags.writeable
    small = compute_embeddings(emb, x, model_id="m", cache_dir=tmp_path, progress=False)
    assert not isinstance(small["a"], np.memmap)


def test_killed_write_leaves_no_cache_file(tmp_path, monkeypatch):
    x = _images(3)
    emb = ToyEmbedder()
    real_save = np.save

    def crash(file, array, **kwargs):
        real_save(file, array[:1], **kwargs)  # half written, then the run dies
        raise KeyboardInterrupt

    monkeypatch.setattr(femb.np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        compute_embeddings(emb, x, model_id="m", cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(femb.np, "save", real_save)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == []  # neither a .npy nor a temporary file
    calls = len(emb.calls)
    out = compute_embeddings(emb, x, model_id="m", cache_dir=tmp_path, progress=False)
    assert len(emb.calls) > calls
    np.testing.assert_allclose(out["a"], _expected(emb, x)["a"], rtol=1e-5, atol=1e-5)


def _write_faces(folder, n=3):
    rng = np.random.default_rng(5)
    rows = []
    for k in range(n):
        person = f"p{k % 2}"
        (folder / person).mkdir(parents=True, exist_ok=True)
        path = folder / person / f"{k}.png"
        Image.fromarray(rng.integers(0, 256, (130, 120, 3), dtype=np.uint8)).save(path)
        rows.append({"path": str(path), "identity": person, "image": f"{person}/{k}.png"})
    return pd.DataFrame(rows)


def test_frame_images_are_preprocessed_and_fingerprinted(tmp_path):
    frame = _write_faces(tmp_path / "faces")
    emb = ToyEmbedder(layers=("a",), shape=(3, 113, 113))
    out = compute_embeddings(emb, frame, model_id="m", cache_dir=tmp_path / "cache",
                             progress=False)
    x = np.stack([preprocess(Image.open(p)) for p in frame["path"]])
    np.testing.assert_allclose(out["a"], _expected(emb, x)["a"], rtol=1e-4, atol=1e-3)
    # Touching a file changes the fingerprint and so the cache entry.
    before = frame_fingerprint(frame)
    calls = len(emb.calls)
    os.utime(frame["path"][1], ns=(1_000_000_000, 1_000_000_000))
    assert frame_fingerprint(frame) != before
    compute_embeddings(emb, frame, model_id="m", cache_dir=tmp_path / "cache", progress=False)
    assert len(emb.calls) > calls


def test_frame_with_unreadable_image_is_refused(tmp_path):
    frame = _write_faces(tmp_path / "faces")
    (tmp_path / "faces" / "p0" / "0.png").write_bytes(b"not an image")
    emb = ToyEmbedder(layers=("a",), shape=(3, 113, 113))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="drop them"):
        compute_embeddings(emb, frame, progress=False)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        compute_embeddings(emb, frame.assign(path=str(tmp_path / "missing.png")),
                           model_id="m", cache_dir=tmp_path, progress=False)


def test_compute_embeddings_bad_input(tmp_path):
    x = _images(3)
    emb = ToyEmbedder()
    with pytest.raises(ValueError, match="not outputs of the embedder"):
        compute_embeddings(emb, x, layers=["z"], progress=False)
    with pytest.raises(ValueError, match="model_id"):
        compute_embeddings(emb, x, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        compute_embeddings(emb, x, batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        compute_embeddings(emb, x[:, 0], progress=False)
    with pytest.raises(ValueError, match="path"):
        compute_embeddings(emb, pd.DataFrame({"file": ["a"]}), progress=False)


def test_state_dict_hash_follows_weights():
    net = torch.nn.Linear(3, 2)
    h = state_dict_hash(net)
    assert h == state_dict_hash(net) and len(h) == 64
    with torch.no_grad():
        net.weight[0, 0] += 1e-3
    assert state_dict_hash(net) != h


# --------------------------------------------------------------------------- #
# Pair scores and the sweep
# --------------------------------------------------------------------------- #
def _cosine(x, i, j):
    x = np.asarray(x, dtype=np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", xn[i], xn[j])


@pytest.mark.parametrize("method", ["gram", "gather", "auto"])
def test_pair_cosine_in_small_chunks(tmp_path, method):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(9, 37)).astype(np.float32)
    i = np.array([0, 1, 2, 8, 4, 4])
    j = np.array([1, 2, 8, 0, 4, 6])
    expected = _cosine(x, i, j)
    # chunk of ~2 rows: many blocks.
    got = pair_cosine(x, i, j, chunk_bytes=2 * 37 * 8, method=method)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[4] == pytest.approx(1.0)
    # The same from a memory map on disk.
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    np.testing.assert_allclose(pair_cosine(mm, i, j, chunk_bytes=300, method=method),
                               expected, atol=1e-6)
    # A zero vector scores 0.
    x[2] = 0
    assert pair_cosine(x, i, j, chunk_bytes=1 << 20, method=method)[1] == 0.0


def test_plan_layer_groups_by_hand():
    # n = 10, batch 5 with flips -> forward 10 images: cost (10 + 10) * D * 4 bytes.
    dims = {"a": 10, "b": 20, "c": 1000, "d": 5}
    budget_mb = 2400 / (1 << 20)   # 2400 bytes: a (800) + b (1600) fit together
    groups = plan_layer_groups(dims, 10, memory_budget_mb=budget_mb, batch_size=5)
    assert groups == [(("a", "b"), False), (("c",), True), (("d",), False)]
    tighter = plan_layer_groups(dims, 10, memory_budget_mb=2399 / (1 << 20), batch_size=5)
    assert tighter == [(("a",), False), (("b",), False), (("c",), True), (("d",), False)]
    # Without flips the forward batch halves: (10 + 5) * 30 * 4 = 1800 bytes for a + b.
    assert plan_layer_groups({"a": 10, "b": 20}, 10, memory_budget_mb=1800 / (1 << 20),
                             batch_size=5, flip_average=False) == [(("a", "b"), False)]
    with pytest.raises(ValueError, match="memory_budget_mb"):
        plan_layer_groups(dims, 10, memory_budget_mb=0)


class ToyFactory:
    def __init__(self):
        self.built: list[tuple] = []

    def __call__(self, layers):
        self.built.append(tuple(layers))
        return ToyEmbedder(layers=layers)


def test_layer_sweep_matches_direct_scores(tmp_path):
    x = _images(8)
    pairs = pd.DataFrame({"i": [0, 0, 1, 2, 5, 7], "j": [1, 3, 2, 6, 6, 0],
                          "label": [1, 0, 1, 0, 1, 0]}, index=list("uvwxyz"))
    reference = ToyEmbedder(layers=("a", "b", "c"))
    desc = compute_embeddings(reference, x, progress=False)
    factory = ToyFactory()
    # A 200-byte budget: "a" (8 images x 7 values x 4 bytes = 224) goes to disk.
    budget_mb = 200 / (1 << 20)
    out = layer_sweep_scores(factory, x, pairs, layers=["c", "a", "b"], batch_size=2,
                             memory_budget_mb=budget_mb, progress=False,
                             cache_dir=tmp_path, model_id="toy")
    assert list(out.columns) == ["c", "a", "b"] and list(out.index) == list("uvwxyz")
    from faceexp.verify.protocol import cosine_scores  # an independent implementation

    for layer in ("a", "b", "c"):
        np.testing.assert_allclose(out[layer].to_numpy(),
                                   _cosine(desc[layer], pairs["i"], pairs["j"]), atol=1e-5)
        np.testing.assert_allclose(out[layer].to_numpy(), cosine_scores(desc[layer], pairs),
                                   atol=1e-5)
    # Probe, then one embedder per group. c: 8*3*4 = 96 B fits, costs (8 + 4)*3*4 = 144 B;
    # a: 8*7*4 = 224 B > 200 alone -> disk; b: (8 + 4)*4*4 = 192 B.
    assert factory.built == [("c", "a", "b"), ("c",), ("a",), ("b",)]
    assert not any((tmp_path / "tmp").glob("*"))  # temporary memory maps removed
    # Second run: all scores from the cache, no embedder built.
    factory.built.clear()
    again = layer_sweep_scores(factory, x, pairs, layers=["a", "b"], batch_size=2,
                               memory_budget_mb=budget_mb, progress=False,
                               cache_dir=tmp_path, model_id="toy")
    assert factory.built == []
    pd.testing.assert_frame_equal(again, out[["a", "b"]])
    # Other pairs: recomputed.
    layer_sweep_scores(factory, x, pairs.iloc[:3], layers=["a"], progress=False,
                       cache_dir=tmp_path, model_id="toy")
    assert factory.built != []


def test_layer_sweep_groups_share_passes():
    x = _images(6)
    pairs = np.array([[0, 1], [2, 3], [4, 5], [0, 5]])
    factory = ToyFactory()
    out = layer_sweep_scores(factory, x, pairs, layers=["a", "b", "c"], progress=False)
    assert factory.built == [("a", "b", "c"), ("a", "b", "c")]  # probe, then one pass
    assert out.shape == (4, 3)
    with pytest.raises(ValueError, match="model_id"):
        layer_sweep_scores(factory, x, pairs, layers=["a"], cache_dir="unused", progress=False)
    with pytest.raises(ValueError, match=r"in \[0, 6\)"):
        layer_sweep_scores(factory, x, np.array([[0, 6]]), layers=["a"], progress=False)
    with pytest.raises(ValueError, match="distinct"):
        layer_sweep_scores(factory, x, pairs, layers=["a", "a"], progress=False)


# --------------------------------------------------------------------------- #
# With the real MobileNetV2 (ImageNet weights, offline)
# --------------------------------------------------------------------------- #
@pytest.mark.slow
def test_mobilenetv2_flip_average_and_sweep(tmp_path):
    from faceexp.data.folders import load_orl
    from faceexp.models import Embedder, build_model

    model = build_model("mobilenetv2", 10, weights="imagenet")
    frame = load_orl().iloc[[0, 1, 10]].reset_index(drop=True)
    embedder = Embedder(model, ("gap",))
    out = compute_embeddings(embedder, frame, batch_size=2, progress=False,
                             cache_dir=tmp_path)  # model_id: hash of the weights
    x = torch.from_numpy(np.stack([preprocess(Image.open(p)) for p in frame["path"]]))
    both = embedder(torch.cat([x, x.flip(-1)]))["gap"].numpy()
    np.testing.assert_allclose(out["gap"], (both[:3] + both[3:]) / 2, rtol=1e-4, atol=1e-4)
    assert out["gap"].shape == (3, 1280)

    pairs = pd.DataFrame({"i": [0, 0, 1], "j": [1, 2, 2]})
    layers = ["features.3.conv.0.2", "features.1.conv.0.2", "features.2.conv.0.0"]
    # 12 MB with 3 images and forward batches of 4: features.1.conv.0.2 (32 x 113 x 113
    # values) costs (3 + 4) x 408608 x 4 = 11.4 MB; features.2.conv.0.0's descriptors
    # (96 x 113 x 113 x 3 images x 4 = 14.7 MB) go to disk; features.3.conv.0.2 alone.
    scores = layer_sweep_scores(model, frame, pairs, layers=layers, memory_budget_mb=12,
                                batch_size=2, progress=False)
    assert list(scores.columns) == layers
    full = compute_embeddings(Embedder(model, tuple(layers)), frame, batch_size=4,
                              progress=False)
    for layer in layers:
        np.testing.assert_allclose(scores[layer], _cosine(full[layer], pairs["i"], pairs["j"]),
                                   atol=1e-4)
