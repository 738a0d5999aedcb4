"""faceexp.core.batching: the one path every embedding takes (batches, padding, mirrors)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceexp.core.batching import BatchedEmbed, layer_outputs, resolve_batch_size


class Recorder:
    """Embeds an image as [mean of its left half, mean of its right half] per channel."""

    def __init__(self, compiled=True):
        self.sizes = []
        self.compiled = compiled

    def __call__(self, batch):
        self.sizes.append(int(batch.shape[0]))
        half = batch.shape[-1] // 2
        left = batch[..., :half].mean(dim=(2, 3))
        right = batch[..., half:].mean(dim=(2, 3))
        return {"lr": torch.cat([left, right], dim=1), "sum": batch.sum(dim=(1, 2, 3))[:, None]}


def _images(n, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((n, 3, 4, 6), dtype=np.float32))


def test_batches_pad_the_last_one_and_drop_padding_rows():
    images = _images(7)
    embed = Recorder()
    out = BatchedEmbed(embed, batch_size=3)(images)
    assert embed.sizes == [3, 3, 3]                       # 3 + 3 + (1 padded to 3)
    expected = Recorder()(images)
    for name in ("lr", "sum"):
        torch.testing.assert_close(out[name], expected[name])
    uncompiled = Recorder(compiled=False)
    BatchedEmbed(uncompiled, batch_size=3)(images)
    assert uncompiled.sizes == [3, 3, 1]                  # nothing to gain from padding


def test_flip_average_is_the_mean_with_the_mirror_in_one_pass():
    images = _images(5, seed=1)
    embed = Recorder()
    out = BatchedEmbed(embed, batch_size=5, flip_average=True, layers=["lr"])(images)
    assert embed.sizes == [10] and list(out) == ["lr"]
    # By hand: mirroring swaps the left and right halves, so the average is symmetric.
    direct = Recorder()(images)["lr"]
    swapped = torch.cat([direct[:, 3:], direct[:, :3]], dim=1)
    torch.testing.assert_close(out["lr"], (direct + swapped) / 2)


def test_stream_keeps_order_across_pieces():
    images = _images(8, seed=2)
    runner = BatchedEmbed(Recorder(), batch_size=3, layers=["sum"])
    stream = runner.stream()
    taken = []
    for piece in (images[:2], images[2:7], images[7:]):
        stream.add(piece)
        while stream.ready >= 2:
            taken.append(stream.pop(2)["sum"])
    stream.finish()
    taken.append(stream.pop(stream.ready)["sum"])
    torch.testing.assert_close(torch.cat(taken), images.sum(dim=(1, 2, 3))[:, None])
    with pytest.raises(ValueError, match="at most the 0 ready"):
        stream.pop(1)


def test_layer_outputs_names_and_errors():
    one = layer_outputs(np.ones((2, 3, 1)), 2)
    assert list(one) == ["embedding"] and one["embedding"].shape == (2, 3)
    assert list(layer_outputs(torch.ones(2, 3), 2, ["gap"])) == ["gap"]   # the one layer asked
    with pytest.raises(ValueError, match="returned no layer 'b'"):
        layer_outputs({"a": torch.ones(2, 1)}, 2, ["b"])
    with pytest.raises(ValueError, match=r"must have shape \(2, D\)"):
        layer_outputs({"a": torch.ones(3, 1)}, 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        layer_outputs({"a": torch.tensor([[np.nan]])}, 1, finite=True)
    with pytest.raises(ValueError, match="must return an"):
        layer_outputs([1, 2], 2)


def test_batch_size_from_the_embed_or_default():
    class Preferred:
        preferred_batch_size = 8

        def __call__(self, batch):
            return batch.flatten(1)

    assert resolve_batch_size(Preferred()) == 8
    assert resolve_batch_size(lambda b: b) == 50
    assert resolve_batch_size(lambda b: b, 4) == 4
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        resolve_batch_size(lambda b: b, 0)
    with pytest.raises(ValueError, match="1..3 images"):
        BatchedEmbed(lambda b: b.flatten(1), batch_size=3).run(_images(4))
