"""mypy over the runtime and the engine builder, with TensorRT typed by ``tensorrt-stubs``.

tensorrt-stubs installs ``tensorrt/__init__.pyi`` without a ``py.typed`` marker, so mypy ignores it where it
is installed, and its pybind11-generated stubs contain two syntax defects (a parameter named ``in``; a
parameter without a default after defaulted ones). This test copies the stubs into a temporary folder with
exactly those two defects fixed and puts it on MYPYPATH; every type stays as the stubs declare it.

pycuda ships no type information: mypy sees it as an untyped import (``ignore_missing_imports``), so its
objects are ``Any``, and the TensorRT backend types every value it derives from them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _split_parameters(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def fix_stub_line(line: str) -> str:
    """Rename parameters called ``in``; give later parameters ``= ...`` once one has a default."""
    line = re.sub(r"([(,]\s*)in:", r"\1in_:", line)
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*->.*)$", line)
    if not match:
        return line
    seen_default, out = False, []
    for param in _split_parameters(match.group(2)):
        annotation_and_default = param.split(":", 1)[-1]
        if "=" in annotation_and_default:
            seen_default = True
        elif seen_default and param.strip() and not param.strip().startswith("*"):
            param += " = ..."
        out.append(param)
    return match.group(1) + ",".join(out) + match.group(3)


@pytest.fixture(scope="module")
def stub_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install edgedepth[test])")
    stubs = importlib.util.find_spec("tensorrt_stubs")
    if stubs is None or stubs.origin is None:
        pytest.skip(
            "tensorrt-stubs is not installed (pip install --no-deps tensorrt-stubs, as in the README)"
        )
    site = Path(stubs.origin).parents[1]
    out = tmp_path_factory.mktemp("stubs")
    for package in ("tensorrt", "tensorrt_bindings"):
        (out / package).mkdir()
        for stub in (site / package).glob("*.pyi"):
            text = "\n".join(fix_stub_line(line) for line in stub.read_text().splitlines())
            (out / package / stub.name).write_text(text + "\n")
    return out


def run_mypy(stub_path: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(stub_path)}
    cmd = [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", os.devnull, *targets]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def test_the_stubs_are_in_effect(stub_path: Path, tmp_path: Path) -> None:
    """A misspelt TensorRT call must fail: proves mypy checks against the stubs, not Any."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import tensorrt as trt\n\n\ndef f(e: trt.ICudaEngine) -> None:\n    e.execute_async_v4(0)\n"
    )
    out = run_mypy(stub_path, str(probe))
    assert 'has no attribute "execute_async_v4"' in out.stdout, out.stdout + out.stderr


def test_mypy_is_clean_on_the_runtime_the_quantizer_and_the_benchmarks(stub_path: Path) -> None:
    out = run_mypy(stub_path, "edgedepth", "quantize", "benchmarks")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success" in out.stdout
