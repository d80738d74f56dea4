"""The training data loader: which samples each step and rank get, and workers that suit a small CPU."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

from torch.utils.data import DataLoader, Dataset, Sampler


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


def make_loader(
    data: Dataset,
    batch_size: int,
    sampler: Sampler[int] | None,
    workers: int,
    timeout_s: float = 0.0,
    worker_nice: int = 0,
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
        worker_init_fn=LoaderWorkerInit(worker_nice),
        timeout=timeout_s,
    )


class LoaderWorkerInit:
    """A loader worker's set-up: one OpenCV thread (workers decode and augment; OpenCV's own pool would
    oversubscribe the cores), lower priority by ``nice``, and deaf to Ctrl-C, which the trainer handles
    (it finishes the step, saves and says how to resume)."""

    def __init__(self, nice: int = 0) -> None:
        self.nice = nice

    def __call__(self, _: int) -> None:
        import cv2

        cv2.setNumThreads(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.nice:
            os.nice(self.nice)
