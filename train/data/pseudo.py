"""Pseudo-labelled real images for distillation: the image, and a teacher's labels for its views.

A training sample takes the global view and one of the cached crops (chosen at random). The student sees
the whole image and, separately, the crop, each resized (stretched) to the stage resolution; the teacher
labels of both views come along, with the crop's box as fractions of the image. With an assistant
teacher, a random ``assistant_fraction`` of samples take the assistant's labels instead.

Each teacher's labels are brought to common units by one affine for the whole image set (its median and
mean absolute deviation, ``PseudoLabelCache.units``), so the loss weighs the same whatever units a teacher
outputs (a third-party export's disparity, or this family's output) and the teacher's and the assistant's
labels are comparable, while every relation between images and between an image's views stays as the
teacher gave it. The normalised distillation terms are invariant to it; it matters for ``distill_norm:
none``.

Every training sample of a stage that distils carries the same keys (see :func:`pseudo_fields`), so
labelled and pseudo-labelled samples mix in one batch: labelled ones have ``pseudo_mask`` all False and
pseudo-labelled ones have ``mask`` all False.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from edgedepth.artifact import ModelSpec

from .augment import IMAGE_INTERPOLATION, AugmentConfig, color_jitter
from .collate import to_training_tensors

if TYPE_CHECKING:
    from ..distill import PseudoLabelCache

SOURCE = "pseudo"


class PseudoLabelled(Dataset):
    """Items of complete pseudo-label caches over the same images (the teacher's, then the assistant's)."""

    def __init__(self, caches: list[PseudoLabelCache], assistant_fraction: float = 0.0) -> None:
        if not caches or any(not c.complete() for c in caches):
            raise ValueError("PseudoLabelled needs complete pseudo-label caches")
        if not 0.0 <= assistant_fraction <= 1.0:
            raise ValueError(f"assistant_fraction={assistant_fraction} must be in [0, 1]")
        if assistant_fraction > 0 and len(caches) < 2:
            raise ValueError("assistant_fraction > 0 needs an assistant teacher")
        self.caches, self.assistant_fraction = caches, assistant_fraction
        self.images = caches[0].images
        self.usable = caches[0].usable()
        self.units = [c.units() for c in caches]

    def __len__(self) -> int:
        return len(self.usable)

    def draw(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Raw sample ``index``: image, the chosen teacher's global and crop labels, and the crop's box."""
        i = self.usable[index]
        assistant = rng.random() < self.assistant_fraction
        labels = self.caches[1 if assistant else 0].labels(i)
        assert labels is not None
        median, mad = self.units[1 if assistant else 0]
        k = int(rng.integers(len(labels["crops"])))
        return {
            "bgr": self.images._load(i)["bgr"],
            "global": (labels["global"].astype(np.float32) - median) / mad,
            "crop": (labels["crops"][k].astype(np.float32) - median) / mad,
            "box": labels["boxes"][k],
            "source": SOURCE,
        }


def _resize(x: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    return cv2.resize(x, (size[1], size[0]), interpolation=interpolation)


def pseudo_fields(size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The distillation keys of a sample without pseudo-labels (all masked out)."""
    h, w = size
    return {
        "pseudo": torch.zeros(1, h, w),
        "pseudo_mask": torch.zeros(1, h, w, dtype=torch.bool),
        "crop_image": torch.zeros(3, h, w),
        "crop_pseudo": torch.zeros(1, h, w),
        "crop_box": torch.zeros(4),
        "has_crop": torch.tensor(False),
    }


def pseudo_tensors(
    sample: dict[str, Any],
    size: tuple[int, int],
    cfg: AugmentConfig,
    rng: np.random.Generator,
    spec: ModelSpec,
) -> dict[str, torch.Tensor]:
    """Training tensors of a pseudo-labelled sample at ``size`` (h, w): flip (image, labels and box
    together) and colour jitter (the same draw for both views); every draw is made whether used or not."""
    bgr = sample["bgr"]
    x0, y0, x1, y1 = (float(v) for v in sample["box"])
    h, w = bgr.shape[:2]
    crop_bgr = bgr[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]
    views = [_resize(bgr, size, IMAGE_INTERPOLATION), _resize(crop_bgr, size, IMAGE_INTERPOLATION)]
    labels = [_resize(sample[k], size, cv2.INTER_LINEAR) for k in ("global", "crop")]
    do_flip = rng.random() < cfg.hflip
    do_jitter = rng.random() < cfg.jitter
    jitter_seed = int(rng.integers(0, 2**63))
    if do_flip:
        views = [np.ascontiguousarray(v[:, ::-1]) for v in views]
        labels = [np.ascontiguousarray(v[:, ::-1]) for v in labels]
        x0, x1 = 1.0 - x1, 1.0 - x0
    if do_jitter:
        views = [
            color_jitter({"bgr": v, "depth_m": None}, cfg, np.random.default_rng(jitter_seed))["bgr"]
            for v in views
        ]
    full = to_training_tensors({"bgr": views[0], "depth_m": None}, spec)
    crop = to_training_tensors({"bgr": views[1], "depth_m": None}, spec)
    finite = [np.isfinite(v) for v in labels]
    return {
        **full,
        "pseudo": torch.from_numpy(np.where(finite[0], labels[0], 0.0).astype(np.float32)[None]),
        "pseudo_mask": torch.from_numpy(finite[0][None]),
        "crop_image": crop["image"],
        "crop_pseudo": torch.from_numpy(np.where(finite[1], labels[1], 0.0).astype(np.float32)[None]),
        "crop_box": torch.tensor([x0, y0, x1, y1], dtype=torch.float32),
        "has_crop": torch.tensor(True),
    }
