"""Timing loops: warm-up, interleaved rounds, percentiles, and the timers (perf_counter or CUDA events).

Several runners (our models and the reference, on one backend at one input size) are timed in rounds:
each round times every runner once, in an order that rotates from round to round, so slow drift in the
machine's speed (clocks, other load) lands on all of them alike and cancels out of their ratios. Within a
round a runner makes ``runs`` back-to-back calls, as in a stream. Before its block a short runner makes
one untimed call, which brings its weights back into the caches after the other runners ran; for calls
over ``REWARM_BELOW_MS`` that effect is under a per cent of a call and the extra call is skipped.
Nothing sleeps: every pause would let the CPU change its clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edgedepth.backends import BackendKind

from .memory import rss_mb

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
        for _ in range(self.runs):
            self.samples_ms.append(self.timer.time_call(self.call))
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
