"""The fuzz suite: every outcome of a malformed input is a typed edgedepth error naming the file (or the
argument), or a finite result; never another exception, a crash or a hang.

Mutants are made from fixed seeds (``mutants.py``) and run in batches in subprocesses under a timeout and a
3 GiB address-space cap (``worker.py``); a batch that crashes or hangs is rerun job by job to name the
culprit. The outcome table is printed at the end of the run.
Counts: ONNX 300 per CPU backend, engine headers 200, checkpoints 200, arrays and objects 3,000
(hypothesis, fixed seed), odd image files, 200 each of the text files a user names (calibration, metric
points, teacher specs, recipes); ``--fuzz-long`` runs ten times more. HTTP requests to the web viewer are
fuzzed in ``test_http.py``.
"""

from __future__ import annotations

import collections
import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgedepth.backends import backend_status

from .mutants import byte_mutants, json_garbles, odd_images, onnx_mutants

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 3 << 30  # address space; the CPU backends need about 2 GiB of it
BATCH_TIMEOUT_S = 240.0
JOB_TIMEOUT_S = 60.0
SUMMARY = collections.defaultdict(collections.Counter)


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _run(jobs: list[dict[str, Any]], folder: Path, timeout_s: float) -> tuple[dict[int, dict[str, Any]], str]:
    jobs_file = folder / f"jobs-{jobs[0]['id']}-{len(jobs)}.json"
    jobs_file.write_text(json.dumps(jobs))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.worker", str(jobs_file)],
            cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, preexec_fn=_cap_memory,
        )  # fmt: skip
        ended = "" if done.returncode == 0 else f"crash (exit {done.returncode}): {done.stderr[-300:]}"
        out = done.stdout
    except subprocess.TimeoutExpired as exc:
        ended, out = (
            f"hang (over {timeout_s:.0f} s)",
            (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""),
        )
    lines = {}
    for text in out.splitlines():
        try:
            line = json.loads(text)
            lines[line["id"]] = line
        except (json.JSONDecodeError, KeyError):
            continue
    return lines, ended


def fuzz(jobs: list[dict[str, Any]], folder: Path, batch: int = 100) -> list[dict[str, Any]]:
    """Every job's outcome; a crash or hang in a batch is pinned on its job by rerunning the rest alone."""
    results = []
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        lines, ended = _run(chunk, folder, BATCH_TIMEOUT_S)
        for job in chunk:
            if job["id"] in lines:
                results.append({**job, **lines[job["id"]]})
                continue
            single, why = _run([job], folder, JOB_TIMEOUT_S)
            outcome = single.get(job["id"]) or {
                "outcome": why.split(" ")[0] or "crash",
                "detail": why or ended,
            }
            results.append({**job, **outcome})
    return results


def check(results: list[dict[str, Any]], case: str, file_named: bool = True) -> None:
    """Record the outcomes for the summary, then fail on anything but a (named) typed error or a finite result."""
    bad = []
    for r in results:
        outcome = r["outcome"]
        if outcome == "typed" and file_named and not r.get("named", True):
            outcome = "typed, file not named"
        SUMMARY[case][outcome] += 1
        if outcome not in ("typed", "finite"):
            bad.append(f"{r.get('mutation', '')} [{r.get('path', '')}]: {outcome}: {r.get('detail', '')}")
    assert not bad, f"{len(bad)} of {len(results)} {case} mutants:\n" + "\n".join(bad[:15])


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import make_tiny_depth_onnx

    return make_tiny_depth_onnx(tmp_path_factory.mktemp("fuzz") / "tiny.onnx")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_onnx_mutants(backend: str, model: Path, tmp_path: Path, fuzz_scale: int) -> None:
    if not backend_status(backend).available:
        pytest.skip(f"{backend} is not available here")
    jobs = []
    for i, (mutation, data) in enumerate(onnx_mutants(model, 300 * fuzz_scale, seed=1)):
        path = tmp_path / f"m{i:05d}.onnx"
        path.write_bytes(data)
        jobs.append({"id": i, "op": "onnx", "path": str(path), "backend": backend, "mutation": mutation})
    check(fuzz(jobs, tmp_path), f"ONNX on {backend}")


def test_engine_header_mutants(tmp_path: Path, fuzz_scale: int) -> None:
    from edgedepth.engine_file import MAGIC, write_engine
    from edgedepth.fileio import _LENGTH
    from tests.edgedepth.test_engine_file import make_header

    good = tmp_path / "good.engine"
    write_engine(good, make_header(), b"plan bytes " * 50)
    header = make_header().to_json()
    jobs, n = [], 200 * fuzz_scale
    mutants = [*byte_mutants(good.read_bytes(), n // 2, seed=2)]
    for mutation, text in json_garbles(header, n - n // 2, seed=3):
        encoded = text.encode()
        mutants.append((mutation, MAGIC + _LENGTH.pack(len(encoded)) + encoded + b"plan bytes " * 50))
    for i, (mutation, data) in enumerate(mutants):
        path = tmp_path / f"e{i:05d}.engine"
        path.write_bytes(data)
        jobs.append({"id": i, "op": "engine", "path": str(path), "mutation": mutation})
    check(fuzz(jobs, tmp_path), "engine headers")


@pytest.mark.train
def test_checkpoint_mutants(tmp_path: Path, fuzz_scale: int) -> None:
    import torch

    from edgedepth_train.checkpoint import save_checkpoint

    good = tmp_path / "good.safetensors"
    state = {"model": {"w": torch.arange(300.0).reshape(10, 30), "b": torch.ones(7)}, "progress": {"step": 3}}
    save_checkpoint(good, state, {"model": "efficientdepth-s"})
    data = good.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    jobs, n = [], 200 * fuzz_scale
    mutants = [*byte_mutants(data, n // 2, seed=4)]
    for mutation, text in json_garbles(header, n - n // 2, seed=5):
        encoded = text.encode()
        mutants.append((mutation, len(encoded).to_bytes(8, "little") + encoded + data[8 + header_len :]))
    for i, (mutation, blob) in enumerate(mutants):
        path = tmp_path / f"c{i:05d}.safetensors"
        path.write_bytes(blob)
        jobs.append({"id": i, "op": "checkpoint", "path": str(path), "mutation": mutation})
    check(fuzz(jobs, tmp_path), "checkpoints")


def test_odd_image_files(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    jobs = [{"id": i, "op": "image", "path": str(p), "model": str(model), "mutation": p.name[:30]}
            for i, p in enumerate(odd_images(folder))]  # fmt: skip
    results = fuzz(jobs, tmp_path)
    check(results, "image files")
    typed = {Path(r["path"]).name for r in results if r["outcome"] == "typed"}
    assert {"empty.jpg", "huge.gif", "huge.tif", "truncated.jpg", "missing.png"} <= typed


CAMERA = {"fx": 500.0, "fy": 510.0, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480}
ROS_CAMERA_INFO = {
    "image_width": 640,
    "image_height": 480,
    "camera_name": "front",
    "camera_matrix": {"rows": 3, "cols": 3, "data": [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]},
}
SPEC = {"name": "third-party", "input_size": [252, 336], "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225], "size_multiple": 14, "output_kind": "depth", "output_name": "depth"}  # fmt: skip
ODD_ROWS = ("1e2,5,3", "+10,4,2", "1,2", "1,2,3,4", "nan,1,2", "1,inf,2", '"1,2",3', "1;2;3", "0x10,1,1",
            "1,2,3,", " , , ", "1e999,1,1", "１,2,3", "1_000,2,3")  # fmt: skip


def text_mutants(family: str, n: int) -> Iterator[tuple[str, str, bytes]]:
    """(mutation, file suffix, bytes) for one text family: byte corruptions of a good file, garbled fields
    (JSON is YAML too) and, for the points, odd rows among good ones."""
    import yaml

    if family == "points":
        good = "u,v,depth\n" + "".join(f"{10 * i},{5 * i},{1 + i / 10}\n" for i in range(20))
        yield from (
            ("good", ".csv", good.encode()),
            *((m, ".csv", b) for m, b in byte_mutants(good.encode(), n // 2, 11)),
        )
        rows = good.splitlines()
        for i in range(n - n // 2 - 1):
            at = 1 + i % (len(rows) - 1) if i % 3 else i % 2  # the first row (a header or not) too
            odd = [*rows[:at], ODD_ROWS[i % len(ODD_ROWS)], *rows[at + 1 :]]
            yield f"row {at}={ODD_ROWS[i % len(ODD_ROWS)]!r}", ".csv", "\n".join(odd).encode()
        return
    smoke = ROOT / "train" / "recipes" / "smoke.yaml"
    docs = {
        "intrinsics": [(CAMERA, ".json"), (ROS_CAMERA_INFO, ".yaml")],
        "spec": [(SPEC, ".json")],
        "recipe": [(yaml.safe_load(smoke.read_text()), ".yaml")],
    }[family]
    for k, (doc, suffix) in enumerate(docs):
        share = n // len(docs)
        text = smoke.read_text() if family == "recipe" else json.dumps(doc)
        yield "good", suffix, text.encode()
        yield from ((m, suffix, b) for m, b in byte_mutants(text.encode(), share // 2, 12 + k))
        yield from ((m, suffix, t.encode()) for m, t in json_garbles(doc, share - share // 2 - 1, 14 + k))


@pytest.mark.parametrize(
    "family",
    [
        "intrinsics",
        "points",
        pytest.param("spec", marks=pytest.mark.train),
        pytest.param("recipe", marks=pytest.mark.train),
    ],
)
def test_text_input_mutants(family: str, tmp_path: Path, fuzz_scale: int) -> None:
    """Every text file a user names: refused with a typed error naming it, or read with its invariants kept
    (finite numbers; no row dropped but a header), and never changed by the reading."""
    jobs = []
    for i, (mutation, suffix, data) in enumerate(text_mutants(family, 200 * fuzz_scale)):
        path = tmp_path / f"t{i:05d}{suffix}"
        path.write_bytes(data)
        jobs.append({"id": i, "op": family, "path": str(path), "mutation": mutation})
    results = fuzz(jobs, tmp_path)
    check(results, TEXT_CASES[family])
    goods = [r for r in results if r["mutation"] == "good"]
    assert goods and all(r["outcome"] == "finite" for r in goods), goods  # the unmutated files are read


TEXT_CASES = {"intrinsics": "calibration files", "points": "metric points", "spec": "teacher specs",
              "recipe": "recipes"}  # fmt: skip


def test_arrays_and_objects(model: Path, tmp_path: Path, fuzz_scale: int) -> None:
    examples = 3000 * fuzz_scale
    results = fuzz([{"id": 0, "op": "arrays", "model": str(model), "examples": examples}], tmp_path)
    (result,) = results
    assert result["outcome"] == "finite", result["detail"]
    counts = result["detail"]
    SUMMARY["arrays and objects"].update(counts)
    assert counts["typed"] + counts["finite"] >= examples * 0.9  # hypothesis may stop early on duplicates
