"""The multi-stage trainer: recipe in, safetensors checkpoints out; single process or torchrun DDP.

Determinism is by construction. Sample ``i`` of stage ``s`` is drawn and augmented from an RNG seeded by
``(seed, s, i)``, and the torch RNG (stochastic depth) is re-seeded from ``(seed, step, rank)`` each step.
So a resumed run, which restores model, optimiser, scheduler, loss-weighting, stage and step, continues
exactly as an uninterrupted one would, whatever the worker count.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from .checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from .data.stage_data import StageData
from .export import model_spec
from .losses import LOSSES, DynamicTaskWeighting
from .losses.distill import DistillLoss, crop_region
from .models.efficientdepth import EfficientDepth
from .models.head import mixture_readout
from .models.registry import build_model
from .recipe import DISTILL_LOSSES, Recipe, StageConfig

log = logging.getLogger(__name__)

# Likelihood terms learn their own scales (and can go negative): dynamic weighting leaves them alone.
SELF_WEIGHTED_LOSSES = ("laplace_nll",)


class StepSampler(Sampler[int]):
    """Global sample indices for steps ``start..stop`` of one rank: step k, rank r -> (k*world + r)*B + j."""

    def __init__(self, start: int, stop: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch, rank, world

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.stop):
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch


def _single_threaded_worker(_: int) -> None:
    """Loader workers render and decode; OpenCV's own thread pool would oversubscribe the cores."""
    import cv2

    cv2.setNumThreads(1)


def make_loader(
    data: Dataset, batch_size: int, sampler: Sampler[int] | None, workers: int, timeout_s: float = 0.0
) -> DataLoader:
    """A DataLoader whose forked workers cannot inherit a running OpenCV thread pool.

    A worker forked while this process's OpenCV pool is running inherits the pool's locks but not its
    threads, and deadlocks the first time it touches the pool (``cv2.setNumThreads`` in the worker hung at
    step 0 in 7 of 8 runs). So this process's pool is stopped first: here OpenCV only serves the workers,
    which do the decoding and rendering. Workers are forked when iteration starts.
    """
    if workers:
        import cv2

        cv2.setNumThreads(1)
    return DataLoader(
        data,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        worker_init_fn=_single_threaded_worker,
        timeout=timeout_s,
    )


def lr_factor(step: int, stage: StageConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio``."""
    if step < stage.warmup:
        return (step + 1) / stage.warmup
    progress = (step - stage.warmup) / max(1, stage.iterations - stage.warmup)
    return stage.min_lr_ratio + (1 - stage.min_lr_ratio) * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join a torchrun group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return DistInfo(rank=dist.get_rank(), world=dist.get_world_size(), device=device)


class Trainer:
    def __init__(self, recipe: Recipe, out_dir: str | Path, dist_info: DistInfo | None = None) -> None:
        self.recipe = recipe
        self.out = Path(out_dir)
        self.dist = dist_info or DistInfo()
        torch.manual_seed(recipe.seed)  # identical initial weights on every rank
        self.model: EfficientDepth = build_model(recipe.model, pretrained=recipe.pretrained).to(
            self.dist.device
        )
        if recipe.init is not None:
            self.model.load_state_dict(load_model_weights(Path(recipe.init).expanduser()))
        if recipe.freeze_encoder_bn is not None and hasattr(self.model.encoder, "freeze_bn"):
            self.model.encoder.freeze_bn = recipe.freeze_encoder_bn
        self.spec = model_spec(self.model, recipe.export_size)
        self.stage_index, self.step = 0, 0  # step within the stage
        self.images_per_s = 0.0

    # -- per-stage state ------------------------------------------------------------------------------
    def _setup_stage(self) -> None:
        stage = self.recipe.stages[self.stage_index]
        self.losses = {n: self._make_loss(n, stage) for n in stage.losses}
        self.weighting = DynamicTaskWeighting(
            list(stage.losses), stage.losses, mode=stage.weighting, fixed=SELF_WEIGHTED_LOSSES
        )
        encoder = list(self.model.encoder.parameters())
        enc_ids = {id(p) for p in encoder}
        rest = [p for p in self.model.parameters() if id(p) not in enc_ids]
        groups = [
            {"params": encoder, "lr": stage.lr * stage.encoder_lr_scale},
            {"params": rest, "lr": stage.lr},
            {"params": list(self.weighting.parameters()), "lr": stage.lr, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=stage.lr, weight_decay=stage.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, stage))

    def _make_loss(self, name: str, stage: StageConfig) -> torch.nn.Module:
        if name in DISTILL_LOSSES:
            return DistillLoss(stage.distill_norm).to(self.dist.device)
        if name == "perceptual":
            return LOSSES[name](downsample=stage.perceptual_downsample).to(self.dist.device)
        return LOSSES[name]().to(self.dist.device)

    def compute_losses(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Every loss term of the current stage that has data in this batch.

        Ground-truth terms use the labelled samples; distillation terms the pseudo-labelled ones. The
        shared-context crops go through the model in the same forward pass as the full images (one forward
        per step, as DDP wants). A term without data in the batch is left out, so its learned weight does
        not drift.
        """
        crops = batch.get("has_crop")
        images = batch["image"]
        if crops is not None and "distill_shared" in self.losses:
            images = torch.cat([images, batch["crop_image"][crops]])
        params = model(images)
        n = batch["image"].shape[0]
        inv = mixture_readout(params)[0]
        out: dict[str, torch.Tensor] = {}
        labelled = batch["mask"].flatten(1).any(dim=1)
        if labelled.any():
            p, target, mask = params[:n][labelled], batch["inverse_depth"][labelled], batch["mask"][labelled]
            for name, loss in self.losses.items():
                if name == "laplace_nll":
                    out[name] = loss(p, target, mask)
                elif name == "edge_huber":
                    out[name] = loss(inv[:n][labelled], target, mask, image=batch["image"][labelled])
                elif name not in DISTILL_LOSSES:
                    out[name] = loss(inv[:n][labelled], target, mask)
        if crops is None:
            return out
        pseudo = batch["pseudo_mask"].flatten(1).any(dim=1)
        if "distill" in self.losses and pseudo.any():
            out["distill"] = self.losses["distill"](
                inv[:n][pseudo], batch["pseudo"][pseudo], batch["pseudo_mask"][pseudo], batch["image"][pseudo]
            )
        if crops.any():
            crop_target, crop_image = batch["crop_pseudo"][crops], batch["crop_image"][crops]
            if "distill_shared" in self.losses:  # student and teacher both saw the crop alone
                out["distill_shared"] = self.losses["distill_shared"](inv[n:], crop_target, None, crop_image)
            if "distill_local_global" in self.losses:  # the student saw the whole image
                region = crop_region(inv[:n][crops], batch["crop_box"][crops], crop_target.shape[-2:])
                out["distill_local_global"] = self.losses["distill_local_global"](
                    region, crop_target, None, crop_image
                )
        return out

    # -- checkpoints -------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "weighting": self.weighting.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "progress": {"stage": self.stage_index, "step": self.step, "recipe_sha256": self.recipe.sha256},
        }

    def save(self, path: Path) -> None:
        if self.dist.main:
            save_checkpoint(
                path, self.state(), metadata={"model": self.recipe.model, "recipe": self.recipe.name}
            )

    def resume(self, path: str | Path) -> None:
        """Restore model, optimiser, scheduler, loss weighting, stage and step from a checkpoint."""
        state = load_checkpoint(path)
        progress = state["progress"]
        if progress.get("recipe_sha256") and progress["recipe_sha256"] != self.recipe.sha256:
            log.warning("%s was written by a different recipe (sha256 %s)", path, progress["recipe_sha256"])
        self.model.load_state_dict(state["model"])
        self.stage_index, self.step = int(progress["stage"]), int(progress["step"])
        self._setup_stage()
        self.weighting.load_state_dict(state["weighting"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    # -- the loop ----------------------------------------------------------------------------------------
    def fit(self, max_steps: int | None = None) -> None:
        """Train through the remaining stages; ``max_steps`` stops early (for tests and smoke runs)."""
        torch.set_num_threads(self.recipe.threads)
        ddp = (
            DistributedDataParallel(self.model, broadcast_buffers=True) if self.dist.world > 1 else self.model
        )
        done = 0
        if not hasattr(self, "optimizer"):
            self._setup_stage()
        while self.stage_index < len(self.recipe.stages):
            stage = self.recipe.stages[self.stage_index]
            stop = (
                stage.iterations if max_steps is None else min(stage.iterations, self.step + max_steps - done)
            )
            done += self._run_stage(ddp, stage, stop)
            if self.step < stage.iterations:
                break  # stopped early by max_steps
            self.save(self.out / f"stage{self.stage_index}-{stage.name}.safetensors")
            self.stage_index, self.step = self.stage_index + 1, 0
            if self.stage_index < len(self.recipe.stages):
                self._setup_stage()
        self.save(self.out / "checkpoint.safetensors")

    def _run_stage(self, ddp: torch.nn.Module, stage: StageConfig, stop: int) -> int:
        data = StageData(self.recipe, self.stage_index, self.spec)
        sampler = StepSampler(self.step, stop, self.recipe.batch_size, self.dist.rank, self.dist.world)
        loader = make_loader(data, self.recipe.batch_size, sampler, self.recipe.workers)
        bar = tqdm(
            total=stage.iterations,
            initial=self.step,
            desc=f"stage {stage.name}",
            disable=not self.dist.main or not sys.stderr.isatty(),  # a log gets the plain lines below
            dynamic_ncols=True,
            mininterval=5.0,
        )
        self.model.train()
        start_step, t0 = self.step, time.perf_counter()
        for batch in loader:
            batch = {k: v.to(self.dist.device) for k, v in batch.items()}
            global_step = self.recipe.stage_start(self.stage_index) + self.step
            torch.manual_seed(self.recipe.seed * 1_000_003 + global_step * 7919 + self.dist.rank)
            terms = self.compute_losses(ddp, batch)
            total, weights = self.weighting(terms)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self._sync_weighting_grads()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            seen = (self.step - start_step) * self.recipe.batch_size * self.dist.world
            self.images_per_s = seen / (time.perf_counter() - t0)
            if self.dist.main:
                bar.update(1)
                bar.set_postfix(
                    {**{k: f"{v.item():.3f}" for k, v in terms.items()}, "img/s": f"{self.images_per_s:.1f}"}
                )
                if self.step % 50 == 0 or self.step == stop:
                    self._log(
                        {
                            "stage": stage.name,
                            "step": self.step,
                            "total": total.item(),
                            "img_per_s": self.images_per_s,
                            "lr": self.scheduler.get_last_lr()[1],
                            **{k: v.item() for k, v in terms.items()},
                            **{f"w_{k}": v for k, v in weights.items()},
                        }
                    )
                    if bar.disable:
                        losses = " ".join(f"{k} {v.item():.3f}" for k, v in terms.items())
                        print(f"stage {stage.name} step {self.step}/{stage.iterations}: {losses}, "
                              f"{self.images_per_s:.1f} img/s", file=sys.stderr, flush=True)  # fmt: skip
            if self.step % self.recipe.checkpoint_every == 0 and self.step < stage.iterations:
                self.save(self.out / "checkpoint.safetensors")
        bar.close()
        return self.step - start_step

    def _sync_weighting_grads(self) -> None:
        """DDP averages the model's gradients; the loss-weighting parameters live outside it."""
        if self.dist.world == 1:
            return
        for p in self.weighting.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.dist.world

    def _log(self, record: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "train_log.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
