"""What the numbers were measured on: CPU, cores, memory, OS, library versions, GPU."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import edgedepth

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
