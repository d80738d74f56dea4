"""Model-only latency: the timing loops, and our models against the reference on one backend.

Timing: several runners (our models and the reference, on one backend at one input size) are timed in
rounds: each round times every runner once, in an order that rotates from round to round, so slow drift in
the machine's speed (clocks, other load) lands on all of them alike and cancels out of their ratios. Within
a round a runner makes ``runs`` back-to-back calls, as in a stream. Before its block a short runner makes
one untimed call, which brings its weights back into the caches after the other runners ran; for calls
over ``REWARM_BELOW_MS`` that effect is under a per cent of a call and the extra call is skipped. Nothing
sleeps: every pause would let the CPU change its clock. Timers are perf_counter, or CUDA events on GPUs.

Models: every model is opened once per backend through edgedepth's registry, with the same
``BackendOptions`` (explicit thread count) a ``DepthEstimator`` would use; the reference always runs in
FP32. At each input size and batch, the input is the video's first frame preprocessed to that size (the
reference gets the same frame at the nearest multiple of its patch, with its own spec) and repeated to the
batch.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgedepth.artifact import ModelSpec
from edgedepth.backends import Backend, BackendKind, BackendOptions, open_backend
from edgedepth.model_file import read_onnx_spec
from edgedepth.preprocess import preprocess

from .config import BenchmarkConfig, ModelEntry
from .memory import rss_mb
from .reference import reference_hw
from .reference.flops import FlopCounter

REWARM_BELOW_MS = 100.0


class Timer(Protocol):
    name: str

    def time_call(self, fn: Callable[[], object]) -> float:
        """Run ``fn`` once; its latency in milliseconds."""
        ...


class PerfCounterTimer:
    """Wall-clock time of a host-synchronous call (every backend's ``infer`` returns host arrays)."""

    name = "perf_counter"

    def time_call(self, fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


class CudaEventTimer:
    """CUDA events on the default stream around the call, in GPU 0's primary context (the one the TensorRT
    backend uses); the legacy default stream waits for the backend's blocking streams."""

    name = "cuda_events"

    def __init__(self) -> None:
        import pycuda.driver as cuda

        cuda.init()
        self._context = cuda.Device(0).retain_primary_context()
        self._context.push()
        try:
            self._start, self._end = cuda.Event(), cuda.Event()
        finally:
            self._context.pop()

    def time_call(self, fn: Callable[[], object]) -> float:
        self._context.push()
        try:
            self._start.record()
            fn()
            self._end.record()
            self._end.synchronize()
            return float(self._start.time_till(self._end))
        finally:
            self._context.pop()


def timer_for(kind: BackendKind) -> tuple[Timer, str]:
    """CUDA events for GPU backends where a CUDA context is current, else perf_counter; and why."""
    if kind is not BackendKind.TENSORRT:
        return PerfCounterTimer(), "perf_counter: a CPU backend"
    try:
        return CudaEventTimer(), "cuda_events on the default stream of GPU 0's primary context"
    except Exception as exc:  # pycuda missing, no GPU or no driver
        return PerfCounterTimer(), f"perf_counter: CUDA events unavailable ({type(exc).__name__}: {exc})"


def latency_stats(samples_ms: Sequence[float]) -> dict[str, float | int]:
    """Percentiles, mean and spread of latency samples in ms (linear-interpolated percentiles)."""
    if not samples_ms:
        raise ValueError("no latency samples")
    a = np.asarray(samples_ms, dtype=np.float64)
    p25, p50, p75, p90, p99 = np.percentile(a, [25, 50, 75, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "iqr": float(p75 - p25),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
    }


def fps_from(latency_p50_ms: float, batch: int) -> float:
    """Images per second at the median latency of one batch."""
    return batch * 1e3 / latency_p50_ms


@dataclass
class TimedRunner:
    """One callable timed in the rounds: ``warmup`` untimed calls first, then ``runs`` per round."""

    key: str
    call: Callable[[], Any]
    runs: int
    warmup: int
    timer: Timer = field(default_factory=PerfCounterTimer)
    samples_ms: list[float] = field(default_factory=list)
    block_p50_ms: list[float] = field(default_factory=list)  # one per round
    warmup_ms: list[float] = field(default_factory=list)
    rewarm: bool = True
    rss_growth_mb: float | None = None  # RSS change over this runner's blocks after the first round

    def warm_up(self) -> None:
        for _ in range(max(1, self.warmup)):
            self.warmup_ms.append(self.timer.time_call(self.call))
        self.rewarm = self.warmup_ms[-1] < REWARM_BELOW_MS

    def time_block(self, count_growth: bool) -> None:
        if self.rewarm:
            self.call()
        before = rss_mb()
        block = [self.timer.time_call(self.call) for _ in range(self.runs)]
        self.samples_ms += block
        self.block_p50_ms.append(float(np.median(block)))
        if count_growth:
            self.rss_growth_mb = (self.rss_growth_mb or 0.0) + rss_mb() - before


def run_interleaved(
    runners: Sequence[TimedRunner], rounds: int, on_block: Callable[[], None] | None = None
) -> None:
    """Warm every runner up, then time ``rounds`` rounds, rotating the order each round."""
    for runner in runners:
        runner.warm_up()
    n = len(runners)
    for r in range(rounds):
        for runner in [*runners[r % n :], *runners[: r % n]]:
            runner.time_block(count_growth=r > 0)
            if on_block is not None:
                on_block()


def expected_calls(runner_runs: int, warmup: int, rounds: int, rewarm: bool = True) -> int:
    """How many calls one runner makes in ``run_interleaved`` (for estimating a run's duration)."""
    return max(1, warmup) + rounds * (runner_runs + (1 if rewarm else 0))


def paired_ratios(reference: TimedRunner, ours: TimedRunner) -> list[float]:
    """Per round, the reference's median over ours: pairs measured within seconds of each other, so a slow
    spell of the machine (they last tens of seconds on shared hosts) moves both sides of a ratio alike."""
    return [r / o for r, o in zip(reference.block_p50_ms, ours.block_p50_ms, strict=True) if o > 0]


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
            options = BackendOptions(threads=cfg.threads)
            backend, _ = open_backend(entry.path, entry.spec, kind, options)  # type: ignore[arg-type]
            opened.append(Opened(entry.label, backend, entry.precision, flop_counter_for(entry.path)))
        if reference is not None:
            spec = read_onnx_spec(reference) if reference.suffix.lower() == ".onnx" else None
            options = BackendOptions(threads=cfg.threads)
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
                base: dict[str, Any] = {"backend": kind.value, "model": o.key, "precision": o.precision}
                base |= {"input_hw": list(hw), "batch": batch, "timer": timer_note}
                reason = unfit_reason(o.spec, hw, batch)
                if reason is not None:
                    cell_rows.append(base | {"error": reason})
                    continue
                x = cell_input(o.spec, frame, hw, batch)
                runners.append(
                    TimedRunner(o.key, functools.partial(o.backend.infer, x), cfg.runs, cfg.warmup, timer)
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
                per_round = paired_ratios(runners[-1], runner) if ref_stats else []
                ratio = float(np.median(per_round)) if per_round else None
                row |= {"speed_ratio": ratio, "speed_ratio_rounds": per_round, "goal_ratio": GOAL_RATIO}
                row["goal_met"] = ratio >= GOAL_RATIO if ratio is not None else None
                cell_rows.append(row)
            rows += cell_rows
            if on_cell is not None:
                on_cell(cell_rows)
    return rows
