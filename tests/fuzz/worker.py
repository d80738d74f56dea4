"""Runs fuzz jobs in a subprocess and prints one JSON line per job as soon as it is done.

    python -m tests.fuzz.worker JOBS.json

A job is ``{"id", "op", "path"?, "backend"?, "examples"?}``; its line is ``{"id", "outcome", "detail"}``
with outcome "typed" (an edgedepth error; ``named`` says whether it names the file), "finite" (a result
without NaN or inf; for a text input, one that keeps its invariants), "wrong" (accepted, but NaN, inf or a
broken invariant: a silent wrong result), "lost" (the input file changed while it was read) or "other" (any
other exception). A crash or a hang shows as missing lines: the parent (``test_fuzz.py``) runs under a
timeout and a memory cap and finds the job that caused it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth import DepthEstimator
from edgedepth.errors import EdgeDepthError

IMAGE = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def finite(*arrays: np.ndarray) -> bool:
    return all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays)


def run_onnx(job: dict[str, Any]) -> bool:
    with DepthEstimator(job["path"], backend=job["backend"]) as est:
        result = est.predict(IMAGE)
    return finite(result.inverse_depth, result.confidence)


def run_engine(job: dict[str, Any]) -> bool:
    from edgedepth.engine_file import read_engine

    header, _ = read_engine(job["path"], verify=True)
    return finite(header.spec.mean, header.spec.std)


def run_checkpoint(job: dict[str, Any]) -> bool:
    from edgedepth_train.checkpoint import load_checkpoint

    state = load_checkpoint(job["path"])
    return all(finite(t.float().numpy()) for t in _tensors(state))


def _tensors(node: Any) -> list[Any]:
    if hasattr(node, "numpy"):
        return [node]
    if isinstance(node, dict):
        return [t for v in node.values() for t in _tensors(v)]
    if isinstance(node, list | tuple):
        return [t for v in node for t in _tensors(v)]
    return []


def run_intrinsics(job: dict[str, Any]) -> bool:
    from edgedepth.intrinsics import Intrinsics

    k = Intrinsics.load(job["path"])
    return finite(np.array([k.fx, k.fy, k.cx, k.cy])) and min(k.fx, k.fy) > 0 and min(k.width, k.height) >= 1


def run_points(job: dict[str, Any]) -> bool:
    """Finite (N, 3) rows, and none dropped but a header: a row of another width is refused, not regrouped."""
    from edgedepth.clouds import read_points

    points = read_points(job["path"])
    lines = [line for line in Path(job["path"]).read_bytes().splitlines() if line.strip()]
    return points.ndim == 2 and points.shape[1] == 3 and finite(points) and len(points) >= len(lines) - 1


def run_spec(job: dict[str, Any]) -> bool:
    from edgedepth_train.distill import load_spec_json

    spec = load_spec_json(job["path"])
    sizes_ok = all(isinstance(v, int) and v > 0 for v in spec.input_size)
    return sizes_ok and finite(np.array(spec.mean), np.array(spec.std)) and min(spec.std) > 0


def run_recipe(job: dict[str, Any]) -> bool:
    """Every float finite, every whole number a count, size or seed (0 to 2**31 - 1)."""
    from edgedepth_train.recipe import load_recipe

    return all(_in_range(v) for v in _numbers(load_recipe(job["path"])))


def _in_range(value: float) -> bool:
    return 0 <= value < 2**31 if isinstance(value, int) else math.isfinite(value)


def _numbers(node: Any) -> list[float]:
    """Every int and float in a recipe (dataclasses, mappings and sequences)."""
    if isinstance(node, bool) or node is None or isinstance(node, str):
        return []
    if isinstance(node, int | float):
        return [node]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [x for f in dataclasses.fields(node) for x in _numbers(getattr(node, f.name))]
    if isinstance(node, dict):
        return [x for v in node.values() for x in _numbers(v)]
    if isinstance(node, list | tuple):
        return [x for v in node for x in _numbers(v)]
    return []


ESTIMATOR: list[DepthEstimator] = []


def estimator(model: str) -> DepthEstimator:
    if not ESTIMATOR:
        ESTIMATOR.append(DepthEstimator(model, backend="onnxruntime"))
    return ESTIMATOR[0]


def run_image(job: dict[str, Any]) -> bool:
    result = estimator(job["model"]).predict(Path(job["path"]))
    return finite(result.inverse_depth)


def run_arrays(job: dict[str, Any]) -> dict[str, int]:
    """``examples`` arrays and objects from hypothesis (fixed seed) into ``predict``: typed or finite."""
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    est = estimator(job["model"])
    counts = {"typed": 0, "finite": 0}
    dtypes = st.sampled_from(["uint8", "uint16", "int8", "int32", "int64", "float16", "float32", "float64",
                              "bool", "complex64", "object", "<U3", "uint32"])  # fmt: skip
    shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=48)

    def array_of(name: str) -> Any:
        dtype = np.dtype(name)
        if dtype.kind in "OU":  # no numeric elements to draw: fill with None or text
            return hnp.arrays(dtype, shapes, elements=st.none() if dtype.kind == "O" else st.just("x"))
        return hnp.arrays(dtype, shapes)  # floats include NaN and inf

    arrays = dtypes.flatmap(array_of)
    others = st.one_of(
        st.none(), st.integers(), st.floats(), st.text(max_size=20), st.lists(st.integers(), max_size=5)
    )

    @seed(int(job.get("seed", 0)))
    @settings(max_examples=int(job["examples"]), derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.one_of(arrays, others))
    def check(value: Any) -> None:
        try:
            result = est.predict(value)
        except EdgeDepthError:
            counts["typed"] += 1
            return
        assert finite(result.inverse_depth, result.confidence), "NaN or inf in a result"
        counts["finite"] += 1

    check()
    return counts


OPS = {"onnx": run_onnx, "engine": run_engine, "checkpoint": run_checkpoint, "image": run_image,
       "intrinsics": run_intrinsics, "points": run_points, "spec": run_spec, "recipe": run_recipe}  # fmt: skip
TEXT_OPS = ("intrinsics", "points", "spec", "recipe")  # an accepted input that breaks an invariant is "wrong"


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        return type(exc).__name__


def main(jobs_file: str) -> int:
    for job in json.loads(Path(jobs_file).read_text()):
        line: dict[str, Any] = {"id": job["id"]}
        before = _digest(job["path"]) if "path" in job else ""
        try:
            if job["op"] == "arrays":
                line.update(outcome="finite", detail=run_arrays(job))
            else:
                ok = OPS[job["op"]](job)
                silent = "wrong" if job["op"] in TEXT_OPS else "other"
                line.update(
                    outcome="finite" if ok else silent, detail="" if ok else "NaN, inf or a broken invariant"
                )
        except EdgeDepthError as exc:
            name = Path(job["path"]).name if "path" in job else ""
            named = name[:60] in str(exc)  # a very long name is quoted by its start
            line.update(outcome="typed", detail=f"{type(exc).__name__}: {str(exc)[:300]}", named=named)
        except Exception as exc:  # the failure the fuzz suite exists to find
            line.update(outcome="other", detail=f"{type(exc).__name__}: {str(exc)[:300]}")
        if "path" in job and _digest(job["path"]) != before:
            line.update(outcome="lost", detail="the input file changed while it was read")
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
