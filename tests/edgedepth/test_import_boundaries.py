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


# The repository's folders and the names they install as (setup.cfg's package_dir).
INSTALLED_AS = {"edgedepth": "edgedepth", "train": "edgedepth_train", "quantize": "edgedepth_quantize",
                "benchmarks": "edgedepth_benchmarks"}  # fmt: skip
REPO = PACKAGE.parent


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body (functions included: a deferred
    import that closes a loop is still a loop)."""
    modules: dict[str, Path] = {}
    for folder, name in INSTALLED_AS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = [name, *path.relative_to(REPO / folder).with_suffix("").parts]
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                base = (
                    ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    if node.level
                    else ""
                )
                prefix = ".".join(p for p in (base, node.module or "") if p)
                targets = [f"{prefix}.{a.name}" for a in node.names]
            else:
                continue
            graph[module] |= {t for t in map(known, targets) if t and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_anywhere() -> None:
    graph = _import_graph()
    assert len(graph) > 100 and "edgedepth.model_file" in graph["edgedepth.estimator"]
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_sources_import_nothing_of_inference_or_outputs() -> None:
    """capture/ holds sources only: beyond itself it reads the errors and the frame-folder layout (rgbd)."""
    graph = _import_graph()
    reach = {t for m, targets in graph.items() if m.startswith("edgedepth.capture") for t in targets}
    assert {t for t in reach if not t.startswith("edgedepth.capture")} <= {
        "edgedepth.errors",
        "edgedepth.rgbd",
    }


def test_sources_import_nothing_above_the_errors() -> None:
    """capture/ holds sources only: inference, outputs and data readers sit above it, never below."""
    above = {}
    for path in (PACKAGE / "capture").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2 and node.module not in ("errors",):
                above.setdefault(path.name, []).append(node.module)
    assert not above, above


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for folder in INSTALLED_AS
        for p in (REPO / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long
