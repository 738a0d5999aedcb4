"""The softmax identification head on constructed embeddings (claim (a))."""
import numpy as np
import pytest
import torch

from faceexp.explain.targets import ClassProbability
from faceexp.verify.identification_head import (HeadEmbed, fit_identification_head,
                                                 head_accuracy)


def clusters(n_per=12, classes=4, dim=16, spread=0.05, seed=0):
    """Well-separated Gaussian clusters around orthogonal unit directions."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:classes] * 3.0
    x = np.concatenate([c + spread * rng.standard_normal((n_per, dim)) for c in centres])
    y = np.repeat([f"s{k}" for k in range(classes)], n_per)
    return x, y


def test_head_separates_clusters_and_probabilities_sum_to_one():
    x, y = clusters()
    held_x, held_y = clusters(n_per=5, seed=1)
    head = fit_identification_head(x, y)
    acc = head_accuracy(head, held_x, held_y, n_boot=200)
    assert acc["accuracy"] == 1.0 and acc["n"] == 20 and acc["classes"] == 4
    assert acc["ci_low"] == 1.0 and acc["ci_high"] == 1.0     # every resample is all hits
    # exact interval of 20 hits in 20: (0.025 ** (1 / 20), 1), worked out by hand
    assert acc["exact_low"] == pytest.approx(0.025 ** (1 / 20)) and acc["exact_high"] == 1.0
    p = head.probabilities(held_x)
    assert p.shape == (20, 4)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    # each image's largest probability is its own identity's column
    assert (np.argmax(p, axis=1) == head.class_index(held_y)).all()


def test_head_accuracy_counts_misses():
    x, y = clusters()
    head = fit_identification_head(x, y)
    held_x, held_y = clusters(n_per=5, seed=1)
    wrong = held_y.copy()
    wrong[:5] = "s1"                                          # 5 of 20 labelled as another person
    acc = head_accuracy(head, held_x, wrong, n_boot=200)
    assert acc["accuracy"] == pytest.approx(15 / 20)
    assert acc["ci_low"] < 0.75 < acc["ci_high"]


def test_explained_probability_is_sklearns_predict_proba():
    x, y = clusters()
    head = fit_identification_head(x, y)
    embed = HeadEmbed(lambda batch: {"embedding": batch.reshape(len(batch), -1)}, head)
    batch = torch.from_numpy(x[:6].reshape(6, 1, 4, 4))
    out = embed(batch)
    unit = x[:6] / np.linalg.norm(x[:6], axis=1, keepdims=True)
    expected = head.model.predict_proba(unit)                    # sklearn itself
    np.testing.assert_allclose(out["softmax"].numpy(), expected, rtol=0, atol=1e-12)
    k = int(head.class_index(["s2"])[0])
    target = ClassProbability(class_index=k)
    np.testing.assert_allclose(target(out["softmax"], out["softmax"][0]).numpy(),
                               expected[:, k], atol=1e-12)
    # the embedding passes through unchanged
    np.testing.assert_array_equal(out["embedding"].numpy(), x[:6])


def test_head_rejects_unknown_identities_and_one_class():
    x, y = clusters()
    head = fit_identification_head(x, y)
    with pytest.raises(ValueError, match="not among the head's training identities"):
        head.class_index(["nobody"])
    with pytest.raises(ValueError, match="at least 2 identities"):
        fit_identification_head(x[:5], ["a"] * 5)


def test_head_embed_gives_only_the_asked_layers():
    x, y = clusters()
    head = fit_identification_head(x, y)
    embed = HeadEmbed(lambda batch: {"embedding": batch.reshape(len(batch), -1)}, head,
                      layers=["softmax"])
    out = embed(torch.from_numpy(x[:3].reshape(3, 1, 4, 4)))
    assert list(out) == ["softmax"] and out["softmax"].shape == (3, 4)
    # a head's fingerprint changes with its weights
    other = fit_identification_head(x, y, C=0.1)
    assert head.fingerprint != other.fingerprint and len(head.fingerprint) == 16
