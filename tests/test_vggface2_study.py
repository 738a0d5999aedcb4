"""The paper's experiment on a tree in VGGFace2's exact layout (pasted ORL faces): the study
trains on train/, verifies VGGFace2-Pose's listed test images with the list's poses, reads
every image through its box, and fills every column of Table I."""
from __future__ import annotations

import numpy as np
import pytest
from vggface2_tree import build_vggface2_tree

from faceexp import POSES
from faceexp.data import preprocessing as fpre
from faceexp import study as fs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tree = build_vggface2_tree(tmp_path_factory.mktemp("vgg") / "vggface2", n_train=6, n_test=4,
                               train_images=6)
    s = fs.prepare_study(["mobilenetv2"], tmp_path_factory.mktemp("artifacts"),
                         recognisers=["sface"], data_root=tree.root, max_epochs=1,
                         batch_size=16, compile=False, progress=False)
    return tree, s


def test_the_study_reads_the_released_layout(study):
    tree, s = study
    assert s.dataset.startswith("VGGFace2") and "pose list" in s.dataset
    test = s.split("test")
    assert sorted(test["identity"].unique()) == sorted(tree.test_ids)
    listed = {image: pose for image, pose in tree.listed}
    assert len(test) == len(listed)
    assert dict(zip(test["image"], test["pose"])) == listed
    assert set(s.split("train")["identity"]) <= set(tree.train_ids)


def test_table_one_has_every_pose_pair(study):
    _, s = study
    result = fs.complementarity_analysis(s, progress=False)
    columns = ["F-F", "3/4-3/4", "P-P", "F-3/4", "F-P", "3/4-P", "overall"]
    for name in ("sface", "mobilenetv2"):
        row = result.eer.loc[name, columns].astype(float)
        assert np.isfinite(row).all(), (name, row)
    assert set(result.intervals["group"]) >= set(columns)


def test_explained_crops_are_the_pasted_faces(study):
    tree, s = study
    frame = s.held_out_images(1).head(2)
    heatmaps = fs.explain_test_images(s, frame, names=["mobilenetv2"], n_samples=20, n_segments=10,
                                      progress=False)
    hs = heatmaps["mobilenetv2"]
    for k, row in hs.frame.iterrows():
        image = row["path"].split("test/")[-1]
        face = tree.face("test", image)
        expected = fpre.preprocess(face).transpose(1, 2, 0)
        assert np.abs(hs.images[k] - expected).mean() < 0.02, image
    assert set(POSES) >= set(s.split("test")["pose"])
