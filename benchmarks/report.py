"""Outputs of a run, and what it was measured on.

``results.json`` (everything), ``results.md`` (tables) and ``latency.png`` (a plot); every file is written
atomically. The plot needs matplotlib, an optional extra: it is imported here only, and when it is missing
the PNG is skipped with a note. ``machine_info`` records the CPU, cores, memory, OS, library versions and
GPU the numbers were measured on.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import math
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import edgedepth
from edgedepth.cpu import cpu_isa_flags
from edgedepth.fileio import atomic_write_bytes

LIBRARIES = ("numpy", "opencv-python", "onnx", "onnxruntime", "openvino", "tensorrt", "pycuda", "torch")
JETSON_RELEASE = Path("/etc/nv_tegra_release")


def library_version(dist: str) -> str | None:
    """The installed version of a distribution, or None; TensorRT from JetPack has no pip metadata."""
    for name in (dist, f"{dist}-cu12", f"{dist}-gpu"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    module = {"opencv-python": "cv2"}.get(dist, dist)
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:  # absent, or a namespace folder such as type stubs only
        return None
    try:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))
    except Exception:  # a broken install still says what is there
        return "installed, fails to import"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for key in ("model name", "Hardware", "Model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def memory_total_mb() -> float | None:
    try:
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return int(match.group(1)) / 1024
    try:
        import psutil
    except ImportError:
        return None
    return psutil.virtual_memory().total / 2**20


def physical_cores() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_count(logical=False)


def gpu_name() -> str | None:
    """GPU 0's name through pycuda, or None (no pycuda, no driver or no GPU)."""
    if importlib.util.find_spec("pycuda") is None:
        return None
    try:
        import pycuda.driver as cuda

        cuda.init()
        return str(cuda.Device(0).name()) if cuda.Device.count() else None
    except Exception:
        return None


def machine_info() -> dict[str, Any]:
    """The machine section of the results."""
    return {
        "cpu_model": cpu_model(),
        "cpu_isa_flags": cpu_isa_flags(),
        "cpu_logical_cores": os.cpu_count(),
        "cpu_physical_cores": physical_cores(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_total_mb": memory_total_mb(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "edgedepth": edgedepth.__version__,
        "versions": {dist: library_version(dist) for dist in LIBRARIES},
        "gpu": gpu_name(),
        "jetson": JETSON_RELEASE.read_text().strip() if JETSON_RELEASE.is_file() else None,
    }


def _clean(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(_clean(document), indent=2, allow_nan=False) + "\n"


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _hw(hw: list[int]) -> str:
    return f"{hw[1]}x{hw[0]}" if hw[0] != hw[1] else f"{hw[0]}²"


def latency_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | model | input | batch | p50 ms | p90 ms | p99 ms | mean ± std ms | FPS | GFLOP/s (of peak) "
        "| peak RSS MiB | load RSS MiB | reference p50 ms (input) | × reference |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        head = f"| {row['backend']} | {row['model']} | {_hw(row['input_hw'])} | {row['batch']} "
        if "error" in row:
            lines.append(head + f"| {row['error']} |" + " |" * 9)
            continue
        lat, mem, ref = row["latency_ms"], row.get("memory") or {}, row.get("reference")
        share = f" ({row['fraction_of_peak']:.0%})" if row.get("fraction_of_peak") else ""
        ref_text = f"{ref['latency_ms']['p50']:.1f} ({_hw(ref['input_hw'])})" if ref else "–"
        ratio = f"{row['speed_ratio']:.1f}×" if row.get("speed_ratio") else "–"
        rounds = row.get("speed_ratio_rounds") or []
        if len(rounds) > 1:
            ratio += f" ({min(rounds):.1f}-{max(rounds):.1f})"
        lines.append(
            head
            + f"| {lat['p50']:.2f} | {lat['p90']:.2f} | {lat['p99']:.2f} | {lat['mean']:.2f} ± {lat['std']:.2f} "
            f"| {row['fps']:.1f} | {_num(row.get('gflops_per_s'))}{share} | {_num(mem.get('peak_rss_mb'), 0)} "
            f"| {_num(mem.get('load_rss_mb'), 0)} | {ref_text} | {ratio} |"
        )
    return lines


def stream_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | model | video -> input | stream FPS | model-only FPS | stream / model-only | dropped |",
        "|---|---|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        head = f"| {row['backend']} | {row['model']} "
        if "error" in row:
            lines.append(head + f"| long side {row['long_side']}: {row['error']} | | | | |")
            continue
        (sh, sw), (h, w) = row["source_hw"], row["input_hw"]
        lines.append(
            head + f"| {sw}x{sh} -> {w}x{h} | {row['stream_fps']:.1f} | {row['model_only_fps']:.1f} "
            f"| {row['stream_fraction_of_model_only']:.0%} | {row['dropped']} |"
        )
    return lines


def preprocess_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| device | source | input | p50 ms | p99 ms | timer |", "|---|---|---|--:|--:|---|"]
    for row in rows:
        lat = row["latency_ms"]
        lines.append(
            f"| {row['device']} | {row['source']} | {_hw(row['input_hw'])} | {lat['p50']:.2f} | {lat['p99']:.2f} "
            f"| {row['timer']} |"
        )
    return lines


def markdown(document: dict[str, Any]) -> str:
    """The tables a README shows, headed by the command and the machine."""
    m, s, ref = document["machine"], document["settings"], document["reference"]
    versions = ", ".join(
        f"{k} {v}" for k, v in m["versions"].items() if v and k in ("onnxruntime", "openvino", "tensorrt")
    )
    lines = [
        "## Benchmark",
        "",
        f"`{document['command']}`",
        "",
        f"{m['cpu_model']}, {m['cpu_logical_cores']} logical / {m['cpu_physical_cores'] or '?'} physical cores"
        + (f" ({' '.join(m['cpu_isa_flags'])})" if m.get("cpu_isa_flags") else "")
        + (f", GPU {m['gpu']}" if m.get("gpu") else "")
        + f"; {s['threads']} threads; {versions}; {document['created']}.",
        "",
    ]
    if document["latency"]:
        lines += [
            "### Model-only latency",
            "",
            *latency_table(document["latency"]),
            "",
            f"Latency over {s['rounds']} interleaved round(s) of {s['runs']} runs (reference: {s['ref_runs']}); "
            "FPS = batch / p50. × reference: the median over rounds of the reference's p50 over ours in the "
            "same round (range in brackets), so a slow spell of the machine moves both alike. Reference: "
            f"{ref['architecture']}, {ref['parameters'] / 1e6:.1f} M parameters, FP32, input rounded to a multiple "
            f"of {ref['config']['patch']}. Goal: {ref['goal']}. Peak RSS: a fresh process holding only that model.",
        ]
    if document["stream"]:
        lines += ["", f"### Stream on {s['video']}", "", *stream_table(document["stream"])]
    if document["preprocess"]:
        lines += ["", "### Preprocessing alone", "", *preprocess_table(document["preprocess"])]
    if document["peak"]["per_backend"]:
        lines += [
            "",
            "### Machine ceiling (fp32 MatMul under each backend)",
            "",
            "| backend | GFLOP/s |",
            "|---|--:|",
        ]
        lines += [f"| {k} | {v['gflops_per_s']:.1f} |" for k, v in document["peak"]["per_backend"].items()]
        lines += ["", "GFLOP/s (of peak) in the latency table is set against the best of these."]
    if document["skipped"]:
        lines += [
            "",
            "Not measured: " + "; ".join(f"{s['what']} ({s['reason']})" for s in document["skipped"]) + ".",
        ]
    return "\n".join(lines) + "\n"


def plot_png(document: dict[str, Any]) -> bytes | None:
    """Latency p50 against input side, one line per backend and precision (one panel per batch): a colour
    per backend, a marker and line style per model, dashed with crosses for the reference. None when
    matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter
    except ImportError:
        return None
    rows = [r for r in document["latency"] if "error" not in r]
    batches = sorted({r["batch"] for r in rows}) or [1]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    styles = ["-", "-.", ":", (0, (5, 1, 1, 1))]
    # a marker per model: with one input size a line is one point, told apart by its marker
    markers = ["o", "s", "^", "D"]
    fig, axes = plt.subplots(1, len(batches), figsize=(8.5 * len(batches), 4.2), squeeze=False)
    for ax, batch in zip(axes[0], batches, strict=True):
        lines: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in (r for r in rows if r["batch"] == batch):
            side = math.sqrt(r["input_hw"][0] * r["input_hw"][1])
            lines.setdefault((r["backend"], r["model"]), []).append((side, r["latency_ms"]["p50"]))
            if r.get("reference"):  # drawn at our size; its own is the nearest multiple of its patch
                lines.setdefault((r["backend"], "reference"), []).append(
                    (side, r["reference"]["latency_ms"]["p50"])
                )
        for (backend, model), points in lines.items():
            xs, ys = zip(*sorted(set(points)), strict=True)
            style = "--" if model == "reference" else styles[models.index(model) % len(styles)]
            marker = "X" if model == "reference" else markers[models.index(model) % len(markers)]
            label = f"{backend} {'reference (fp32, side rounded to 14)' if model == 'reference' else model}"
            ax.plot(xs, ys, linestyle=style, marker=marker, markersize=7, color=f"C{backends.index(backend)}",
                    label=label)  # fmt: skip
        ax.set_yscale("log")
        for axis_ticks in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_ticks(FormatStrFormatter("%g"))
        ax.set_xlabel("input side (pixels)")
        ax.set_ylabel("latency p50 (ms)")
        ax.set_title(f"batch {batch}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: it hides no point
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def write_outputs(document: dict[str, Any], out_dir: Path, plot: bool = True) -> dict[str, Path | str]:
    """Write the JSON, the markdown and (when asked and possible) the PNG; what was written, or why not."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path | str] = {
        "json": atomic_write_bytes(out_dir / "results.json", to_json(document).encode()),
        "markdown": atomic_write_bytes(out_dir / "results.md", markdown(document).encode()),
    }
    if not plot:
        written["png"] = "not drawn (--no-plot)"
        return written
    png = plot_png(document)
    written["png"] = (
        atomic_write_bytes(out_dir / "latency.png", png)
        if png is not None
        else "not drawn: matplotlib is not installed (pip install matplotlib)"
    )
    return written
