"""The multi-stage trainer: recipe in, safetensors checkpoints out; single process or torchrun DDP.

Determinism is by construction. Sample ``i`` of stage ``s`` is drawn and augmented from an RNG seeded by
``(seed, s, i)``, and the torch RNG (stochastic depth) is re-seeded from ``(seed, step, rank)`` each step.
So a resumed run, which restores model, optimiser, scheduler, loss-weighting, stage and step, continues
exactly as an uninterrupted one would, whatever the worker count.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from .data.loader import StepSampler, make_loader
from .data.stage_data import StageData
from .export import model_spec
from .losses import LOSSES, DynamicTaskWeighting
from .losses.distill import DistillLoss, crop_region
from .models.efficientdepth import EfficientDepth
from .models.head import mixture_readout
from .models.registry import build_model
from .progress import eta_text
from .recipe import DISTILL_LOSSES, Recipe, StageConfig
from .speed import PhaseClock, StopRequest, autocast, compiled, memory_format

log = logging.getLogger(__name__)

# Likelihood terms learn their own scales (and can go negative): dynamic weighting leaves them alone.
SELF_WEIGHTED_LOSSES = ("laplace_nll",)


class TrainingInterrupted(Exception):
    """Ctrl-C or the time limit stopped training after a whole step; ``checkpoint`` holds the state to
    resume from, ``reason`` says which (``interrupted`` or ``time limit``)."""

    def __init__(self, checkpoint: Path, stage: str, step: int, reason: str) -> None:
        super().__init__(f"{reason}: stopped in stage {stage} at step {step}; saved {checkpoint}")
        self.checkpoint, self.reason = checkpoint, reason


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
        self.model.to(memory_format=memory_format(recipe.speed))
        self.spec = model_spec(self.model, recipe.export_size)
        self.stage_index, self.step = 0, 0  # step within the stage
        self.images_per_s = 0.0

    # -- per-stage state ------------------------------------------------------------------------------
    def _setup_stage(self) -> None:
        stage = self.recipe.stages[self.stage_index]
        self.losses = {n: self._make_loss(n, stage) for n in stage.losses}
        self.perceptual_every = stage.perceptual_every
        self.weighting = DynamicTaskWeighting(
            list(stage.losses), stage.losses, mode=stage.weighting, fixed=SELF_WEIGHTED_LOSSES
        ).to(self.dist.device)
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
        if name == "perceptual":  # a frozen conv net: the same layout as the model's
            loss = LOSSES[name](downsample=stage.perceptual_downsample).to(self.dist.device)
            return loss.to(memory_format=memory_format(self.recipe.speed))
        return LOSSES[name]().to(self.dist.device)

    @property
    def global_step(self) -> int:
        """Steps done over all stages."""
        return self.recipe.stage_start(self.stage_index) + self.step

    @property
    def images_seen(self) -> int:
        return self.global_step * self.recipe.batch_size * self.dist.world

    def forward(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's mixture parameters for the batch's images and, in a stage with the shared-context
        term, its crops after them (one forward per step, as DDP wants); fp32 whatever the autocast."""
        crops = batch.get("has_crop")
        images = batch["image"]
        if crops is not None and "distill_shared" in self.losses:
            images = torch.cat([images, batch["crop_image"][crops]])
        with autocast(self.recipe.speed, self.dist.device):
            params = model(images.contiguous(memory_format=memory_format(self.recipe.speed)))
        return params.float()

    def compute_losses(self, params: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every loss term of the current stage that has data in this batch, from :meth:`forward`'s output.

        Ground-truth terms use the labelled samples; distillation terms the pseudo-labelled ones. A term
        without data in the batch is left out, so its learned weight does not drift; so is the perceptual
        term on the steps that ``perceptual_every`` skips.
        """
        crops = batch.get("has_crop")
        skip = {"perceptual"} if self.step % self.perceptual_every else set()
        n = batch["image"].shape[0]
        inv = mixture_readout(params)[0]
        out: dict[str, torch.Tensor] = {}
        labelled = batch["mask"].flatten(1).any(dim=1)
        if labelled.any():
            p, target, mask = params[:n][labelled], batch["inverse_depth"][labelled], batch["mask"][labelled]
            for name, loss in self.losses.items():
                if name in skip:
                    continue
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
    def fit(self, max_steps: int | None = None, max_minutes: float | None = None) -> None:
        """Train through the remaining stages; ``max_steps`` stops early (for tests and smoke runs).

        Ctrl-C, or ``max_minutes`` passing, finishes the current step, saves ``checkpoint.safetensors`` and
        raises TrainingInterrupted (Ctrl-C in a single process only; under torchrun the ranks stop as
        torchrun stops them).
        """
        model = self.prepare()
        done = 0
        stop_request = StopRequest(max_minutes)
        with stop_request.installed() if self.dist.world == 1 else contextlib.nullcontext():
            while self.stage_index < len(self.recipe.stages):
                stage = self.recipe.stages[self.stage_index]
                stop = (
                    stage.iterations
                    if max_steps is None
                    else min(stage.iterations, self.step + max_steps - done)
                )
                done += self.run_steps(model, stage, stop, stop_request=stop_request)
                if stop_request.requested:
                    path = self.out / "checkpoint.safetensors"
                    self.save(path)
                    raise TrainingInterrupted(path, stage.name, self.step, stop_request.reason or "")
                if self.step < stage.iterations:
                    break  # stopped early by max_steps
                self.save(self.out / f"stage{self.stage_index}-{stage.name}.safetensors")
                self.stage_index, self.step = self.stage_index + 1, 0
                if self.stage_index < len(self.recipe.stages):
                    self._setup_stage()
        self.save(self.out / "checkpoint.safetensors")

    def prepare(self) -> torch.nn.Module:
        """Thread count, the current stage's optimiser and losses, and the module that runs the forward pass
        (DDP-wrapped under torchrun, compiled where the recipe asks)."""
        torch.set_num_threads(self.recipe.threads)
        if not hasattr(self, "optimizer"):
            self._setup_stage()
        ddp = (
            DistributedDataParallel(self.model, broadcast_buffers=True) if self.dist.world > 1 else self.model
        )
        return compiled(ddp, self.recipe.speed)

    def train_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], clock: PhaseClock):
        """One optimisation step on a batch already on the device; returns (terms, total, weights)."""
        torch.manual_seed(self.recipe.seed * 1_000_003 + self.global_step * 7919 + self.dist.rank)
        params = self.forward(model, batch)
        clock.lap("forward")
        terms = self.compute_losses(params, batch)
        total, weights = self.weighting(terms)
        clock.lap("losses")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self._sync_weighting_grads()
        clock.lap("backward")
        self.optimizer.step()
        self.scheduler.step()
        clock.lap("optimizer")
        clock.step_done()
        return terms, total, weights

    def run_steps(
        self,
        model: torch.nn.Module,
        stage: StageConfig,
        stop: int,
        clock: PhaseClock | None = None,
        stop_request: StopRequest | None = None,
    ) -> int:
        """Steps ``self.step..stop`` of the current stage (fewer when a stop is requested); returns how many."""
        data = StageData(self.recipe, self.stage_index, self.spec)
        sampler = StepSampler(self.step, stop, self.recipe.batch_size, self.dist.rank, self.dist.world)
        loader = make_loader(
            data,
            self.recipe.batch_size,
            sampler,
            self.recipe.workers,
            worker_nice=self.recipe.speed.worker_nice,
        )
        bar = tqdm(
            total=stage.iterations,
            initial=self.step,
            desc=f"stage {stage.name}",
            disable=not self.dist.main or not sys.stderr.isatty(),  # a log gets the plain lines below
            dynamic_ncols=True,
            mininterval=5.0,
        )
        self.model.train()
        clock = clock or PhaseClock(warmup=1)  # the first step waits for the workers to start
        start_step, batch_images = self.step, self.recipe.batch_size * self.dist.world
        batches = iter(loader)
        stopping = False
        while self.step < stop and not stopping:
            batch = next(batches)
            batch = {k: v.to(self.dist.device) for k, v in batch.items()}
            clock.lap("data")
            terms, total, weights = self.train_step(model, batch, clock)
            self.step += 1
            self.images_per_s = clock.images_per_s(batch_images)
            stopping = stop_request is not None and stop_request.requested  # read once: log what stops
            if self.dist.main:
                bar.update(1)
                bar.set_postfix(
                    {**{k: f"{v.item():.3f}" for k, v in terms.items()}, "img/s": f"{self.images_per_s:.1f}"}
                )
                if self.step % 50 == 0 or self.step == stop or stopping:
                    self._log(
                        {
                            "stage": stage.name,
                            "step": self.step,
                            "images": self.images_seen,
                            "total": total.item(),
                            "img_per_s": self.images_per_s,
                            "ms": {k: round(v, 1) for k, v in clock.step_ms.items()},
                            "lr": self.scheduler.get_last_lr()[1],
                            **{k: v.item() for k, v in terms.items()},
                            **{f"w_{k}": v for k, v in weights.items()},
                        }
                    )
                    if bar.disable:
                        losses = " ".join(f"{k} {v.item():.3f}" for k, v in terms.items())
                        eta = eta_text((stage.iterations - self.step) * batch_images, self.images_per_s)
                        print(f"stage {stage.name} step {self.step}/{stage.iterations}: {losses}, "
                              f"{self.images_per_s:.1f} img/s, stage ETA {eta}", file=sys.stderr, flush=True)  # fmt: skip
            if self.step % self.recipe.checkpoint_every == 0 and self.step < stage.iterations:
                self.save(self.out / "checkpoint.safetensors")
            self._snapshot()
        bar.close()
        return self.step - start_step

    def _snapshot(self) -> None:
        """Every ``snapshot_every`` global steps, keep the model's weights for the training curve."""
        every = self.recipe.snapshot_every
        step, images = self.global_step, self.images_seen
        if not every or step % every or not self.dist.main:
            return
        save_checkpoint(
            self.out / "snapshots" / f"step{step:07d}.safetensors",
            {"model": self.model.state_dict(), "progress": {"step": step, "images": images}},
            metadata={"model": self.recipe.model, "recipe": self.recipe.name, "images": str(images)},
        )

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
