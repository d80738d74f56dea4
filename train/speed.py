"""How a training step runs fast on a small CPU: the recipe's ``speed:`` levers, and a clock for each phase.

``edgedepth-train throughput`` (``throughput.py``) measures every lever with the real trainer; the trainer
itself applies them here, so what is measured is what trains.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import time
from collections.abc import Iterator
from types import FrameType

import torch

from .recipe import SpeedConfig

#: The phases of one training step, in order. ``data``: waiting for the loader's next batch, and the loop's
#: bookkeeping since the last step (logging, checkpoints), so that the phases add up to the wall time.
PHASES = ("data", "forward", "losses", "backward", "optimizer")


@functools.cache
def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 runs natively: oneDNN's own answer on a CPU, CUDA's on a GPU (asked once; the
    forward of every step consults it)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def uses_bf16(speed: SpeedConfig, device: torch.device) -> bool:
    """``bf16`` always; ``auto`` where the hardware supports it natively; ``fp32`` never."""
    return speed.precision == "bf16" or (speed.precision == "auto" and bf16_supported(device))


def autocast(speed: SpeedConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """The model's forward runs under this: bfloat16 autocast, or nothing."""
    if not uses_bf16(speed, device):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def memory_format(speed: SpeedConfig) -> torch.memory_format:
    return torch.channels_last if speed.channels_last else torch.contiguous_format


def compiled(model: torch.nn.Module, speed: SpeedConfig) -> torch.nn.Module:
    """The module that runs the forward pass: ``torch.compile``d when the recipe asks (the weights stay
    those of ``model``, so checkpoints keep their names)."""
    return torch.compile(model) if speed.compile else model  # type: ignore[return-value]


class PhaseClock:
    """Seconds spent in each phase of the steps after the first ``warmup`` ones.

    ``lap(phase)`` at the end of each phase, ``step_done()`` after the optimiser. Laps in the warm-up steps
    (loader start-up, first-call allocations) are not counted.
    """

    def __init__(self, warmup: int = 0) -> None:
        self.warmup = warmup
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.steps = 0  # counted steps
        self._seen = 0  # all steps
        self._t = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        if self._seen >= self.warmup:
            self.seconds[phase] += now - self._t
        self._t = now

    def step_done(self) -> None:
        self._seen += 1
        if self._seen > self.warmup:
            self.steps += 1

    @property
    def step_ms(self) -> dict[str, float]:
        """Milliseconds per counted step, per phase."""
        return {k: 1000.0 * v / max(1, self.steps) for k, v in self.seconds.items()}

    def images_per_s(self, batch: int) -> float:
        total = sum(self.seconds.values())
        return self.steps * batch / total if total > 0 else 0.0


class StopRequest:
    """Asks the training loop to stop after the current step: Ctrl-C (SIGINT), or a time limit.

    The first Ctrl-C sets ``reason``; the loop then saves a checkpoint and stops. A second Ctrl-C
    interrupts at once. Only the main thread can own the handler; elsewhere Ctrl-C is left alone.
    ``max_minutes`` (counted from construction) stops the same way when the time is up.
    """

    def __init__(self, max_minutes: float | None = None) -> None:
        self.reason: str | None = None
        self._deadline = None if max_minutes is None else time.monotonic() + 60.0 * max_minutes
        self._previous: signal.Handlers | None = None

    @property
    def requested(self) -> bool:
        if self.reason is None and self._deadline is not None and time.monotonic() >= self._deadline:
            self.reason = "time limit"
        return self.reason is not None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.reason = "interrupted"
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)  # type: ignore[assignment]
        except ValueError:  # not the main thread
            yield self
            return
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
