"""Memory readings: the process's RSS and peak RSS, GPU memory through pycuda, and Jetson's tegrastats.

Linux gives the current and peak RSS in ``/proc/self/status`` (VmRSS, VmHWM), and writing "5" to
``/proc/self/clear_refs`` resets the peak to the current RSS (Linux 4.0 and later), so one process can
read the peak of each stage of its work. Elsewhere psutil gives the RSS and ``resource`` the lifetime peak.

The probe: memory of one model on one backend, measured in a fresh process that loads nothing else.

    python -m benchmarks.memory '{"model": "m.onnx", "backend": "onnxruntime", "threads": 2,
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
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgedepth.backends import BackendKind, BackendOptions, backend_status, open_backend
from edgedepth.model_file import read_onnx_spec

MIB = 1024 * 1024
STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        text = STATUS.read_text()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


def rss_mb() -> float:
    """The process's resident set size now, in MiB."""
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb / 1024
    import psutil  # not Linux: psutil (pip install psutil)

    return psutil.Process().memory_info().rss / MIB


def peak_rss_mb() -> float:
    """The process's peak RSS in MiB: since the last ``reset_peak_rss`` where that works, else lifetime."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS; False where the kernel offers no way to (peaks then accumulate)."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


# -- tegrastats (Jetson) ------------------------------------------------------------------------------------
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_TEMP = re.compile(r"\b([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")


def parse_tegrastats(line: str) -> dict[str, Any]:
    """One tegrastats line -> RAM and swap in MiB, GPU load (GR3D) and CPU loads in %, temperatures in C.

    On a Jetson the GPU shares the RAM, so ``ram_used_mb`` is also the GPU's memory. Fields a line lacks
    are left out; CPU cores that are off read as None.
    """
    out: dict[str, Any] = {}
    if m := _RAM.search(line):
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _SWAP.search(line):
        out["swap_used_mb"], out["swap_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _GR3D.search(line):
        out["gpu_load_percent"] = int(m.group(1))
    if m := _CPU.search(line):
        loads = []
        for core in m.group(1).split(","):
            load = re.match(r"\s*(\d+)%", core)
            loads.append(int(load.group(1)) if load else None)
        out["cpu_load_percent"] = loads
    temps = {name: float(value) for name, value in _TEMP.findall(line) if value not in ("-256",)}
    if temps:
        out["temperatures_c"] = temps
    return out


def summarize_tegrastats(lines: list[str]) -> dict[str, Any]:
    """Peak RAM use and GPU load over the sampled lines (empty when none parsed)."""
    samples = [s for s in map(parse_tegrastats, lines) if "ram_used_mb" in s]
    if not samples:
        return {}
    out: dict[str, Any] = {
        "samples": len(samples),
        "ram_used_mb_peak": max(s["ram_used_mb"] for s in samples),
        "ram_total_mb": samples[0]["ram_total_mb"],
    }
    loads = [s["gpu_load_percent"] for s in samples if "gpu_load_percent" in s]
    if loads:
        out["gpu_load_percent_mean"] = sum(loads) / len(loads)
    return out


class TegrastatsSampler:
    """Run ``tegrastats`` while the block runs (Jetson only); ``summary`` holds the parsed result after it.

    Where the binary is absent the block runs unchanged and ``summary`` stays None. The child process is
    always stopped when the block ends.
    """

    def __init__(self, interval_ms: int = 100) -> None:
        self.binary = shutil.which("tegrastats")
        self.interval_ms = interval_ms
        self.summary: dict[str, Any] | None = None
        self._process: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    def __enter__(self) -> TegrastatsSampler:
        if self.binary is not None:
            self._process = subprocess.Popen(
                [self.binary, "--interval", str(self.interval_ms)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        return self

    def _read(self) -> None:
        stdout = self._process.stdout if self._process is not None else None
        for line in stdout or ():
            self._lines.append(line)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.summary = summarize_tegrastats(self._lines)


# -- CUDA device memory -------------------------------------------------------------------------------------
class CudaMemory:
    """Device-wide memory in use (total - free, from pycuda's ``mem_get_info``) on GPU 0.

    It pushes GPU 0's primary context (the one the TensorRT backend uses, so no extra context takes
    memory) only around each reading; the readings are device-wide, so their differences are what counts.
    """

    def __init__(self) -> None:
        import pycuda.driver as cuda

        cuda.init()
        self._cuda = cuda
        self._context = cuda.Device(0).retain_primary_context()
        self.device_name: str = cuda.Device(0).name()

    def used_mb(self) -> float:
        self._context.push()
        try:
            free, total = self._cuda.mem_get_info()
        finally:
            self._context.pop()
        return (total - free) / MIB

    def close(self) -> None:
        self._context.detach()


def open_cuda_memory() -> tuple[CudaMemory | None, str]:
    """A CudaMemory, or None and the reason (pycuda missing, no GPU, driver error)."""
    try:
        meter = CudaMemory()
    except ImportError as exc:
        return None, f"pycuda is not installed ({exc}); pip install edgedepth[tensorrt]"
    except Exception as exc:  # pycuda.driver.Error and friends: no device, no driver
        return None, f"no usable CUDA device ({type(exc).__name__}: {exc})"
    return meter, f"pycuda mem_get_info on {meter.device_name}"


PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """Measure one model; ``request`` as in the module's docstring (``precision`` optional)."""
    kind = BackendKind(request["backend"])
    path = Path(request["model"])
    status = backend_status(kind)  # imports the backend's library before the baseline
    if not status.available:
        return {"error": f"backend {kind.value} unavailable: {status.reason}"}
    spec = read_onnx_spec(path) if path.suffix.lower() == ".onnx" else None
    options = BackendOptions(threads=request["threads"])
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
    command = [sys.executable, "-m", f"{__package__}.memory", json.dumps(request)]
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
