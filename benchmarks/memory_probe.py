"""Memory of one model on one backend, measured in a fresh process that loads nothing else.

    python -m benchmarks.memory_probe '{"model": "m.onnx", "backend": "onnxruntime", "threads": 2,
                                       "cells": [[1, 256, 256]], "warmup": 2, "runs": 10}'

The timing process holds every model and the reference at once, so its RSS says little about any one of
them. This process imports the backend's library, reads its RSS, loads the model (the load's RSS is the
difference), then for each cell, smallest first: resets the peak, runs the warm-up and the timed calls, and
reads the peak and the RSS growth from the end of the warm-up to the end of the runs. It prints one JSON
object on its last line. ``run_probe`` starts it and reads that line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.artifact import read_onnx_spec
from edgedepth.backends import BackendKind, BackendOptions, backend_status, open_backend

from .memory import TegrastatsSampler, open_cuda_memory, peak_rss_mb, reset_peak_rss, rss_mb

PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Measure one model; ``request`` as in the module's docstring (``precision`` optional)."""
    kind = BackendKind(request["backend"])
    path = Path(request["model"])
    status = backend_status(kind)  # imports the backend's library before the baseline
    if not status.available:
        return {"error": f"backend {kind.value} unavailable: {status.reason}"}
    spec = read_onnx_spec(path) if path.suffix.lower() == ".onnx" else None
    precision = request.get("precision") or (spec.precision if spec is not None else "fp32")
    options = BackendOptions(precision=precision, threads=request["threads"])
    gpu, gpu_note = open_cuda_memory() if kind is BackendKind.TENSORRT else (None, "CPU backend")
    gpu_base = gpu.used_mb() if gpu is not None else None
    baseline = rss_mb()
    backend, _ = open_backend(path, spec, kind, options)  # type: ignore[arg-type]  # engines carry their spec
    loaded = rss_mb()
    out: dict[str, Any] = {
        "rss_baseline_mb": baseline,
        "load_rss_mb": loaded - baseline,
        "gpu_memory": gpu_note,
        "gpu_load_mb": gpu.used_mb() - gpu_base if gpu is not None and gpu_base is not None else None,
        "cells": [],
    }
    rng = np.random.default_rng(0)

    def gpu_used() -> float | None:
        return gpu.used_mb() - gpu_base if gpu is not None and gpu_base is not None else None

    try:
        for batch, h, w in sorted(request["cells"], key=lambda c: c[0] * c[1] * c[2]):
            x = rng.standard_normal((batch, 3, h, w), dtype=np.float32)
            reset = reset_peak_rss()
            try:
                with TegrastatsSampler() as tegrastats:
                    before = rss_mb()
                    for _ in range(max(1, request["warmup"])):
                        backend.infer(x)
                    warm = rss_mb()
                    for _ in range(request["runs"]):
                        backend.infer(x)
                    end = rss_mb()
            except Exception as exc:  # this cell only (e.g. a fixed-size model); the others still run
                error = f"{type(exc).__name__}: {exc}"
                out["cells"].append({"batch": batch, "input_hw": [h, w], "error": error})
                continue
            out["cells"].append(
                {
                    "batch": batch,
                    "input_hw": [h, w],
                    "peak_rss_mb": peak_rss_mb(),
                    "peak_is_per_cell": reset,
                    "rss_mb": end,
                    "warmup_rss_mb": warm - before,
                    "rss_growth_mb": end - warm,
                    "runs": request["runs"],
                    "gpu_used_mb": gpu_used(),
                    "tegrastats": tegrastats.summary,
                }
            )
    finally:
        backend.close()
        if gpu is not None:
            gpu.close()
    return out


def run_probe(request: dict[str, Any], timeout_s: float = 1800.0) -> dict[str, Any]:
    """Run ``probe`` in a fresh interpreter; its result, or ``{"error": ...}`` when the process failed."""
    env = dict(os.environ)
    if __package__ == "benchmarks":  # run from a checkout: the child must find the folder too
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", f"{__package__}.memory_probe", json.dumps(request)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"the memory probe took over {timeout_s:.0f} s and was stopped"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return {"error": f"the memory probe failed (exit {done.returncode}): {tail}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(probe(json.loads(args[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
