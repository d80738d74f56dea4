"""A trained PyTorch model as a runtime Backend, so that evaluation goes through the runtime's Predictor.

The Predictor then preprocesses, reads the spec's outputs and maps them back exactly as for an exported
model: a checkpoint and its ONNX export are scored by one code path.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from edgedepth.backends.base import Backend

from .export import model_spec
from .models.efficientdepth import EfficientDepth
from .models.head import mixture_readout


class TorchBackend(Backend):
    """Runs an EfficientDepth model in eval mode under ``no_grad``; outputs as the exported graph names them."""

    kind: ClassVar = "torch"  # not a runtime backend: the runtime never imports torch

    def __init__(self, model: EfficientDepth, source: str = "checkpoint") -> None:
        super().__init__(model_spec(model), source, [None, 3, None, None])
        self.model = model.eval()

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            inverse_depth, confidence = mixture_readout(self.model(torch.from_numpy(batch)))
        outputs = {self.spec.output_name: inverse_depth.numpy()}
        if self.spec.confidence_name:
            outputs[self.spec.confidence_name] = confidence.numpy()
        return outputs

    def _release(self) -> None:
        pass
