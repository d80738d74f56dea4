"""Model-only latency on one backend: our models and the reference, per input size and batch, interleaved.

Every model is opened once per backend through edgedepth's registry, with the same ``BackendOptions``
(explicit thread count) a ``DepthEstimator`` would use; the reference always runs in FP32. At each input
size and batch, the input is the video's first frame preprocessed to that size (the reference gets the
same frame at the nearest multiple of its patch, with its own spec) and repeated to the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.artifact import ModelSpec, Precision, read_onnx_spec
from edgedepth.backends import Backend, BackendKind, BackendOptions, open_backend
from edgedepth.preprocess import preprocess

from .config import BenchmarkConfig, ModelEntry
from .flops import FlopCounter
from .harness import TimedRunner, fps_from, latency_stats, run_interleaved, timer_for
from .reference import reference_hw

GOAL_RATIO = 12.0
REFERENCE_KEY = "reference"


@dataclass
class Opened:
    """A model opened on the backend, with its FLOP counter (None where no ONNX graph is at hand)."""

    key: str
    backend: Backend
    precision: str
    flops: FlopCounter | None

    @property
    def spec(self) -> ModelSpec:
        return self.backend.spec


def flop_counter_for(path: Path) -> FlopCounter | None:
    """The model's own graph, or for an engine an ONNX file of the same name beside it."""
    onnx_path = path if path.suffix.lower() == ".onnx" else path.with_suffix(".onnx")
    return FlopCounter(onnx_path) if onnx_path.is_file() else None


def open_models(
    cfg: BenchmarkConfig, kind: BackendKind, models: list[ModelEntry], reference: Path | None
) -> list[Opened]:
    """Open our models for ``kind`` and, when given, the reference (last, keyed ``REFERENCE_KEY``)."""
    opened: list[Opened] = []
    try:
        for entry in models:
            options = BackendOptions(precision=entry.precision, threads=cfg.threads)
            backend, _ = open_backend(entry.path, entry.spec, kind, options)  # type: ignore[arg-type]
            opened.append(Opened(entry.label, backend, entry.precision, flop_counter_for(entry.path)))
        if reference is not None:
            spec = read_onnx_spec(reference) if reference.suffix.lower() == ".onnx" else None
            options = BackendOptions(precision=Precision.FP32, threads=cfg.threads)
            backend, _ = open_backend(reference, spec, kind, options)  # type: ignore[arg-type]
            opened.append(Opened(REFERENCE_KEY, backend, "fp32", flop_counter_for(reference)))
    except BaseException:
        for o in opened:
            o.backend.close()
        raise
    return opened


def cell_input(spec: ModelSpec, frame: np.ndarray, hw: tuple[int, int], batch: int) -> np.ndarray:
    x, _ = preprocess(frame, spec, hw)
    return np.ascontiguousarray(np.repeat(x, batch, axis=0))


def unfit_reason(spec: ModelSpec, hw: tuple[int, int], batch: int) -> str | None:
    """Why a fixed-shape model cannot run this cell, or None."""
    if spec.dynamic_shape or (tuple(hw) == tuple(spec.input_size) and batch == 1):
        return None
    return f"{spec.name} has a fixed input of 1x3x{spec.input_size[0]}x{spec.input_size[1]}"


def model_stats(
    opened: Opened, runner: TimedRunner, hw: tuple[int, int], batch: int, peak: float | None
) -> dict:
    """Latency, FPS, FLOPs and GFLOP/s of one runner in one cell."""
    latency = latency_stats(runner.samples_ms)
    count = opened.flops((batch, 3, *hw)) if opened.flops is not None else None
    gflops = count.flops / latency["p50"] / 1e6 if count is not None else None
    return {
        "input_hw": list(hw),
        "latency_ms": latency,
        "fps": fps_from(latency["p50"], batch),
        "flops": count.flops if count is not None else None,
        "flops_complete": count.complete if count is not None else None,
        "gflops_per_s": gflops,
        "fraction_of_peak": gflops / peak if gflops is not None and peak else None,
        "steady_rss_growth_mb": runner.rss_growth_mb,
    }


def measure_backend(
    cfg: BenchmarkConfig,
    kind: BackendKind,
    opened: list[Opened],
    frame: np.ndarray,
    peak_gflops: float | None,
    on_cell: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (our model, size, batch) on ``kind``, each with the reference of its cell."""
    timer, timer_note = timer_for(kind)
    ours = [o for o in opened if o.key != REFERENCE_KEY]
    reference = next((o for o in opened if o.key == REFERENCE_KEY), None)
    rows: list[dict[str, Any]] = []
    for hw in cfg.sizes:
        for batch in cfg.batches:
            runners, members = [], []
            cell_rows = []
            for o in ours:
                base = {"backend": kind.value, "model": o.key, "precision": o.precision}
                base |= {"input_hw": list(hw), "batch": batch, "timer": timer_note}
                reason = unfit_reason(o.spec, hw, batch)
                if reason is not None:
                    cell_rows.append(base | {"error": reason})
                    continue
                x = cell_input(o.spec, frame, hw, batch)
                runners.append(
                    TimedRunner(o.key, lambda o=o, x=x: o.backend.infer(x), cfg.runs, cfg.warmup, timer)
                )
                members.append((o, base))
            ref_hw = reference_hw(hw) if reference is not None else None
            if reference is not None and ref_hw is not None and members:
                x = cell_input(reference.spec, frame, ref_hw, batch)
                call = lambda x=x: reference.backend.infer(x)  # noqa: E731
                runners.append(TimedRunner(REFERENCE_KEY, call, cfg.ref_runs, cfg.ref_warmup, timer))
            if not runners:
                rows += cell_rows
                continue
            try:
                run_interleaved(runners, cfg.rounds)
            except Exception as exc:  # recorded, not fatal: e.g. a size outside an engine's range
                cell_rows += [base | {"error": f"{type(exc).__name__}: {exc}"} for _, base in members]
                rows += cell_rows
                continue
            ref_stats = None
            if reference is not None and ref_hw is not None and members:
                ref_stats = model_stats(reference, runners[-1], ref_hw, batch, peak_gflops)
                ref_stats["precision"] = "fp32"
            for (o, base), runner in zip(members, runners, strict=False):
                row = base | model_stats(o, runner, hw, batch, peak_gflops) | {"reference": ref_stats}
                ratio = ref_stats["latency_ms"]["p50"] / row["latency_ms"]["p50"] if ref_stats else None
                row |= {"speed_ratio": ratio, "goal_ratio": GOAL_RATIO}
                row["goal_met"] = ratio >= GOAL_RATIO if ratio is not None else None
                cell_rows.append(row)
            rows += cell_rows
            if on_cell is not None:
                on_cell(cell_rows)
    return rows
