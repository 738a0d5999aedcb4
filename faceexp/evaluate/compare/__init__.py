"""Which explainer to trust: faceexp's verification LIME beside lime, captum and Grad-CAM.

Every explainer here explains one scalar, the cosine similarity of a face's
embedding to a reference embedding (the face's own, or a genuine partner's),
and returns an (H, W) map for the face. They are run through the libraries
their users run (``lime``, ``captum``, ``pytorch_grad_cam``), not rewritten;
:data:`EXPLAINERS` is the registry and :func:`explain_with` the one call.
Gradient explainers need a PyTorch recogniser (FaceNet-CASIA, the paper's
CNNs); black boxes (SFace on onnxruntime, dlib) get the perturbation
explainers only.

:func:`compare_explainers` runs a list of them on a recogniser and genuine
pairs of faces and measures, per explainer and face:

* deletion and insertion curves (most relevant pixels first) of the pair's
  and the face's self-similarity, each beside the curve of a random map of the
  explainer's own kind (:func:`baseline_map`): random superpixel coefficients
  for region methods, the explainer's own attributions shuffled over the
  pixels for pixel methods (scattered deletion attacks a recogniser far harder
  than any contiguous map, so it is no baseline for a region map);
* the model-randomisation sanity check (Adebayo et al. 2018): the rank
  correlation of the map with the map of the same explainer on the recogniser
  with its top stages re-initialised, cascading down (:func:`randomise_stages`);
* seed stability: the rank correlation of the maps of two seeds;
* cost: seconds and images through the network per explanation.

:func:`cost_table` (or :func:`comparison_cost` of a comparison) measures the cost
again at each explainer's usual settings beside the equal budget, and
:func:`cost_summary` says what it shows.

:func:`summarise` turns these into one row per explainer with 95% intervals
over faces and :func:`recommendation` into a paragraph that follows from them.

quantus is not used: its metrics score a classifier's class ``y`` rather than
a similarity to a reference, and it requires ``opencv-python`` (a second
``cv2`` beside grad-cam's ``opencv-python-headless``); the metrics here are a
few lines each, reuse :mod:`faceexp.evaluate.faithfulness`, and are tested against
worked examples.

The package, by concern: :mod:`~faceexp.evaluate.compare.model` (the recogniser as the
explainers see it), :mod:`~faceexp.evaluate.compare.explainers` (the registry and the one
call), :mod:`~faceexp.evaluate.compare.measures` (the metrics and the genuine pairs),
:mod:`~faceexp.evaluate.compare.comparison` (:func:`compare_explainers` and
:func:`summarise`), :mod:`~faceexp.evaluate.compare.cost` and
:mod:`~faceexp.evaluate.compare.summary` (the recommendation, tables, caption and heatmap
grid), :mod:`~faceexp.evaluate.compare.recommendation_rule` (chapter 10's rule: one primary
measure, gates, a paired interval over faces, two halves) and
:mod:`~faceexp.evaluate.compare.randomisation` (the spread of the explained similarity
under the randomised network, and when the check is degenerate). The comparison on the subjects of a study is
:func:`faceexp.study.explainers.compare_subjects`.
"""
from __future__ import annotations

from faceexp.evaluate.compare.model import (
    CAM_LAYERS, FACENET_STAGES, PAPER_STAGES, FaceModel, as_face_model, randomise_stages)
from faceexp.evaluate.compare.explainers import (
    BLACK_BOX, DEFAULT_EXPLAINERS, EXPLAINERS, N_SEGMENTS, SLIC_ZERO, USUAL_IG_STEPS,
    USUAL_SAMPLES, Attribution, ExplainerSpec, explain_with, explainer_table, occlusion_window,
    run_explainer)
from faceexp.evaluate.compare.measures import (
    CURVE_MODES, align_pairs, baseline_map, curve_auc, genuine_pairs, rank_correlation,
    similarity_curves, t_interval)
from faceexp.evaluate.compare.comparison import Comparison, compare_explainers, summarise
from faceexp.evaluate.compare.cost import (
    COST_SETTINGS, WARMUP_BUDGET, comparison_cost, cost_summary, cost_table)
from faceexp.evaluate.compare.summary import (
    HEADLINE, RANDOMISATION_PASS, combine, comparison_caption, headline_table, heatmap_grid,
    recommendation)
from faceexp.evaluate.compare.randomisation import (
    DEGENERATE_SPREAD, explained_spread, randomisation_reading, randomisation_summary)
from faceexp.evaluate.compare.recommendation_rule import (
    GATES, MIN_FACES, PRIMARY, PRIMARY_TEXT, explainer_gates, recommend, recommendation_text,
    rule_text, write_recommendation)

__all__ = [
    "EXPLAINERS", "DEFAULT_EXPLAINERS", "ExplainerSpec", "FaceModel", "Attribution",
    "Comparison", "as_face_model", "explain_with", "run_explainer", "randomise_stages",
    "rank_correlation", "baseline_map", "similarity_curves", "curve_auc", "t_interval",
    "genuine_pairs", "align_pairs", "compare_explainers", "summarise",
    "recommendation", "comparison_caption", "explainer_table", "heatmap_grid",
    "occlusion_window", "combine", "headline_table", "COST_SETTINGS", "cost_table",
    "comparison_cost", "cost_summary",
    # the constants, public names of the module too
    "N_SEGMENTS", "SLIC_ZERO", "USUAL_SAMPLES", "USUAL_IG_STEPS", "RANDOMISATION_PASS",
    "BLACK_BOX", "FACENET_STAGES", "PAPER_STAGES", "CAM_LAYERS", "CURVE_MODES", "WARMUP_BUDGET",
    "HEADLINE",
    # chapter 10's rule and the randomisation check's spread
    "DEGENERATE_SPREAD", "explained_spread", "randomisation_summary",
    "randomisation_reading", "GATES", "MIN_FACES",
    "PRIMARY", "PRIMARY_TEXT", "explainer_gates", "recommend", "recommendation_text",
    "rule_text", "write_recommendation",
]
