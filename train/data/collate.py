"""From raw sample dicts to training tensors, with normalisation taken from the model's ModelSpec.

Normalisation uses :func:`edgedepth.preprocess.normalize_constants`, the same constants the runtime,
the CUDA kernel and the quantizer's calibration use, so training and inference cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from edgedepth.artifact import ColorOrder, ModelSpec
from edgedepth.errors import DataError
from edgedepth.preprocess import normalize_constants

from .augment import AugmentConfig, augment, resize_to
from .rgbd import Sample


def to_training_tensors(sample: Sample, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Turn an (augmented, output-size) raw sample into tensors.

    Returns ``image`` (3, H, W) float32 normalised per ``spec`` (mean/std, colour order), ``inverse_depth``
    (1, H, W) float32 = 1/depth on valid pixels and 0 elsewhere, ``mask`` (1, H, W) bool (finite depth > 0;
    all False for unlabelled samples) and ``labelled`` (0-d bool).
    """
    bgr = sample["bgr"]
    if not isinstance(bgr, np.ndarray) or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise DataError(f"expected an HxWx3 uint8 BGR image, got {getattr(bgr, 'dtype', type(bgr))}")
    scale, offset = normalize_constants(spec)  # in BGR order
    normed = bgr.astype(np.float32) * scale + offset
    if spec.color_order is ColorOrder.RGB:
        normed = normed[:, :, ::-1]
    image = torch.from_numpy(np.ascontiguousarray(normed.transpose(2, 0, 1)))
    h, w = bgr.shape[:2]
    depth = sample.get("depth_m")
    if depth is None:
        mask = np.zeros((h, w), dtype=bool)
        inverse = np.zeros((h, w), dtype=np.float32)
    else:
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != (h, w):
            raise DataError(f"depth {depth.shape} and image {(h, w)} differ in size")
        mask = np.isfinite(depth) & (depth > 0)
        inverse = np.zeros((h, w), dtype=np.float32)
        np.divide(1.0, depth, out=inverse, where=mask)
    return {
        "image": image,
        "inverse_depth": torch.from_numpy(inverse[None]),
        "mask": torch.from_numpy(mask[None]),
        "labelled": torch.tensor(depth is not None),
    }


class AugmentedDataset(Dataset):
    """Wrap a raw-sample dataset: augment (or, without ``augment_cfg``, deterministically resize) to
    ``size`` (h, w; default the spec's input size) and convert with :func:`to_training_tensors`.

    Item ``i`` uses ``np.random.default_rng([seed, i, epoch])``, so a run is reproducible whatever the
    worker count or order. Call :meth:`set_epoch` before each epoch to get fresh augmentations; with
    ``DataLoader(persistent_workers=True)`` the workers keep the epoch they started with.
    """

    def __init__(
        self,
        base: Dataset,
        spec: ModelSpec,
        size: tuple[int, int] | None = None,
        augment_cfg: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.base = base
        self.spec = spec
        h, w = size if size is not None else spec.input_size
        self.size: tuple[int, int] = (int(h), int(w))
        self.augment_cfg = augment_cfg
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations the next items use."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    @property
    def skipped(self) -> int:
        """Unreadable samples replaced so far in this process (see SkippingDataset)."""
        return int(getattr(self.base, "skipped", 0))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        sample = self.base[index]
        if self.augment_cfg is None:
            sample = resize_to(sample, self.size)
        else:
            rng = np.random.default_rng([self.seed, index, self.epoch])
            sample = augment(sample, self.size, self.augment_cfg, rng)
        return to_training_tensors(sample, self.spec)
