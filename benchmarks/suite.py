"""A whole benchmark run: per backend the machine's ceiling and the latency matrix, then the stream, the
preprocessing and the per-model memory, gathered into one JSON-ready document."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from edgedepth.backends import BackendKind
from edgedepth.errors import EdgeDepthError
from edgedepth.fileio import file_sha256

from .config import BenchmarkConfig, ModelEntry
from .latency import GOAL_RATIO, REFERENCE_KEY, expected_calls, measure_backend, open_models
from .memory import run_probe
from .pipeline import benchmark_frames, cpu_rows, cuda_rows, first_frame, measure_stream, open_estimator
from .reference import default_cache_dir, reference_hw, reference_onnx, vit_flops
from .reference.peak import matmul_peak
from .report import machine_info

SCHEMA = "edgedepth-benchmark/1"
PROBE_START_S = 3.0  # a fresh interpreter importing a backend, for the duration estimate

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def models_for(cfg: BenchmarkConfig, kind: BackendKind) -> list[ModelEntry]:
    return [m for m in cfg.models if m.is_engine == (kind is BackendKind.TENSORRT)]


def reference_for(cfg: BenchmarkConfig, kind: BackendKind, onnx_path: Path | None) -> tuple[Path | None, str]:
    if "reference" in cfg.skip:
        return None, "skipped (--skip reference)"
    if kind is BackendKind.TENSORRT:
        if cfg.reference_engine is None:
            return (
                None,
                f"no TensorRT engine of the reference: build one from {onnx_path} and pass --reference-engine",
            )
        return cfg.reference_engine, "the reference engine given with --reference-engine"
    return onnx_path, "the reference ONNX file"


def estimate_seconds(cfg: BenchmarkConfig, first: list[dict[str, Any]], n_backends: int) -> float:
    """The whole run's duration from the first cell's latencies: ours scaled by pixels x batch, the
    reference by its FLOPs (attention grows faster than the pixel count), memory probes and streams added."""
    (h0, w0), b0 = first[0]["input_hw"], first[0]["batch"]
    ours_ms = [r["latency_ms"]["p50"] for r in first if "error" not in r]
    ref = next((r["reference"] for r in first if r.get("reference")), None)
    memory, stream = "memory" not in cfg.skip, "stream" not in cfg.skip
    total_ms = 0.0
    for h, w in cfg.sizes:
        for b in cfg.batches:
            calls = expected_calls(cfg.runs, cfg.warmup, cfg.rounds) + (cfg.warmup + cfg.memory_runs) * memory
            if stream and b == cfg.batches[0]:
                calls += cfg.stream_rounds * (cfg.stream_runs + 1 + (cfg.stream_frames or 120))
            total_ms += sum(ms * b * h * w / (b0 * h0 * w0) for ms in ours_ms) * calls
            if ref is not None:
                work = vit_flops(reference_hw((h, w)), b, cfg.reference) / vit_flops(
                    tuple(ref["input_hw"]), b0, cfg.reference
                )
                ref_calls = expected_calls(cfg.ref_runs, cfg.ref_warmup, cfg.rounds, rewarm=False)
                ref_calls += (1 + min(cfg.memory_runs, cfg.ref_runs)) * memory
                total_ms += ref["latency_ms"]["p50"] * work * ref_calls
    probes = (len(ours_ms) + (ref is not None)) * PROBE_START_S * memory
    return n_backends * (total_ms / 1e3 + probes)


def run_suite(cfg: BenchmarkConfig, command: str, log: Log = _stderr) -> dict[str, Any]:
    """Measure everything ``cfg`` asks for; the results document (see report.py for its layout)."""
    started = time.perf_counter()
    cv2.setNumThreads(cfg.threads)
    frame = first_frame(cfg.video)
    cache = cfg.cache_dir or default_cache_dir()
    skipped: list[dict[str, str]] = []
    ref_onnx = None
    timing = "latency" not in cfg.skip
    if timing and "reference" not in cfg.skip:
        log(f"reference {cfg.reference.name}: building or reading its ONNX file in {cache}")
        ref_onnx = reference_onnx(cfg.reference, cache)
    peaks: dict[str, Any] = {}
    latency: list[dict[str, Any]] = []
    references: dict[str, str] = {}
    estimated: list[float] = []
    failed: set[BackendKind] = set()
    for kind in cfg.backends:
        if "peak" not in cfg.skip and kind is not BackendKind.TENSORRT and timing:
            peaks[kind.value] = matmul_peak(kind, cfg.threads, cache)
            log(f"{kind}: fp32 MatMul ceiling {peaks[kind.value]['gflops_per_s']:.1f} GFLOP/s")
    # The machine's ceiling is the best any backend reaches; each row's GFLOP/s is set against it.
    machine_peak = max((p["gflops_per_s"] for p in peaks.values()), default=None)
    for kind in cfg.backends if timing else ():
        ref_path, references[kind.value] = reference_for(cfg, kind, ref_onnx)
        if ref_path is None:
            skipped.append({"what": f"reference on {kind.value}", "reason": references[kind.value]})
        try:
            opened = open_models(cfg, kind, models_for(cfg, kind), ref_path)
        except EdgeDepthError as exc:  # e.g. a model this backend cannot compile: the others still run
            skipped.append({"what": f"latency on {kind.value}", "reason": str(exc)})
            log(f"{kind}: cannot open the models: {exc}")
            failed.add(kind)
            continue

        def on_cell(rows: list[dict[str, Any]], kind: BackendKind = kind) -> None:
            log("  " + cell_line(rows))
            if not estimated and rows and "error" not in rows[0]:
                estimated.append(estimate_seconds(cfg, rows, len(cfg.backends)))
                log(f"expected duration: about {estimated[0] / 60:.1f} min (from this cell, scaled by FLOPs)")

        log(
            f"{kind}: latency, {len(cfg.sizes)} size(s) x {len(cfg.batches)} batch(es), {cfg.rounds} round(s)"
        )
        try:
            latency += measure_backend(cfg, kind, opened, frame, machine_peak, on_cell)
        finally:
            for o in opened:
                o.backend.close()
    working = replace(cfg, backends=tuple(k for k in cfg.backends if k not in failed))
    stream = measure_streams(working, log) if "stream" not in cfg.skip else []
    preprocess = measure_preprocess(cfg, frame, skipped) if "preprocess" not in cfg.skip else []
    if "memory" not in cfg.skip and timing:  # memory is reported per latency cell
        attach_memory(working, latency, ref_onnx, log)
    for part in sorted(cfg.skip):
        skipped.append({"what": part, "reason": f"--skip {part}"})
    return {
        "schema": SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "duration_s": time.perf_counter() - started,
        "estimated_duration_s": estimated[0] if estimated else None,
        "machine": machine_info(),
        "settings": settings(cfg),
        "models": [model_info(m) for m in cfg.models],
        "reference": reference_info(cfg, ref_onnx, references),
        "peak": {"machine_gflops_per_s": machine_peak, "per_backend": peaks},
        "latency": latency,
        "stream": stream,
        "preprocess": preprocess,
        "skipped": skipped,
    }


def cell_line(rows: list[dict[str, Any]]) -> str:
    """One progress line per cell: each model's p50 and its ratio against the reference."""
    h, w = rows[0]["input_hw"]
    parts = []
    for row in rows:
        if "error" in row:
            parts.append(f"{row['model']}: {row['error']}")
            continue
        ratio = f", {row['speed_ratio']:.1f}x ref" if row.get("speed_ratio") else ""
        parts.append(f"{row['model']} {row['latency_ms']['p50']:.2f} ms{ratio}")
    ref = next((r["reference"] for r in rows if r.get("reference")), None)
    if ref:
        parts.append(f"reference {ref['input_hw'][0]}x{ref['input_hw'][1]} {ref['latency_ms']['p50']:.1f} ms")
    return f"{rows[0]['backend']} {h}x{w} batch {rows[0]['batch']}: " + "; ".join(parts)


def measure_streams(cfg: BenchmarkConfig, log: Log) -> list[dict[str, Any]]:
    """Stream against model-only FPS per backend, model and size (long side = the size's longer side)."""
    rows = []
    for kind in cfg.backends:
        for entry in models_for(cfg, kind):
            for long_side in dict.fromkeys(max(hw) for hw in cfg.sizes):
                base: dict[str, Any] = {
                    "backend": kind.value,
                    "model": entry.label,
                    "precision": entry.precision,
                }
                base["long_side"] = long_side
                try:
                    with open_estimator(
                        entry.path, kind.value, entry.precision, cfg.threads, long_side
                    ) as est:
                        result = measure_stream(
                            est,
                            cfg.video,
                            cfg.stream_rounds,
                            cfg.stream_runs,
                            cfg.warmup,
                            cfg.stream_frames or None,
                        )
                except Exception as exc:  # recorded in the row; the other rows still run
                    rows.append(base | {"error": f"{type(exc).__name__}: {exc}"})
                    continue
                rows.append(base | {"video": cfg.video.name} | result)
                log(f"  stream {kind} {entry.label} long side {long_side}: {result['stream_fps']:.1f} FPS, "
                    f"{result['stream_fraction_of_model_only']:.0%} of model-only")  # fmt: skip
    return rows


def measure_preprocess(
    cfg: BenchmarkConfig, frame: Any, skipped: list[dict[str, str]]
) -> list[dict[str, Any]]:
    spec = next((m.spec for m in cfg.models if m.spec is not None), None)
    if spec is None:
        skipped.append({"what": "preprocess", "reason": "no ONNX model gives a spec"})
        return []
    frames = benchmark_frames(frame)
    rows = cpu_rows(spec, frames, list(cfg.sizes), cfg.preprocess_runs, warmup=3)
    gpu_rows, note = cuda_rows(spec, frames, list(cfg.sizes), cfg.preprocess_runs, warmup=3)
    if not gpu_rows:
        skipped.append({"what": "preprocess on CUDA", "reason": note})
    return rows + gpu_rows


def attach_memory(
    cfg: BenchmarkConfig, latency: list[dict[str, Any]], ref_onnx: Path | None, log: Log
) -> None:
    """Run one fresh-process probe per backend and model; add its readings to the matching rows."""
    for kind in cfg.backends:
        cells = [[b, h, w] for h, w in cfg.sizes for b in cfg.batches]
        jobs: list[tuple[str, Path, str, int, int]] = [
            (m.label, m.path, m.precision, cfg.warmup, cfg.memory_runs) for m in models_for(cfg, kind)
        ]
        ref_path, _ = reference_for(cfg, kind, ref_onnx)
        if ref_path is not None:
            jobs.append((REFERENCE_KEY, ref_path, "fp32", 1, min(cfg.memory_runs, cfg.ref_runs)))
        for key, path, precision, warmup, runs in jobs:
            job_cells = [[b, *reference_hw((h, w))] for b, h, w in cells] if key == REFERENCE_KEY else cells
            request = {
                "model": str(path),
                "backend": kind.value,
                "threads": cfg.threads,
                "precision": precision,
            }
            result = run_probe(request | {"cells": job_cells, "warmup": warmup, "runs": runs})
            log(f"  memory {kind} {key}: " + (result.get("error") or f"load {result['load_rss_mb']:.0f} MiB"))
            for row in latency:
                if row["backend"] != kind.value or "error" in row:
                    continue
                if key == REFERENCE_KEY and row.get("reference"):
                    row["reference"]["memory"] = _cell_memory(
                        result, row["reference"]["input_hw"], row["batch"]
                    )
                elif row["model"] == key:
                    row["memory"] = _cell_memory(result, row["input_hw"], row["batch"])


def _cell_memory(result: dict[str, Any], hw: list[int], batch: int) -> dict[str, Any]:
    if "error" in result:
        return {"error": result["error"]}
    cell: dict[str, Any] = next(
        (c for c in result["cells"] if c["input_hw"] == list(hw) and c["batch"] == batch), {}
    )
    if "error" in cell:
        return {"error": cell["error"]}
    keys = (
        "peak_rss_mb",
        "peak_is_per_cell",
        "warmup_rss_mb",
        "rss_growth_mb",
        "runs",
        "gpu_used_mb",
        "tegrastats",
    )
    out = {"load_rss_mb": result["load_rss_mb"], "rss_baseline_mb": result["rss_baseline_mb"]}
    return out | {k: cell.get(k) for k in keys} | {"gpu_memory": result.get("gpu_memory")}


def settings(cfg: BenchmarkConfig) -> dict[str, Any]:
    out = {k: v for k, v in asdict(cfg).items() if k not in ("models", "reference", "skip")}
    out |= {"backends": [k.value for k in cfg.backends], "skip": sorted(cfg.skip), "video": cfg.video.name}
    out |= {"sizes": [list(hw) for hw in cfg.sizes], "batches": list(cfg.batches), "goal_ratio": GOAL_RATIO}
    for key in ("reference_engine", "cache_dir"):
        out[key] = str(out[key]) if out[key] is not None else None
    out["opencv_threads"] = cfg.threads
    return out


def model_info(entry: ModelEntry) -> dict[str, Any]:
    info: dict[str, Any] = {"label": entry.label, "file": entry.path.name, "precision": entry.precision}
    info["size_bytes"] = entry.path.stat().st_size
    info["sha256"] = file_sha256(entry.path)
    if entry.spec is not None:
        info |= {"name": entry.spec.name, "size_multiple": entry.spec.size_multiple}
        info["dynamic_shape"] = entry.spec.dynamic_shape
    return info


def reference_info(
    cfg: BenchmarkConfig, onnx_path: Path | None, per_backend: dict[str, str]
) -> dict[str, Any]:
    return {
        "architecture": "ViT encoder with DINOv2-Small dimensions (Depth Anything V2 Small's encoder), random weights",
        "config": asdict(cfg.reference),
        "is_vit_s14": cfg.reference == type(cfg.reference)(),
        "onnx_file": onnx_path.name if onnx_path is not None else None,
        "parameters": reference_parameters(cfg),
        "precision": "fp32 (every row's ratio is against this fp32 reference, INT8 rows included)",
        "size_rule": "our input size rounded to the nearest multiple of the patch (256->252, 384->378, 512->518)",
        "goal": f"the default model at least {GOAL_RATIO:g}x the reference's speed at equal input size",
        "per_backend": per_backend,
    }


def reference_parameters(cfg: BenchmarkConfig) -> int:
    """Parameter count from the configuration (no torch needed)."""
    c = cfg.reference
    block = 4 * c.width * c.width + 4 * c.width + 2 * c.width * c.mlp + c.mlp + c.width + 6 * c.width
    embed = 3 * c.patch * c.patch * c.width + c.width + c.width + (1 + c.base_grid**2) * c.width
    return embed + c.depth * block + 2 * c.width
