"""The runtime never imports torch, the training or quantization trees, TensorRT or pycuda at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import edgedepth

FORBIDDEN = {
    "torch",
    "train",
    "quantize",
    "edgedepth_train",
    "edgedepth_quantize",
    "benchmarks",
    "edgedepth_benchmarks",
    "tensorrt",
    "pycuda",
    "nncf",
}
PACKAGE = Path(edgedepth.__file__).parent


def _module_level_imports(path: Path) -> set[str]:
    """Top-level package names imported outside any function or class body."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_forbidden_module_level_imports() -> None:
    offenders = {
        str(p.relative_to(PACKAGE)): sorted(_module_level_imports(p) & FORBIDDEN)
        for p in PACKAGE.rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_importing_every_runtime_module_loads_no_heavy_package() -> None:
    code = (
        "import pkgutil, sys, importlib, edgedepth\n"
        "for m in pkgutil.walk_packages(edgedepth.__path__, 'edgedepth.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({sorted(FORBIDDEN)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
