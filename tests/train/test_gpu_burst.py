"""The GPU training burst (train/gpu_burst.sh), dry-run end to end on this CPU: pack, train for a time
limit, split for the way back, join, resume here and evaluate, as a real burst would be used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from safetensors import safe_open

from edgedepth_train.burst import PART_BYTES, join, main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_dry_run_burst_trains_returns_parts_and_resumes_here(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(photos / f"p{i}.png"), rng.integers(0, 255, (400, 600, 3), dtype=np.uint8))
    packed = tmp_path / "packed"
    assert main(["pack", "--textures", str(photos), "--out", str(packed)]) == 0
    assert (packed / "init.safetensors").stat().st_size < 15 * 2**20  # bf16: what travels stays small
    assert sorted(p.name for p in (packed / "textures").iterdir()) == ["p0.jpg", "p1.jpg"]

    out = tmp_path / "back"
    proc = subprocess.run(
        ["bash", str(ROOT / "train" / "gpu_burst.sh"), "--cpu", "--minutes", "0.1", "--out", str(out),
         "--burst", str(packed)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "time limit: stopped in stage layout" in proc.stdout
    summary = json.loads((out / "burst.json").read_text())
    assert summary["device"] == "cpu (dry run)" and summary["step"] >= 1
    assert summary["parts"] and all((out / p).stat().st_size <= PART_BYTES for p in summary["parts"])
    assert (out / "train_log.jsonl").is_file()

    checkpoint = join(out, tmp_path / "run" / "checkpoint.safetensors")
    with safe_open(str(checkpoint), framework="pt") as fh:
        assert fh.metadata()["recipe"] == "efficientdepth-l-burst"  # the run's own names came back
    recipe = ROOT / "train" / "recipes" / "efficientdepth-l-burst.yaml"
    tiny = ["--set", "batch_size=2", "--set", "workers=0", "--set", "stages.*.resolution=[64,64]",
            "--set", f"init={packed / 'init.safetensors'}", "--set", "sources.synthetic.texture_dir=null"]  # fmt: skip
    resumed = subprocess.run(
        [sys.executable, "-m", "edgedepth_train", "train", "--recipe", str(recipe), "--out", str(tmp_path / "run"),
         "--resume", str(checkpoint), "--max-steps", "1", *tiny],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "--max-steps 1: stopped in stage layout" in resumed.stderr and "finished" not in resumed.stdout
    from edgedepth_train.checkpoint import load_checkpoint

    assert (
        load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")["progress"]["step"]
        == summary["step"] + 1
    )


def test_a_missing_part_is_caught_when_joining(tmp_path: Path) -> None:
    import torch

    from edgedepth.errors import ModelLoadError
    from edgedepth_train.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "c.safetensors", {"w": torch.randn(3 * PART_BYTES // 8)})  # three parts
    data = (tmp_path / "c.safetensors").read_bytes()
    for i in (0, 2):  # part 01 never came back
        (tmp_path / f"checkpoint.safetensors.part-{i:02d}").write_bytes(
            data[i * PART_BYTES : (i + 1) * PART_BYTES]
        )
    with pytest.raises(ModelLoadError):
        join(tmp_path, tmp_path / "joined.safetensors")
    with pytest.raises(ModelLoadError, match=r"no checkpoint\.safetensors\.part-"):
        join(tmp_path / "empty", tmp_path / "x.safetensors")
