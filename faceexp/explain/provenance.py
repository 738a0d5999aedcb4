"""What made an explanation: the model and its weights, the settings, the image's content.

An explanation that cannot say what made it can be silently wrong: two runs with
different models or sample counts written into one folder look alike. This module
describes the parts of a run so that they can be recorded in every file
(:attr:`faceexp.explain.explanation.Explanation.provenance`) and in a folder's
manifest, and compared when a run is resumed:

* :func:`describe_model`: the model's name and a hash of its weights (the
  ``state_dict`` of a torch model, :func:`faceexp.models.checkpoints.state_dict_hash`;
  else the recogniser's weights file), the checkpoint path and its hash;
* :func:`image_record`: an image file's path and content hash (sha256 of its bytes),
  and its face box; :func:`record_for` both, for one explanation
  (``explanation.provenance.update(record_for(embed, "face.jpg"))`` before saving);
* :func:`run_settings`: every setting that changes an explanation (the model's
  and its weights' identity, the layers, the target, every explainer option, the
  device type, the seed, faceexp's version), as a flat JSON object whose
  :func:`faceexp.core.files.json_sha256` of it identifies it;
* :func:`prepare_folder`: a folder's ``manifest.json`` of those settings, written
  by the first run and compared by the next: other settings are refused
  (:class:`SettingsDiffer`, naming each differing setting) unless ``restart``.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faceexp.core.files import file_sha256, json_sha256, write_json
from faceexp.core.version import __version__
from faceexp.explain.explanation import read_provenance
from faceexp.explain.targets import target_name

__all__ = ["describe_model", "image_record", "record_for", "run_settings", "differences",
           "prepare_folder", "read_manifest", "SettingsDiffer", "MANIFEST_NAME",
           "MANIFEST_FORMAT", "MODEL_SETTINGS"]

#: The manifest's file name in an explain-set folder.
MANIFEST_NAME = "manifest.json"
#: The manifest's format tag.
MANIFEST_FORMAT = "faceexp-explain-set-1"
#: The keys of :func:`describe_model` that change the explanations (the others say
#: where the weights were read from: a moved file is the same model).
MODEL_SETTINGS = ("model", "weights_sha256", "model_layers", "pooling", "normalize", "backend",
                  "compiled")


def qualified_name(value: Any) -> str | None:
    """``module.qualname`` of a function or of an object's class (None for None)."""
    if value is None:
        return None
    target = value if hasattr(value, "__qualname__") else type(value)
    return f"{getattr(target, '__module__', '?')}.{target.__qualname__}"


def _plain(value: Any) -> Any:
    """A JSON scalar as it is; anything else as its str."""
    return value if value is None or isinstance(value, (str, bool, int, float)) else str(value)


def describe_model(embed: Callable, *, checkpoint=None) -> dict:
    """The identity of an embed callable, for the record.

    Parameters
    ----------
    embed : callable
        A recogniser (:func:`faceexp.recognisers.load`), a
        :class:`faceexp.models.Embedder`, a torch module or any callable.
    checkpoint : str or Path, optional
        The checkpoint file the weights were read from (recorded with its hash).

    Returns
    -------
    dict
        ``model`` (the recogniser's name, the architecture, or the callable's
        qualified name), ``weights_sha256`` (sha256 of the torch model's
        state_dict, else of the recogniser's weights file; None for a plain
        function), ``weights`` (what was hashed), ``checkpoint`` and
        ``checkpoint_sha256``, ``model_layers``, ``pooling``, ``normalize``,
        ``backend``, ``compiled`` (None where the callable has no such thing).
    """
    import torch

    from faceexp.models.checkpoints import checkpoint_hash, state_dict_hash

    source = dict(getattr(embed, "source", None) or {})
    module = getattr(embed, "model", None)
    if not isinstance(module, torch.nn.Module):
        module = embed if isinstance(embed, torch.nn.Module) else None
    name = getattr(embed, "name", None) or getattr(embed, "arch", None) or qualified_name(embed)
    checkpoint = checkpoint if checkpoint is not None else source.get("checkpoint")
    if module is not None:
        weights_sha256, weights = state_dict_hash(module), "state_dict"
    elif source.get("sha256"):
        weights_sha256, weights = str(source["sha256"]), str(source.get("file"))
    elif source.get("file"):
        weights_sha256, weights = file_sha256(source["file"]), str(source["file"])
    else:
        weights_sha256, weights = None, None
    layers = getattr(embed, "layers", None) if getattr(embed, "arch", None) else None
    return {
        "model": str(name), "weights_sha256": weights_sha256, "weights": weights,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "checkpoint_sha256": None if checkpoint is None else checkpoint_hash(checkpoint),
        "model_layers": None if layers is None else [str(x) for x in layers],
        "pooling": _plain(getattr(embed, "pooling", None)),
        "normalize": _plain(getattr(embed, "normalize", None)),
        "backend": _plain(getattr(embed, "backend", None)),
        "compiled": bool(getattr(embed, "compiled", False)),
    }


def image_record(path, *, box: Sequence[int] | None = None) -> dict:
    """``{"path", "sha256", "box"}`` of an image file: its content hash (sha256 of its bytes)."""
    return {"path": str(path), "sha256": file_sha256(path),
            "box": None if box is None else [int(v) for v in box]}


def record_for(embed: Callable, image, *, box: Sequence[int] | None = None, reference=None,
               reference_box: Sequence[int] | None = None, checkpoint=None) -> dict:
    """What made one explanation of an image file, to add to its provenance.

    Returns
    -------
    dict
        ``model`` (:func:`describe_model`), ``image`` and, in pair mode,
        ``reference`` (:func:`image_record`: path, sha256, box).
    """
    record = {"model": describe_model(embed, checkpoint=checkpoint),
              "image": image_record(image, box=box)}
    if reference is not None:
        record["reference"] = image_record(reference, box=reference_box)
    return record


def run_settings(explainer, model: dict, *, seed: int, read: Callable | None = None) -> dict:
    """Every setting that changes an explanation, as a flat JSON object.

    Parameters
    ----------
    explainer : faceexp.explain.explainer.Explainer
        Its layers, target and options.
    model : dict
        :func:`describe_model` of its embed callable (only :data:`MODEL_SETTINGS`
        are kept: a checkpoint moved elsewhere is the same model).
    seed : int
        The run's base seed.
    read : callable, optional
        How images are read (recorded by qualified name).

    Returns
    -------
    dict
        Keys in a fixed order: ``faceexp_version``, :data:`MODEL_SETTINGS`,
        ``layers``, ``target``, the explainer's options (with ``n_samples="auto"`` also
        ``tolerance``, ``max_samples``, ``round_samples``), ``device`` (its type:
        the ranks of a torchrun share it), ``seed``, ``read``.
    """
    settings = {"faceexp_version": __version__, **{k: model.get(k) for k in MODEL_SETTINGS}}
    settings.update({
        "layers": explainer.layers, "target": target_name(explainer.target),
        "n_samples": explainer.n_samples, "n_segments": explainer.n_segments,
        "compactness": explainer.compactness, "slic_zero": explainer.slic_zero,
        "sampling": explainer.sampling, "p_off": explainer.p_off, "fill": explainer.fill,
        "fill_value": list(explainer.fill_value), "kernel": explainer.kernel,
        "kernel_width": explainer.kernel_width, "ridge": explainer.ridge,
        "sigma": explainer.sigma, "positive_only": explainer.positive_only,
        "batch_size": explainer.batch_size, "device": explainer.device.type,
        "seed": int(seed), "read": qualified_name(read)})
    if explainer.n_samples == "auto":        # the stopping rule's settings (none before)
        settings.update({"tolerance": explainer.tolerance,
                         "max_samples": explainer.max_samples,
                         "round_samples": explainer.round_samples})
    return json.loads(json.dumps(settings))          # as read back from a file


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    text = json.dumps(value)
    return text if len(text) <= 48 else text[:45] + "..."


def differences(old: dict, new: dict) -> list[str]:
    """``"name: old -> new"`` for every setting that differs (hashes cut to 12 digits)."""
    keys = list(new) + [k for k in old if k not in new]
    return [f"{key}: {_short(old.get(key))} -> {_short(new.get(key))}"
            for key in keys if old.get(key) != new.get(key)]


class SettingsDiffer(ValueError):
    """A folder holds explanations made with other settings; ``differences`` names them."""

    def __init__(self, folder, differences: Sequence[str]):
        self.folder, self.differences = str(folder), list(differences)
        super().__init__(self.message(repr(self.folder), "restart=True"))

    def message(self, folder: str, restart: str) -> str:
        """The one-line refusal, naming the folder and the restart option as given."""
        return (f"{folder} holds explanations made with other settings "
                f"({'; '.join(self.differences)}): run with the same settings to resume, "
                f"write to another folder, or give {restart} to replace them")

    def __reduce__(self):             # pickled between torchrun processes
        return type(self), (self.folder, self.differences)


def read_manifest(folder) -> dict | None:
    """The manifest of an explain-set folder (None when it has none); ValueError when
    the file is not one."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} cannot be read as an explain-set manifest ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())}): remove it, or write to another "
                         "folder") from None
    if not (isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT
            and isinstance(manifest.get("settings"), dict)):
        raise ValueError(f"{path} is not an explain-set manifest (format "
                         f"{MANIFEST_FORMAT!r}): remove it, or write to another folder")
    return manifest


def prepare_folder(folder, settings: dict, model: dict, *, restart: bool = False) -> str:
    """Check an explain-set folder's manifest against ``settings``; write it when new.

    Parameters
    ----------
    folder : Path
        The output folder (created when missing).
    settings : dict
        :func:`run_settings` of this run.
    model : dict
        :func:`describe_model`, recorded beside them (paths included).
    restart : bool
        When the manifest differs: delete every explanation file under ``folder``
        that these settings did not make (and the failure lists), then write the
        new manifest. Files made with these settings are kept.

    Returns
    -------
    str
        "new" (no manifest before), "same" or "restarted".

    Raises
    ------
    SettingsDiffer
        The manifest's settings differ and ``restart`` is False; nothing is changed.
    """
    folder = Path(folder)
    try:
        manifest = read_manifest(folder)
    except ValueError:
        if not restart:
            raise
        manifest = {"settings": {}}
    if manifest is not None and manifest["settings"] == settings:
        return "same"
    if manifest is not None and not restart:
        raise SettingsDiffer(folder, differences(manifest["settings"], settings))
    key = json_sha256(settings)
    if restart:
        for path in sorted(folder.rglob("*.npz")):
            try:
                record = read_provenance(path)
            except ValueError:
                continue                     # not an explanation: not ours to delete
            if record is None or record.get("settings_sha256") != key:
                path.unlink()
        for path in folder.glob("failed-*.csv"):
            path.unlink()
    write_json(folder / MANIFEST_NAME, {"format": MANIFEST_FORMAT, "settings": settings,
                                        "settings_sha256": key, "model": model})
    return "new" if manifest is None else "restarted"
