"""``edgedepth-train throughput``: a recipe's training speed, phase by phase, against the plain configuration.

Both configurations run the recipe's real data, losses and optimiser through the trainer's own step, in the
same process, one after the other: first the plain one (:meth:`Recipe.plain`: fp32, contiguous, today's
loader), then the recipe as written (with any ``--set`` overrides). The first ``warmup`` steps of each are
not counted (the loader starting, first-call allocations, compilation). Nothing is saved.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from typing import Any

from .errors import RecipeError
from .recipe import Recipe, load_with_overrides, parse_recipe
from .speed import PHASES, PhaseClock, uses_bf16


@dataclass(frozen=True)
class Measurement:
    name: str
    images_per_s: float
    step_ms: dict[str, float]
    settings: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def measure(recipe: Recipe, stage_index: int, steps: int, warmup: int, name: str) -> Measurement:
    """Run ``warmup + steps`` training steps of one stage with the real trainer; time the last ``steps``."""
    import torch

    from .trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="edgedepth-throughput-") as out:
        stages = list(recipe.stages)  # long enough for the measured steps, with the same schedule start
        stages[stage_index] = dataclasses.replace(
            stages[stage_index], iterations=max(stages[stage_index].iterations, warmup + steps)
        )
        recipe = dataclasses.replace(recipe, stages=tuple(stages), checkpoint_every=10**9, snapshot_every=0)
        trainer = Trainer(recipe, out)
        trainer.stage_index = stage_index
        model = trainer.prepare()
        clock = PhaseClock(warmup=warmup)
        trainer.run_steps(model, recipe.stages[stage_index], warmup + steps, clock=clock)
    speed = recipe.speed
    settings = {
        "batch_size": recipe.batch_size,
        "workers": recipe.workers,
        "threads": recipe.threads,
        "worker_nice": speed.worker_nice,
        "channels_last": speed.channels_last,
        "bf16": uses_bf16(speed, torch.device("cpu")),
        "compile": speed.compile,
        "perceptual_every": recipe.stages[stage_index].perceptual_every,
        "prerendered": sorted(n for n, s in recipe.sources.items() if s.kind == "synthetic" and s.cache),
    }
    return Measurement(name, clock.images_per_s(recipe.batch_size), clock.step_ms, settings)


def stage_index_of(recipe: Recipe, stage: str | None) -> int:
    """The stage named ``stage`` (default: the last, which has every loss term)."""
    names = [s.name for s in recipe.stages]
    if stage is None:
        return len(names) - 1
    if stage not in names:
        raise RecipeError(
            f"--stage {stage!r} is not a stage of {recipe.name}; its stages: {', '.join(names)}"
        )
    return names.index(stage)


def format_table(rows: list[Measurement]) -> str:
    head = f"{'configuration':<14} {'img/s':>7} {'ms/step':>8} " + " ".join(f"{p:>9}" for p in PHASES)
    lines = [head, "-" * len(head)]
    for m in rows:
        total = sum(m.step_ms.values())
        phases = " ".join(f"{m.step_ms[p]:>9.0f}" for p in PHASES)
        lines.append(f"{m.name:<14} {m.images_per_s:>7.2f} {total:>8.0f} {phases}")
    return "\n".join(lines)


def run(args: Any) -> None:
    overrides = args.set or []
    source = f"{args.recipe} with --set {' '.join(overrides)}" if overrides else args.recipe
    recipe = parse_recipe(load_with_overrides(args.recipe, overrides), source=source)
    index = stage_index_of(recipe, args.stage)
    stage = recipe.stages[index]
    print(
        f"throughput: {recipe.name}, stage {stage.name} ({stage.resolution[0]}x{stage.resolution[1]}, "
        f"{', '.join(stage.losses)}), {args.steps} steps after {args.warmup} warm-up steps each",
        flush=True,
    )
    rows = []
    if not args.no_baseline:
        rows.append(measure(recipe.plain(), index, args.steps, args.warmup, "plain"))
        print(format_table(rows), flush=True)
    rows.append(measure(recipe, index, args.steps, args.warmup, "recipe"))
    print()
    print(format_table(rows))
    for m in rows:
        print(f"{m.name}: " + ", ".join(f"{k}={v}" for k, v in m.settings.items()))
    result: dict[str, Any] = {"recipe": recipe.name, "stage": stage.name, "rows": [m.as_dict() for m in rows]}
    if len(rows) == 2:
        result["ratio"] = rows[1].images_per_s / rows[0].images_per_s
        print(f"ratio recipe / plain: {result['ratio']:.2f}x")
    if args.json:
        from edgedepth.fileio import atomic_write_bytes

        atomic_write_bytes(args.json, json.dumps(result, indent=1).encode())
