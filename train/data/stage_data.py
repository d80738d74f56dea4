"""What a training stage feeds the model: its data sources, mixed by weight, and augmented per sample.

Sample ``i`` of a stage is drawn from an RNG seeded by ``(seed, stage, i)``: which source, which item,
which augmentation. Labelled samples carry ground-truth inverse depth; pseudo-labelled ones a teacher's
labels for the whole image and a crop (``data/pseudo.py``); in a stage that distils, every sample carries
both kinds of keys so that they batch together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset

from edgedepth.artifact import ModelSpec
from edgedepth.errors import DataError

from ..distill import CropPlan, pseudo_labels
from ..recipe import DISTILL_LOSSES, Recipe, SourceConfig
from .appearance import randomize_appearance
from .augment import augment
from .collate import to_training_tensors
from .pseudo import PseudoLabelled, pseudo_fields, pseudo_tensors
from .render_cache import CachedFrames
from .rgbd import RGBDFolder
from .synthetic import SyntheticRGBD
from .unlabelled import UnlabelledImages

# Sources whose images are rendered, and so get the stage's appearance randomisation.
RENDERED_SOURCES = ("synthetic", "furniture")


def open_source(cfg: SourceConfig, size: tuple[int, int], seed: int, threads: int = 1) -> Dataset:
    """Instantiate one data source of a recipe; a missing folder raises DataError naming it.

    A pseudo source labels its images with the teacher (and assistant) first, where its caches are not
    complete yet; ``threads`` is the teachers' CPU thread count.
    """
    if cfg.kind == "pseudo":
        return open_pseudo(cfg, seed, threads)
    if cfg.kind == "synthetic" and cfg.cache is not None:  # pre-rendered: nothing is generated while training
        return CachedFrames(cfg.cache, limit=cfg.length, scenes="procedural")
    if cfg.kind == "synthetic":
        return SyntheticRGBD(cfg.length, size=size, seed=seed, texture_dir=cfg.texture_dir)
    if cfg.kind in ("rgbd", "cached"):
        if cfg.root is None:
            raise DataError(f"a {cfg.kind} source needs root")
        return RGBDFolder(cfg.root) if cfg.kind == "rgbd" else CachedFrames(cfg.root, limit=cfg.length)
    return UnlabelledImages(images=cfg.images, videos=cfg.videos, frame_step=cfg.frame_step)


def open_pseudo(cfg: SourceConfig, seed: int, threads: int) -> PseudoLabelled:
    assert cfg.teacher is not None
    images = UnlabelledImages(images=cfg.images, videos=cfg.videos, frame_step=cfg.frame_step)
    plan = CropPlan(
        crops=cfg.crops,
        scale=cfg.crop_scale,
        label_size=cfg.label_size,
        seed=seed,
        teacher_sides=cfg.teacher_sides,
        teacher_flip=cfg.teacher_flip,
    )
    caches = [
        pseudo_labels(
            cfg.teacher,
            images,
            plan,
            cfg.cache,
            cfg.teacher_spec,
            threads=threads,
            expected_sha256=cfg.teacher_sha256,
        )
    ]
    if cfg.assistant is not None:
        caches.append(pseudo_labels(cfg.assistant, images, plan, None, cfg.assistant_spec, threads=threads))
    return PseudoLabelled(caches, cfg.assistant_fraction)


class StageData(Dataset):
    """Sample ``i`` of a stage: pick a source by the mix weights, an item, and augment, all from (seed, i)."""

    def __init__(self, recipe: Recipe, stage_index: int, spec: ModelSpec) -> None:
        stage = recipe.stages[stage_index]
        self.names = sorted(stage.data)
        self.sources = {
            n: open_source(recipe.sources[n], stage.resolution, recipe.seed, recipe.threads)
            for n in self.names
        }
        self.distills = any(n in DISTILL_LOSSES for n in stage.losses)
        weights = np.array([stage.data[n] for n in self.names], dtype=np.float64)
        self.probs = weights / weights.sum()
        self.key = (recipe.seed, stage_index)
        self.stage, self.spec = stage, spec

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([*self.key, index])
        name = self.names[int(rng.choice(len(self.names), p=self.probs))]
        source = self.sources[name]
        item = int(rng.integers(len(source)))  # type: ignore[arg-type]
        size = self.stage.resolution
        if isinstance(source, PseudoLabelled):
            return pseudo_tensors(source.draw(item, rng), size, self.stage.augment, rng, self.spec)
        sample = augment(source[item], size, self.stage.augment, rng)
        if sample.get("source") in RENDERED_SOURCES:
            sample["bgr"] = randomize_appearance(sample["bgr"], self.stage.appearance, rng)
        tensors = to_training_tensors(sample, self.spec)
        return {**tensors, **pseudo_fields(size)} if self.distills else tensors
