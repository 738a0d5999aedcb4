"""Tests of faceexp.verify.protocol: verification pairs, pose breakdown, scores, Table I."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from faceexp.verify.fusion import fuse_scores
from faceexp.verify.metrics import equal_error_rate
from faceexp.verify.protocol import (
    POSE_PAIRS,
    TABLE_COLUMNS,
    cosine_scores,
    eer_table,
    format_eer_table,
    table_one,
    verification_pairs,
    verification_pairs_by_pose,
)


def users_frame(counts: dict) -> pd.DataFrame:
    """One row per image: identity, image name; users in the given order."""
    rows = [(user, f"{user}/{k}") for user, n in counts.items() for k in range(n)]
    return pd.DataFrame(rows, columns=["identity", "image"])


def pair_set(pairs, label):
    part = pairs[pairs["label"] == label]
    return list(zip(part["i"], part["j"]))


def image_names(frame, pairs, label):
    part = pairs[pairs["label"] == label]
    return sorted(zip(frame["image"].to_numpy()[part["i"]], frame["image"].to_numpy()[part["j"]]))


# --------------------------------------------------------------------------
# overall protocol


def test_five_users_four_images_counts_by_hand():
    frame = users_frame({f"u{k}": 4 for k in range(5)})
    pairs = verification_pairs(frame)
    assert list(pairs.columns) == ["i", "j", "label", "identity_i", "identity_j"]
    # genuine: C(4, 2) = 6 per user; impostor: fewer than 101 users -> all 4 others
    assert (pairs["label"] == 1).sum() == 5 * 6
    assert (pairs["label"] == 0).sum() == 5 * 4
    assert pairs.attrs["n_impostor_users"] == 100 and pairs.attrs["all_impostors"] is False
    assert pairs.attrs["n_genuine"] == 30 and pairs.attrs["n_impostor"] == 20


def test_genuine_pairs_have_no_symmetric_duplicates():
    frame = users_frame({"a": 5, "b": 3, "c": 2}).sample(frac=1.0, random_state=0).reset_index(drop=True)
    pairs = verification_pairs(frame)
    genuine = pairs[pairs["label"] == 1]
    assert (genuine["i"] < genuine["j"]).all()
    assert (genuine["identity_i"] == genuine["identity_j"]).all()
    unordered = {frozenset(p) for p in pair_set(pairs, 1)}
    assert len(unordered) == len(genuine) == 10 + 3 + 1


def test_impostor_wrap_around_near_the_end():
    frame = users_frame({f"u{k}": 3 for k in range(5)})
    pairs = verification_pairs(frame, n_impostor_users=2)
    # first image of each user vs second image of the next two users, wrapping
    expected = sorted(
        (f"u{k}/0", f"u{(k + step) % 5}/1") for k in range(5) for step in (1, 2)
    )
    assert image_names(frame, pairs, 0) == expected
    impostor = pairs[pairs["label"] == 0]
    assert (impostor["identity_i"] != impostor["identity_j"]).all()


def test_impostor_order_is_sorted_identity_not_frame_order():
    frame = users_frame({"c": 2, "a": 2, "b": 2})
    pairs = verification_pairs(frame, n_impostor_users=1)
    assert image_names(frame, pairs, 0) == sorted([("a/0", "b/1"), ("b/0", "c/1"), ("c/0", "a/1")])


def test_three_users_use_all_others():
    frame = users_frame({"a": 2, "b": 3, "c": 2})
    pairs = verification_pairs(frame)
    assert (pairs["label"] == 1).sum() == 1 + 3 + 1
    assert image_names(frame, pairs, 0) == sorted(
        [("a/0", "b/1"), ("a/0", "c/1"), ("b/0", "c/1"), ("b/0", "a/1"), ("c/0", "a/1"), ("c/0", "b/1")]
    )


def test_first_and_second_image_follow_frame_order_within_a_user():
    # Interleaved rows: a's images are at positions 1 and 3 (first a/x, then a/y).
    frame = pd.DataFrame({"identity": ["b", "a", "b", "a"], "image": ["b/p", "a/x", "b/q", "a/y"]})
    pairs = verification_pairs(frame)
    assert image_names(frame, pairs, 0) == sorted([("a/x", "b/q"), ("b/p", "a/y")])
    assert pair_set(pairs, 1) == [(1, 3), (0, 2)]  # users in sorted order: a, then b


def test_user_with_a_single_image_is_skipped_as_impostor_target():
    frame = users_frame({"a": 3, "b": 1, "c": 2, "d": 3})
    pairs = verification_pairs(frame)
    assert (pairs["label"] == 1).sum() == 3 + 0 + 1 + 3
    # targets need a second image: a, c, d; b is a source only
    assert image_names(frame, pairs, 0) == sorted(
        [("a/0", "c/1"), ("a/0", "d/1"),
         ("b/0", "c/1"), ("b/0", "d/1"), ("b/0", "a/1"),
         ("c/0", "d/1"), ("c/0", "a/1"),
         ("d/0", "a/1"), ("d/0", "c/1")]
    )
    assert pairs.attrs["n_skipped_targets"] == 1
    # with one impostor user each, a skips b and takes c
    one = verification_pairs(frame, n_impostor_users=1)
    assert image_names(frame, one, 0) == sorted([("a/0", "c/1"), ("b/0", "c/1"), ("c/0", "d/1"), ("d/0", "a/1")])


def test_all_impostors_counts_every_cross_user_pair_once():
    counts = {"a": 3, "b": 1, "c": 2, "d": 4}
    frame = users_frame(counts)
    pairs = verification_pairs(frame, all_impostors=True)
    expected = sum(counts[u] * counts[v] for u, v in combinations(counts, 2))
    assert (pairs["label"] == 0).sum() == expected == 3 + 6 + 12 + 2 + 4 + 8
    unordered = {frozenset(p) for p in pair_set(pairs, 0)}
    assert len(unordered) == expected
    assert pairs.attrs["all_impostors"] is True
    assert (pairs["label"] == 1).sum() == 3 + 0 + 1 + 6


# --------------------------------------------------------------------------
# poses


def pose_frame():
    """Two users; within each, frame order: F F 3/4 P P P (u1), F 3/4 3/4 P (u2)."""
    rows = []
    for user, poses in (("u1", "F F 3/4 P P P"), ("u2", "F 3/4 3/4 P"), ("u3", "F F 3/4 3/4 P P")):
        for k, pose in enumerate(poses.split()):
            rows.append((user, pose, f"{user}/{pose}{k}"))
    frame = pd.DataFrame(rows, columns=["identity", "pose", "image"])
    return frame.sample(frac=1.0, random_state=1).sort_values("image", kind="stable").reset_index(drop=True)


def test_same_pose_pairs_apply_the_protocol_within_one_pose():
    frame = pose_frame()
    pairs = verification_pairs(frame, pose_pair="P-P")
    assert set(pairs["pose_pair"]) == {"P-P"}
    # P images: u1 three (P3 P4 P5), u2 one (P3), u3 two (P4 P5)
    assert image_names(frame, pairs, 1) == sorted(
        [("u1/P3", "u1/P4"), ("u1/P3", "u1/P5"), ("u1/P4", "u1/P5"), ("u3/P4", "u3/P5")]
    )
    # first P of each user vs second P of the others; u2 has no second P
    assert image_names(frame, pairs, 0) == sorted(
        [("u1/P3", "u3/P5"), ("u2/P3", "u3/P5"), ("u2/P3", "u1/P4"), ("u3/P4", "u1/P4")]
    )
    assert pairs.attrs["n_skipped_targets"] == 1


def test_cross_pose_pairs_use_first_x_and_second_y_image():
    frame = pose_frame()
    pairs = verification_pairs(frame, pose_pair="F-3/4")
    # genuine: every F image vs every 3/4 image of the same user
    assert image_names(frame, pairs, 1) == sorted(
        [("u1/F0", "u1/3/42"), ("u1/F1", "u1/3/42"),
         ("u2/F0", "u2/3/41"), ("u2/F0", "u2/3/42"),
         ("u3/F0", "u3/3/42"), ("u3/F0", "u3/3/43"), ("u3/F1", "u3/3/42"), ("u3/F1", "u3/3/43")]
    )
    # impostor: first F of a user vs second 3/4 of each other user (u1 has one 3/4: skipped)
    assert image_names(frame, pairs, 0) == sorted(
        [("u1/F0", "u2/3/42"), ("u1/F0", "u3/3/43"), ("u2/F0", "u3/3/43"), ("u3/F0", "u2/3/42")]
    )


def test_pairs_by_pose_concatenate_all_columns_with_counts():
    frame = pose_frame()
    pairs = verification_pairs_by_pose(frame)
    assert list(pd.unique(pairs["pose_pair"])) == list(TABLE_COLUMNS)
    counts = pairs.attrs["counts"]
    for column in TABLE_COLUMNS:
        alone = verification_pairs(frame, pose_pair=column)
        part = pairs[pairs["pose_pair"] == column]
        np.testing.assert_array_equal(part[["i", "j", "label"]].to_numpy(), alone[["i", "j", "label"]].to_numpy())
        assert counts[column] == {"genuine": int((alone["label"] == 1).sum()), "impostor": int((alone["label"] == 0).sum())}
    assert counts["overall"]["genuine"] == 15 + 6 + 15
    assert counts["F-P"]["genuine"] == 2 * 3 + 1 * 1 + 2 * 2


def test_pose_codes_are_accepted():
    frame = pose_frame()
    short = frame.assign(pose=frame["pose"].map({"F": "frontal", "3/4": "three-quarter", "P": "profile"}))
    pd.testing.assert_frame_equal(verification_pairs_by_pose(short), verification_pairs_by_pose(frame))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pose_pair": "F-X"}, "pose_pair must be None"),
        ({"n_impostor_users": 0}, "n_impostor_users must be an int >= 1"),
        ({"n_impostor_users": 2.5}, "n_impostor_users must be an int >= 1"),
        ({"all_impostors": "yes"}, "all_impostors must be True or False"),
    ],
)
def test_verification_pairs_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        verification_pairs(pose_frame(), **kwargs)


def test_verification_pairs_rejects_bad_frames():
    with pytest.raises(ValueError, match="'identity' column"):
        verification_pairs(pd.DataFrame({"name": ["a"]}))
    with pytest.raises(ValueError, match="needs a 'pose' column"):
        verification_pairs(users_frame({"a": 2}), pose_pair="F-F")
    with pytest.raises(ValueError, match="accepted values are"):
        verification_pairs(pd.DataFrame({"identity": ["a", "a"], "pose": ["frontal", "left"]}))
    with pytest.raises(ValueError, match="needs a 'pose' column"):
        verification_pairs_by_pose(users_frame({"a": 2}))
    with pytest.raises(ValueError, match="a pandas DataFrame"):
        verification_pairs([("a", 1)])


# --------------------------------------------------------------------------
# scores


def test_cosine_scores_by_hand_numpy_torch_dict_and_chunks():
    embeddings = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]], dtype=np.float32)
    # includes a mirrored (2, 0) and a repeated (0, 3) pair
    pairs = pd.DataFrame({"i": [0, 0, 1, 0, 2, 0], "j": [1, 2, 2, 3, 0, 3]})
    expected = [0.0, 1 / np.sqrt(2), 1 / np.sqrt(2), -1.0, 1 / np.sqrt(2), -1.0]
    np.testing.assert_allclose(cosine_scores(embeddings, pairs), expected, atol=1e-12)
    np.testing.assert_allclose(cosine_scores(embeddings, pairs, chunk_size=1), expected, atol=1e-12)
    np.testing.assert_allclose(cosine_scores(embeddings, pairs[["i", "j"]].to_numpy()), expected, atol=1e-12)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(cosine_scores(torch.from_numpy(embeddings), pairs), expected, atol=1e-7)
    layers = cosine_scores({"gap": embeddings, "mid": np.ones((4, 3))}, pairs)
    np.testing.assert_allclose(layers["gap"], expected, atol=1e-12)
    np.testing.assert_allclose(layers["mid"], np.ones(6))


def test_cosine_scores_match_numpy_on_random_embeddings():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 64))
    frame = users_frame({f"u{k}": 3 for k in range(10)})
    pairs = verification_pairs(frame)
    a, b = embeddings[pairs["i"]], embeddings[pairs["j"]]
    by_hand = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(cosine_scores(embeddings, pairs, chunk_size=7), by_hand, atol=1e-12)


def test_cosine_scores_rejects_bad_input():
    pairs = pd.DataFrame({"i": [0], "j": [1]})
    # One rule for zero vectors everywhere (faceexp.core.similarity): similarity 0.
    assert cosine_scores(np.array([[1.0, 0.0], [0.0, 0.0]]), pairs)[0] == 0.0
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        cosine_scores(np.ones((1, 2)), pairs)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        cosine_scores(np.ones(3), pairs)
    with pytest.raises(ValueError, match="NaN"):
        cosine_scores(np.array([[np.nan, 0.0], [1.0, 0.0]]), pairs)
    with pytest.raises(ValueError, match="same number of rows"):
        cosine_scores({"a": np.ones((2, 2)), "b": np.ones((3, 2))}, pairs)


# --------------------------------------------------------------------------
# tables


def synthetic_scores(pairs, seed=0, separation=1.5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=len(pairs)) + separation * pairs["label"].to_numpy()


def big_pose_frame(n_users=12):
    rows = [(f"u{u:02d}", pose) for u in range(n_users) for pose in ["frontal"] * 3 + ["three-quarter"] * 3 + ["profile"] * 3]
    return pd.DataFrame(rows, columns=["identity", "pose"])


def test_eer_table_matches_equal_error_rate_per_pose_pair():
    pairs = verification_pairs_by_pose(big_pose_frame(), n_impostor_users=5)
    scores = synthetic_scores(pairs)
    table = eer_table({"net": scores}, pairs)
    assert list(table.columns) == list(TABLE_COLUMNS) and list(table.index) == ["net"]
    for column in TABLE_COLUMNS:
        mask = (pairs["pose_pair"] == column).to_numpy()
        label = pairs["label"].to_numpy()
        expected = equal_error_rate(scores[mask & (label == 0)], scores[mask & (label == 1)]).eer
        assert table.loc["net", column] == pytest.approx(expected)
    assert table.attrs["counts"]["F-F"] == {"genuine": 12 * 3, "impostor": 12 * 5}
    assert table.attrs["counts"]["F-P"] == {"genuine": 12 * 9, "impostor": 12 * 5}


def test_orl_like_frontal_only_data_gives_nan_not_zero():
    frame = pd.DataFrame({"identity": np.repeat([f"s{k}" for k in range(6)], 4), "pose": "frontal"})
    frame.loc[[0, 4], "pose"] = "three-quarter"  # two turned images, no profile at all
    pairs = verification_pairs_by_pose(frame)
    scores = synthetic_scores(pairs)
    table = eer_table({"MB2": scores}, pairs)
    for column in ("3/4-3/4", "P-P", "F-P", "3/4-P"):
        assert np.isnan(table.loc["MB2", column]), column
    assert not np.isnan(table.loc["MB2", "F-F"]) and not np.isnan(table.loc["MB2", "overall"])
    assert table.attrs["counts"]["P-P"] == {"genuine": 0, "impostor": 0}
    one = table_one({"MB2": scores, "R50": synthetic_scores(pairs, seed=1)}, pairs)
    assert np.isnan(one.loc["combined (best)", "P-P"])
    assert format_eer_table(one).loc["combined (best)", "P-P"] == "n/a"


def test_eer_table_without_poses_fills_overall_only():
    pairs = verification_pairs(users_frame({f"u{k}": 3 for k in range(8)}))
    table = eer_table({"a": synthetic_scores(pairs)}, pairs)
    assert table.loc["a", list(POSE_PAIRS)].isna().all()
    assert table.loc["a", "overall"] >= 0


def test_table_one_combined_row_and_relative_change():
    pairs = verification_pairs_by_pose(big_pose_frame(16), n_impostor_users=8)
    labels = pairs["label"].to_numpy()
    rng = np.random.default_rng(3)
    s_mb2 = rng.normal(size=len(pairs)) + 1.2 * labels
    s_r50 = rng.normal(size=len(pairs)) + 1.0 * labels
    weights = np.round(np.arange(0, 1.0001, 0.05), 2)
    table = table_one({"MB2": s_mb2, "R50": s_r50}, pairs, weights=weights)
    assert list(table.index) == ["MB2", "R50", "combined (best)", "relative change"]
    assert table.attrs["unit"] == "fraction"
    # a is chosen on overall: brute force over the weights
    overall = (pairs["pose_pair"] == "overall").to_numpy()

    def eer_at(a, mask):
        fused = fuse_scores(s_mb2, s_r50, a)
        return equal_error_rate(fused[mask & (labels == 0)], fused[mask & (labels == 1)]).eer

    best_a = weights[int(np.argmin([eer_at(a, overall) for a in weights]))]
    assert table.attrs["a"] == best_a
    for column in TABLE_COLUMNS:
        mask = (pairs["pose_pair"] == column).to_numpy()
        combined = eer_at(best_a, mask)
        assert table.loc["combined (best)", column] == pytest.approx(combined)
        better = min(table.loc["MB2", column], table.loc["R50", column])
        assert table.loc["relative change", column] == pytest.approx((combined - better) / better)
    text = format_eer_table(table)
    assert list(text.index) == ["MB2", "R50", "combined (best)"]
    change = table.loc["relative change", "overall"]
    # printed in percent: the only place the unit changes
    assert text.loc["combined (best)", "overall"] == (
        f"{100 * table.loc['combined (best)', 'overall']:.2f} ({100 * change:+.1f}%)")


def test_table_validation():
    pairs = verification_pairs(users_frame({f"u{k}": 3 for k in range(4)}))
    with pytest.raises(ValueError, match=r"must have shape \(\d+,\)"):
        eer_table({"a": np.zeros(3)}, pairs)
    with pytest.raises(ValueError, match="non-empty dict"):
        eer_table({}, pairs)
    with pytest.raises(ValueError, match="'label' column"):
        eer_table({"a": np.zeros(len(pairs))}, pairs.drop(columns="label"))
    with pytest.raises(ValueError, match="exactly two recognisers"):
        table_one({"x": np.zeros(len(pairs))}, pairs)
