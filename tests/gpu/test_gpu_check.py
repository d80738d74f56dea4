"""The prepared GPU check (tests/gpu/device_check.sh): what it does on a machine without a GPU, and its report.

The GPU part itself runs only on a GPU machine; here the script must stop cleanly at "no GPU", naming any
carried file that is missing with the command that fetches it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "gpu" / "device_check.sh"


def load_check_module():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "tests" / "gpu" / "device_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_the_script_refuses_quickly_and_names_missing_files(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: the script would run the GPU checks")
    env = {**os.environ, "WHEELS": str(tmp_path / "wheels")}
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "no GPU: nothing to check" in proc.stdout
    assert "pip download --no-deps --no-binary pycuda pycuda==" in proc.stdout
    assert "siphash24" in proc.stdout


def test_report_lists_cases_graph_and_timing(tmp_path: Path) -> None:
    check = load_check_module()
    report = {
        "machine": {"gpu": "NVIDIA Test, 580.1, 1 MiB", "nvcc": "Build cuda_13.0", "python": "3.12"},
        "kernel": [
            {"case": "a", "precision": "fp32", "max_abs_err": 2e-6, "ok": True},
            {"case": "b", "precision": "fp16", "max_abs_err": 9e-3, "ok": False},
        ],
        "graph": {"same frame": {"identical": True, "max_abs_diff": 0.0}},
        "timing": [
            {"src": "640x480", "out": "256x256", "upload_ms": 0.1, "kernel_ms": 0.01,
             "upload_and_kernel_ms": 0.11, "cpu_reference_ms": 1.2, "kernel_speedup_vs_cpu": 120.0}
        ],
    }  # fmt: skip
    check.write_report(tmp_path, report)
    text = (tmp_path / "device_check.md").read_text()
    assert "1/2 cases within tolerance" in text and "FAILED: b fp16" in text
    assert "CUDA graph replay, same frame: identical" in text and "| 640x480 -> 256x256 | 0.1 |" in text
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "gpu" / "device_check.py"),
            "--note",
            str(tmp_path),
            "memcheck",
            "clean",
        ],
        check=True,
    )
    assert json.loads((tmp_path / "device_check.json").read_text())["notes"] == {"memcheck": "clean"}
    assert "memcheck: clean" in (tmp_path / "device_check.md").read_text()


def test_kernel_cases_cover_real_frames_odd_sizes_and_both_precisions() -> None:
    cases = load_check_module().kernel_cases(quick=False)
    names = " ".join(c[0] for c in cases)
    assert "demo frame" in names and "random 53x37" in names and "random 3840x2160" in names
    assert {c[3] for c in cases} == {"fp32", "fp16"}
    assert {c[2].resize_mode.value for c in cases} == {"letterbox", "stretch"}
