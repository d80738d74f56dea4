"""Memory readings: the process's RSS and peak RSS, GPU memory through pycuda, and Jetson's tegrastats.

Linux gives the current and peak RSS in ``/proc/self/status`` (VmRSS, VmHWM), and writing "5" to
``/proc/self/clear_refs`` resets the peak to the current RSS (Linux 4.0 and later), so one process can
read the peak of each stage of its work. Elsewhere psutil gives the RSS and ``resource`` the lifetime peak.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

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
