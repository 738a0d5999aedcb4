"""The exported engines of the Embedder (onnxruntime, OpenVINO) give PyTorch's layer outputs
and heatmaps, from one exported file."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from faceexp import explain, models
from faceexp.data.folders import load_orl
from faceexp.data.preprocessing import preprocessed_images
from faceexp.evaluate.heatmaps import psnr_pairs
from faceexp.models import onnx_backend

ENGINES = ("onnxruntime", "openvino")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEXP_CACHE", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("arch", ["mobilenetv2", "resnet50"])
def test_every_layer_matches_torch_on_orl_faces(cache, arch):
    model = models.build_model(arch, 7, weights=None, seed=0)
    layers = ["gap", "block3", "block16", "softmax"]
    faces = torch.from_numpy(preprocessed_images(load_orl().iloc[[0, 11, 22]])).permute(0, 3, 1, 2)
    reference = models.Embedder(model, layers)(faces)
    for engine in ENGINES:
        fast = models.Embedder(model, layers, backend=engine)
        assert fast.backend == engine and f"backend='{engine}'" in repr(fast)
        got = fast(faces)
        for layer in layers:
            scale = float(reference[layer].abs().max())
            error = float((got[layer] - reference[layer]).abs().max())
            assert error <= 1e-4 * max(scale, 1.0), (engine, layer, error, scale)
        # Exported once per input size (both engines read the same file), then read from
        # the cache; any batch size works.
        assert len(list((cache / "onnx").glob("*.onnx"))) == 1
        again = models.Embedder(model, layers, backend=engine)(faces[:1])
        torch.testing.assert_close(again["gap"], got["gap"][:1], rtol=1e-5, atol=1e-5)
        assert len(list((cache / "onnx").glob("*.onnx"))) == 1


@pytest.mark.parametrize("engine", ENGINES)
def test_heatmaps_from_torch_and_an_exported_engine_agree(cache, engine):
    model = models.build_model("mobilenetv2", 1000, weights="imagenet", seed=0)
    face = preprocessed_images(load_orl().iloc[[3]])[0]
    maps = [explain(face, models.Embedder(model, ["gap"], backend=backend), n_samples=200,
                    seed=0).heatmaps[0] for backend in ("torch", engine)]
    # Same samples, same fit: far above the seed-to-seed noise floor (~10-20 dB).
    assert psnr_pairs(maps[0][None], maps[1][None])[0] > 60


def test_backend_choices(cache, monkeypatch):
    model = models.build_model("mobilenetv2", 3, weights=None, seed=0)
    for arch in ("mobilenetv2", "resnet50"):
        expected = onnx_backend.AUTO_CPU.get(arch, onnx_backend.AUTO_CPU["default"])[0]
        assert onnx_backend.resolve_backend("auto", "cpu", arch) == expected
    assert models.Embedder(model, ["gap"], backend="auto").backend == \
        onnx_backend.resolve_backend("auto", "cpu", "mobilenetv2")
    with pytest.raises(ValueError, match="backend must be one of"):
        models.Embedder(model, ["gap"], backend="tensorrt")
    # An engine that is not installed: "auto" takes the next one; naming it says what to install.
    monkeypatch.setattr(onnx_backend, "installed", lambda engine: engine != "openvino")
    for arch in ("mobilenetv2", "resnet50"):
        assert onnx_backend.resolve_backend("auto", "cpu", arch) == "onnxruntime"
    with pytest.raises(ValueError, match="pip install openvino"):
        models.Embedder(model, ["gap"], backend="openvino")
    monkeypatch.setattr(onnx_backend, "installed", lambda engine: engine == "torch")
    assert onnx_backend.resolve_backend("auto", "cpu", "resnet50") == "torch"
    monkeypatch.undo()
    with pytest.raises(ValueError, match="backend='openvino' runs on the CPU"):
        models.Embedder(model, ["gap"], backend="openvino", device="meta")
    if torch.cuda.is_available():
        assert models.Embedder(model, ["gap"], backend="auto", device="cuda").backend == "torch"
    else:
        from faceexp.models.onnx_backend import resolve_backend

        meta = resolve_backend("auto", "meta")
        assert meta == "torch"


@pytest.mark.parametrize("engine", ENGINES)
def test_forward_takes_a_cache_folder_a_weights_hash_and_threads(tmp_path, cache, engine):
    from faceexp.models.onnx_backend import ExportedForward

    summed = torch.nn.Conv2d(3, 1, 1, bias=False)       # y = r + g + b
    torch.nn.init.ones_(summed.weight)
    run = ExportedForward(summed.eval(), {"test": "sum"}, 1, 1, cache=tmp_path / "mine",
                          weights="abc", engine=engine)
    x = torch.rand(3, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    (y,) = run(x)
    torch.testing.assert_close(y, x.sum(dim=1, keepdim=True), rtol=1e-6, atol=1e-6)
    assert run.threads == 1 and run._key["weights"] == "abc"
    assert len(list((tmp_path / "mine" / "onnx").glob("*.onnx"))) == 1
    assert not (cache / "onnx").exists()          # not the user cache
    if engine == "openvino":
        # What the plugin was told, as it reports it: one thread, f32, no pinning.
        compiled = run._session((4, 5)).compiled
        assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == 1
        assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
        assert compiled.get_property("ENABLE_CPU_PINNING") is False
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        ExportedForward(summed, {}, 1, 0, engine=engine)
    with pytest.raises(ValueError, match="engine must be one of"):
        ExportedForward(summed, {}, 1, engine="torch")


OPENVINO_LIFETIMES = """
import ctypes, gc, signal, subprocess, sys
import torch
from faceexp.models.onnx_backend import ExportedForward

class Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

def make():
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()).eval()
    forward = ExportedForward(module, {}, 1, engine="openvino", cache=sys.argv[1])
    forward(torch.rand(2, 3, 8, 8))
    return forward

first = make(); second = make(); del first; gc.collect()
third = make(); del second; gc.collect(); del third; gc.collect()
stack = Stack()
ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack))
spans = [line.split()[0].split("-") for line in open("/proc/self/maps")]
print("mapped" if any(int(a, 16) <= (stack.sp or 0) < int(b, 16) for a, b in spans) else "unmapped")
signal.signal(signal.SIGCHLD, lambda *args: None)   # as torch's DataLoader does
subprocess.run([sys.executable, "-c", "pass"], check=True)
print("survived")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_openvino_graphs_dropped_in_any_order_leave_signals_deliverable(tmp_path):
    """OpenVINO's CPU plugin points the thread's signal stack at memory of its own and, when
    a Core is destroyed, back at whatever it saw before; with a Core per graph, graphs
    dropped out of order left it pointing at freed memory, and the next Python signal
    handler (torch's SIGCHLD one, when a child exits) killed the process with a
    segmentation fault. One Core per process keeps the stack mapped."""
    script = tmp_path / "lifetimes.py"
    script.write_text(OPENVINO_LIFETIMES)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["mapped", "survived"]
