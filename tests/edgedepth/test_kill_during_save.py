"""Kill during save: SIGKILL a writer at random moments; no destination is ever a partial file, and the next
write of a target removes the temp files a killed writer left behind.

Writers: ``edgedepth predict -o`` (colour PNG, 16-bit PNG and .npy), training checkpoints, TensorRT engine
files and calibration caches, each in a loop in a child process killed a seeded random delay after it has
written every target once.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow  # 50 writer processes: about 50 s on 2 cores
ROOT = Path(__file__).resolve().parents[2]
KILLS = {"predict": 20, "checkpoint": 10, "engine": 10, "cache": 10}  # 50 in all

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    kind, out = sys.argv[1], Path(sys.argv[2])
    if kind == "predict":
        from edgedepth.cli import main
        images = sorted(str(p) for p in (out.parent / "images").glob("*.png"))
        args = ["predict", *images, "-o", str(out), "--model", sys.argv[3], "--overwrite"]
        run = lambda i: main(args)
    elif kind == "checkpoint":
        import torch
        from edgedepth_train.checkpoint import save_checkpoint
        state = {"model": {"w": torch.randn(256, 1024)}, "progress": {"step": 1}}
        run = lambda i: save_checkpoint(out / "c.safetensors", state, {"model": "x"})
    elif kind == "engine":
        sys.path.insert(0, str(Path(sys.argv[3])))
        from tests.edgedepth.test_engine_file import make_header
        from edgedepth.engine_file import write_engine
        run = lambda i: write_engine(out / "m.engine", make_header(), bytes(2_000_000) + str(i).encode())
    else:
        sys.path.insert(0, str(Path(sys.argv[3])))
        from tests.quantize.test_engine_build import binding
        from edgedepth_quantize.calibration_cache import write_calibration_cache
        run = lambda i: write_calibration_cache(out / "m.calibration-cache", binding(), bytes(3_000_000))
    i = 0
    while True:
        run(i)
        print("WHOLE", i, flush=True)  # every target whole at least once: the parent's signal to start
        i += 1
    """
)


def verify(kind: str, out: Path) -> int:
    """Check every destination file is whole; the number of destination files checked."""
    checked = 0
    if kind == "predict":
        from edgedepth.imageio import read_png16

        for path in out.rglob("*"):
            if path.name.startswith(".") or path.is_dir():
                continue
            if path.suffix == ".npy":
                assert np.load(path).ndim == 2, path
            elif path.name.endswith("_inverse_depth16.png"):
                assert read_png16(path).ndim == 2, path  # the scale travels inside the PNG
            elif path.name.endswith("_depth.png"):
                assert cv2.imread(str(path)) is not None, path
            checked += 1
    elif kind == "checkpoint":
        from edgedepth_train.checkpoint import load_checkpoint

        if (out / "c.safetensors").exists():
            load_checkpoint(out / "c.safetensors")  # the checksum proves every byte
            checked += 1
    elif kind == "engine":
        from edgedepth.engine_file import read_engine

        if (out / "m.engine").exists():
            read_engine(out / "m.engine", verify=True)
            checked += 1
    else:
        from edgedepth_quantize.calibration_cache import read_calibration_cache
        from tests.quantize.test_engine_build import binding

        if (out / "m.calibration-cache").exists():
            assert read_calibration_cache(out / "m.calibration-cache", binding()) is not None
            checked += 1
    return checked


def writer(kind: str, out: Path, extra: str) -> subprocess.Popen:
    """A writer process, once it says it has written every target whole (not after a guessed delay: a slow
    model load used to outlast every delay, so no kill landed during a write)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, kind, str(out), extra], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = []  # predict prints its own summary first
    while (line := proc.stdout.readline()) and line.strip() != "WHOLE 0":
        lines.append(line)
    assert line.strip() == "WHOLE 0", lines
    return proc


def temps(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if p.is_file()]


@pytest.mark.parametrize(
    "kind", [pytest.param(k, marks=pytest.mark.train) if k == "checkpoint" else k for k in KILLS]
)
def test_sigkill_at_random_moments_leaves_no_partial_file(kind: str, tmp_path: Path, tiny_onnx: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if kind == "predict":
        (tmp_path / "images").mkdir()
        for i in range(40):
            cv2.imwrite(str(tmp_path / "images" / f"f{i:02d}.png"), np.full((120, 160, 3), i * 6, np.uint8))
    extra = str(tiny_onnx) if kind == "predict" else str(ROOT)
    rng = np.random.default_rng(list(KILLS).index(kind))
    checked, left = 0, 0
    for _ in range(KILLS[kind]):
        proc = writer(kind, out, extra)  # returns once it has written every target whole
        time.sleep(float(rng.uniform(0.0, 0.6)))  # then a kill at a random moment of the writes that follow
        proc.kill()
        proc.wait(timeout=30)
        checked += verify(kind, out)
        left = max(left, len(temps(out)))
    assert checked > 0  # destinations existed and were whole after the kills
    # The next complete write of each target removes what the killed writers left.
    proc = writer(kind, out, extra)  # at least one whole write of every target
    proc.kill()
    proc.wait(timeout=30)
    verify(kind, out)
    stale = [p for p in temps(out) if f".{proc.pid}." not in p.name]
    assert stale == [], f"{len(stale)} stale temp files remain (at most {left} after a kill): {stale[:3]}"
