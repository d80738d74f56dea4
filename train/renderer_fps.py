"""Labelled frames per second of the synthetic RGB-D renderers on N worker processes (CPU only).

    python -m edgedepth_train.renderer_fps --size 256 --frames 300 --workers 2
    python -m edgedepth_train.renderer_fps --scenes furniture --size 256 --frames 700 --workers 2

``procedural``: the numpy ray caster, one scene per frame. ``furniture``: pyrender (Mesa llvmpipe through EGL)
on Debian's furniture assets, each scene built once and rendered from up to 7 accepted views, exactly as
``edgedepth-train render`` does; its time per frame includes building the scene, loading models not yet in
the worker's cache and rendering the views that were rejected.

Each worker is a fresh (spawned) process that sets cv2.setNumThreads(1) and one BLAS thread, loads the textures
and renders two warm-up frames (untimed). All workers then start together at a barrier and render their share of
seeds 0..frames-1 with ``render_frame``. Reported: per-frame latency in each worker (median, p90), its CPU time
per frame (wall time well above it means the cores were shared with other load) and the total throughput =
frames / wall time from the common start to the last worker's finish, which is the number that matters for
on-the-fly training data. It prints and writes nothing else.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one thread per worker process
os.environ.setdefault("OMP_NUM_THREADS", "1")

import multiprocessing as mp

import numpy as np


def _worker(
    rank: int, workers: int, seeds: list[int], size: int, texture_dir: str | None, scenes: str, barrier, queue
) -> None:
    # One llvmpipe rasteriser thread per core and worker, as edgedepth-train render sets it.
    os.environ.setdefault("LP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    try:
        measure = _measure_furniture if scenes == "furniture" else _measure
        queue.put(measure(rank, seeds, size, texture_dir, barrier))
    except Exception as exc:  # report instead of leaving the parent waiting
        barrier.abort()
        queue.put((rank, 0.0, 0.0, [], f"{type(exc).__name__}: {exc}"))


def _measure(rank: int, seeds: list[int], size: int, texture_dir: str | None, barrier) -> tuple:
    import cv2

    cv2.setNumThreads(1)
    from edgedepth_train.data.synthetic import load_textures, render_frame

    load_textures(texture_dir)
    for seed in (-1 - rank, -100 - rank):  # warm-up, outside the measured seeds
        render_frame(seed % 2**31, size, size, texture_dir)
    barrier.wait()
    start, cpu, times = time.monotonic(), time.process_time(), []
    for seed in seeds:
        t = time.perf_counter()
        render_frame(seed, size, size, texture_dir)
        times.append(time.perf_counter() - t)
    return rank, start, time.monotonic(), times, time.process_time() - cpu


def _measure_furniture(rank: int, seeds: list[int], size: int, texture_dir: str | None, barrier) -> tuple:
    import cv2

    cv2.setNumThreads(1)
    from edgedepth_train.data.assets import load_catalogue
    from edgedepth_train.data.furniture_scenes import sample_furniture_scene
    from edgedepth_train.data.gl_render import FurnitureRenderer, texture_images

    textures, catalogue = texture_images(texture_dir), load_catalogue()
    renderer = FurnitureRenderer(size, size, textures)

    def scene_frames(seed: int) -> int:
        rng = np.random.default_rng([seed, rank])
        return len(renderer.render(sample_furniture_scene(rng, catalogue, size, size, len(textures)), 7))

    for seed in (-1, -2):  # warm-up: shader compilation, first models
        scene_frames(2**31 + seed)
    barrier.wait()
    start, cpu, times = time.monotonic(), time.process_time(), []
    seed = 0
    while len(times) < len(seeds):
        t = time.perf_counter()
        n = scene_frames(seed)
        times += [(time.perf_counter() - t) / max(n, 1)] * n
        seed += 1
    return rank, start, time.monotonic(), times, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print per-worker latency and total frames/s."""
    from edgedepth_train.data.synthetic import DEFAULT_TEXTURE_DIR

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", choices=("procedural", "furniture"), default="procedural")
    ap.add_argument("--size", type=int, default=256, help="frame height and width in pixels")
    ap.add_argument("--frames", type=int, default=300, help="frames to render in total")
    ap.add_argument("--workers", type=int, default=2, help="worker processes")
    ap.add_argument(
        "--texture-dir", default=str(DEFAULT_TEXTURE_DIR), help="texture folder, or 'none' for procedural"
    )
    args = ap.parse_args(argv)
    texture_dir = None if args.texture_dir.lower() == "none" else args.texture_dir

    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(args.workers), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                r,
                args.workers,
                list(range(r, args.frames, args.workers)),
                args.size,
                texture_dir,
                args.scenes,
                barrier,
                queue,
            ),
        )
        for r in range(args.workers)
    ]
    for p in procs:
        p.start()
    results = sorted(queue.get() for _ in procs)
    for p in procs:
        p.join()
    failed = [f"worker {r[0]}: {r[4]}" for r in results if isinstance(r[4], str)]
    if failed:
        raise SystemExit("renderer_fps failed: " + "; ".join(failed))

    print(
        f"renderer_fps: {args.scenes}, {args.frames} frames of {args.size}x{args.size}, {args.workers} worker process(es), "
        f"1 OpenCV thread each, textures: {texture_dir or 'procedural'}"
    )
    for rank, start, end, times, cpu in results:
        ms = np.array(times) * 1e3
        print(
            f"  worker {rank}: {len(ms)} frames, median {np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, "
            f"{len(ms) / (end - start):.1f} frames/s, CPU time {cpu * 1e3 / len(ms):.1f} ms/frame"
        )
    wall = max(r[2] for r in results) - min(r[1] for r in results)
    frames = sum(len(r[3]) for r in results)
    all_ms = np.concatenate([r[3] for r in results]) * 1e3
    print(
        f"  median latency {np.median(all_ms):.1f} ms/frame "
        f"({1000 / np.median(all_ms):.1f} frames/s per process at the median)"
    )
    print(f"total: {frames / wall:.1f} frames/s ({frames} frames in {wall:.2f} s wall)")


if __name__ == "__main__":
    main()
