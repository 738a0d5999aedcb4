"""FaceNet-CASIA on onnxruntime and OpenVINO gives PyTorch's layer outputs and heatmaps, from a
cached export."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from faceexp import Explainer
from faceexp import data as data
from faceexp.core.batching import BatchedEmbed
from faceexp.evaluate.heatmaps import heatmap_psnr
from faceexp.models import onnx_backend
from faceexp.recognisers.facenet import LAYERS, FaceNetCasia

#: Parity tolerance of the onnxruntime path: max abs difference <= 1e-4 x the layer's
#: max abs value (measured here: <= 5e-7 x on every layer).
RELATIVE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def facenet_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("faceexp-cache")


@pytest.fixture(scope="module")
def rec(facenet_cache):
    return FaceNetCasia(cache_dir=facenet_cache, backend="onnxruntime")


@pytest.fixture(scope="module")
def faces(rec):
    """ORL s1/1, s1/2 and s2/1 aligned by ``rec.align``: (3, 3, 160, 160) float32 in [0, 1]."""
    root = data.orl_root()
    paths = [root / "s1" / "1.pgm", root / "s1" / "2.pgm", root / "s2" / "1.pgm"]
    return torch.from_numpy(np.stack(rec.align_many(paths)).transpose(0, 3, 1, 2).copy())


def _hooked_layers(model, batch):
    """Every catalogue layer from forward hooks on the module's own ``forward`` (an independent
    route), averaged over H and W where spatial."""
    modules = dict(model.named_modules())
    out, handles = {}, []
    for name in LAYERS:
        def hook(_module, _inputs, output, name=name):
            out[name] = output.mean(dim=(2, 3)) if output.ndim == 4 else output
        handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            final = model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return out, final


@pytest.mark.slow
def test_every_catalogue_layer_matches_torch_on_orl_faces(rec, faces):
    reference, final = _hooked_layers(rec.model, faces)
    fast = rec.embedder(LAYERS)
    assert fast.backend == "onnxruntime" and fast.layers == list(LAYERS)
    got = fast(faces)
    eager = rec.embedder(LAYERS, backend="torch")(faces)
    vino = rec.embedder(LAYERS, backend="openvino")
    assert vino.backend == "openvino"
    vino = vino(faces)
    assert list(got) == list(LAYERS) == list(vino)
    for layer in LAYERS:
        scale = float(reference[layer].abs().max())
        assert got[layer].dtype == torch.float32 and got[layer].shape == reference[layer].shape
        # The torch path runs the same modules as the model's forward: the same numbers.
        torch.testing.assert_close(eager[layer], reference[layer], rtol=0, atol=1e-6 * scale)
        for engine, values in (("onnxruntime", got), ("openvino", vino)):
            error = float((values[layer] - reference[layer]).abs().max())
            assert error <= RELATIVE_TOLERANCE * scale, (engine, layer, error, scale)
    # last_bn is the embedding before L2 normalisation: rec(batch) and the model's output.
    unit = torch.nn.functional.normalize(got["last_bn"], dim=1)
    torch.testing.assert_close(rec(faces), final, rtol=0, atol=1e-6)
    torch.testing.assert_close(unit, final, rtol=0, atol=1e-6)
    # intermediate() goes through the same path: pooled by channel.
    torch.testing.assert_close(rec.intermediate(faces, ["mixed_6a", "last_bn"])["mixed_6a"],
                               got["mixed_6a"], rtol=0, atol=0)
    # Genuine pair (s1, s1) scores above the impostor pairs with either backend's last_bn.
    cos = unit @ unit.T
    assert cos[0, 1] > max(cos[0, 2], cos[1, 2])


@pytest.mark.slow
def test_heatmaps_from_both_backends_agree(rec, faces):
    face = faces[0].permute(1, 2, 0).numpy()
    maps = [Explainer(rec.embedder(backend=backend), n_samples=200, n_segments=30)
            .explain(face, seed=0).heatmaps[0] for backend in ("torch", "onnxruntime", "openvino")]
    # Same samples, same fit: measured 140 dB; two seeds on one backend: 18.8 dB.
    assert heatmap_psnr(maps[0], maps[1]) >= 60
    assert heatmap_psnr(maps[0], maps[2]) >= 60


@pytest.mark.slow
def test_export_is_cached_and_reused(facenet_cache, faces, tmp_path, monkeypatch):
    for converted in facenet_cache.glob("facenet-casia-*.pt"):
        shutil.copy(converted, tmp_path)          # skip the GraphDef conversion
    first = FaceNetCasia(cache_dir=tmp_path, backend="onnxruntime")
    expected = first(faces)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1

    def refuse(*_args, **_kwargs):
        raise AssertionError("exported again although the graph is cached")

    monkeypatch.setattr(onnx_backend.OnnxRuntimeForward, "_export", refuse)
    again = FaceNetCasia(cache_dir=tmp_path, backend="onnxruntime")
    torch.testing.assert_close(again(faces[:1]), expected[:1], rtol=0, atol=1e-6)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    # Another layer set is another graph.
    monkeypatch.undo()
    again.embedder(["mixed_6a"])(faces[:1])
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2


@pytest.mark.slow
def test_embedder_is_an_embed_callable(rec, faces):
    embed = rec.embedder(["mixed_7a", "last_bn"])
    assert embed.compiled is False and embed.preferred_batch_size >= 1
    assert embed.layers == ["mixed_7a", "last_bn"] and embed.model is rec.model
    out = BatchedEmbed(embed, batch_size=2)(faces)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"mixed_7a": (3, 1792), "last_bn": (3, 512)}
    torch.testing.assert_close(out["last_bn"], embed(faces)["last_bn"], rtol=0, atol=1e-6)
    explanation = Explainer(embed, layers=["mixed_7a"], n_samples=20, n_segments=10).explain(
        faces[0].permute(1, 2, 0).numpy(), seed=0)
    assert explanation.heatmaps.shape == (1, 160, 160)
    flat = rec.embedder(["conv2d_4b"], pooling="flatten")(faces[:1])["conv2d_4b"]
    assert flat.shape == (1, 256 * 17 * 17)        # 160 -> 17 x 17 after the stem
    pooled = rec.embedder(["conv2d_4b"])(faces[:1])["conv2d_4b"]
    torch.testing.assert_close(flat.view(1, 256, -1).mean(2), pooled, rtol=0,
                               atol=1e-6 * float(pooled.abs().max()))


@pytest.mark.slow
def test_threads_follow_torch_or_the_option(facenet_cache):
    assert FaceNetCasia(cache_dir=facenet_cache, backend="onnxruntime").embedder()._run.threads \
        == torch.get_num_threads()
    one = FaceNetCasia(cache_dir=facenet_cache, backend="onnxruntime", threads=1)
    assert one.embedder()._run.threads == 1
    assert FaceNetCasia(cache_dir=facenet_cache, backend="auto").backend == \
        onnx_backend.resolve_backend("auto", "cpu", "facenet-casia")
    vino = FaceNetCasia(cache_dir=facenet_cache, backend="openvino", threads=1).embedder()
    assert vino.preferred_batch_size >= 1 and vino._run.threads == 1


def test_bad_options_say_what_to_pass():
    # Checked before the weights are read.
    with pytest.raises(ValueError, match="backend must be one of"):
        FaceNetCasia(backend="tensorrt")
    for engine in ("onnxruntime", "openvino"):
        with pytest.raises(ValueError, match=f"backend='{engine}' runs on the CPU"):
            FaceNetCasia(device="meta", backend=engine)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        FaceNetCasia(threads=0)


@pytest.mark.slow
def test_embedder_refuses_unknown_layers_and_poolings(rec):
    with pytest.raises(ValueError, match="unknown FaceNet layers"):
        rec.embedder(["fc9"])
    with pytest.raises(ValueError, match="pooling must be one of"):
        rec.embedder(pooling="max")
    with pytest.raises(ValueError, match="duplicates"):
        rec.embedder(["last_bn", "last_bn"])
    with pytest.raises(ValueError, match=r"\(N, 3, 160, 160\)"):
        rec.embedder()(torch.zeros(1, 3, 112, 112))
