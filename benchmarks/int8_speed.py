"""INT8 against FP32 latency of the embedded default model, under ONNX Runtime and OpenVINO, in one process.

    python -m benchmarks.int8_speed                      # 256x256, batch 1, the shipped fp32 and int8 files
    python -m benchmarks.int8_speed --rounds 40 --block 5 --threads 2

All four runners (two backends x two precisions) are opened through edgedepth's own backend registry with
the options ``DepthEstimator(precision=...)`` uses and warmed up. Then, round after round, each runner (in a
rotating order) makes one untimed call, which brings its weights back into cache and wakes its threads after
the others ran, and ``--block`` timed back-to-back calls, as in a stream. Interleaving the rounds spreads
drifting machine load over all four alike; timing single calls between other models' calls would instead
measure cold caches (4 models of 6-20 MB each) and other pools' spinning threads. Reported: median and p90 of
``backend.infer`` per runner and the INT8 speed-up per backend; ``AUTO_PREFERENCE[Precision.INT8]`` in
``edgedepth/backends/base.py`` is set from this. It writes nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edgedepth import default_model_path
from edgedepth.artifact import read_onnx_spec
from edgedepth.backends.base import BackendKind, BackendOptions, open_backend
from edgedepth.preprocess import preprocess

BACKENDS = (BackendKind.ONNXRUNTIME, BackendKind.OPENVINO)


def measure(
    models: dict[str, Path], size: int, rounds: int, block: int, warmup: int, threads: int | None
) -> dict:
    """Median / p90 latency in ms per (backend, precision), timed in interleaved rounds."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    runners = {}
    for backend in BACKENDS:
        for precision, path in models.items():
            spec = read_onnx_spec(path)
            options = BackendOptions(precision=spec.precision, threads=threads)
            runners[(backend.value, precision)], _ = open_backend(path, spec, backend, options)
    x, _ = preprocess(image, next(iter(runners.values())).spec, (size, size))
    keys = list(runners)
    for key in keys:
        for _ in range(warmup):
            runners[key].infer(x)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            runners[key].infer(x)  # untimed: caches and threads back after the other runners
            for _ in range(block):
                t0 = time.perf_counter()
                runners[key].infer(x)
                times[key].append((time.perf_counter() - t0) * 1e3)
    for runner in runners.values():
        runner.close()
    return {
        key: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))}
        for key, v in times.items()
    }


def format_table(results: dict, models: dict[str, Path], size: int) -> str:
    lines = [
        f"latency at {size}x{size}, batch 1 (median / p90 ms)",
        f"{'backend':<12} {'fp32':>16} {'int8':>16} {'speed-up':>9}",
    ]
    for backend in BACKENDS:
        fp32, int8 = results[(backend.value, "fp32")], results[(backend.value, "int8")]
        lines.append(
            f"{backend.value:<12} {fp32['median_ms']:>7.2f} / {fp32['p90_ms']:>6.2f} "
            f"{int8['median_ms']:>7.2f} / {int8['p90_ms']:>6.2f} {fp32['median_ms'] / int8['median_ms']:>8.2f}x"
        )
    best = min(BACKENDS, key=lambda b: results[(b.value, "int8")]["median_ms"])
    sizes = ", ".join(f"{p} {path.stat().st_size / 1e6:.1f} MB" for p, path in models.items())
    lines.append(f"fastest for int8: {best.value}; model files: {sizes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fp32", type=Path, help="FP32 model (default: the embedded one)")
    ap.add_argument("--int8", type=Path, help="INT8 model (default: the embedded one)")
    ap.add_argument("--size", type=int, default=256, help="input height and width")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds over the four runners")
    ap.add_argument("--block", type=int, default=5, help="timed back-to-back calls per runner and round")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs per runner first")
    ap.add_argument("--threads", type=int, help="threads per backend (default: the backend's own)")
    args = ap.parse_args(argv)
    models = {
        "fp32": args.fp32 or default_model_path("fp32"),
        "int8": args.int8 or default_model_path("int8"),
    }
    results = measure(models, args.size, args.rounds, args.block, args.warmup, args.threads)
    print(format_table(results, models, args.size))


if __name__ == "__main__":
    main()
