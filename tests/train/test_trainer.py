"""Recipes, checkpoints, exact resume and DDP parameter sync, on the seconds-long smoke recipe."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from edgedepth.errors import DataError
from edgedepth_train.checkpoint import load_checkpoint, save_checkpoint
from edgedepth_train.errors import RecipeError
from edgedepth_train.recipe import RECIPES_DIR, load_recipe, parse_recipe
from edgedepth_train.trainer import Trainer


def smoke_raw() -> dict:
    return yaml.safe_load((RECIPES_DIR / "smoke.yaml").read_text())


def test_shipped_recipes_parse() -> None:
    recipe = load_recipe("efficientdepth-s")
    assert recipe.model == "efficientdepth-s" and len(recipe.stages) >= 2 and len(recipe.sha256) == 64
    assert {"perceptual", "edge_huber"} <= set(recipe.stages[-1].losses)
    for path in sorted(RECIPES_DIR.rglob("*.yaml")):
        assert load_recipe(path).stages, path


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda r: r["stages"][1]["losses"].update(lpips=1.0), r"stages\[1\]\.losses\.lpips"),
        (lambda r: r["stages"][0].update(learning_rate=1.0), r"stages\[0\]\.learning_rate"),
        (lambda r: r.update(model="efficientdepth-xl"), "efficientdepth-s"),
        (lambda r: r["stages"][0].update(resolution=[60, 64]), r"stages\[0\]\.resolution"),
        (lambda r: r["stages"][0].update(iterations="ten"), r"stages\[0\]\.iterations"),
        (lambda r: r["stages"][0]["data"].update(nyu=1.0), r"stages\[0\]\.data\.nyu"),
        (lambda r: r["stages"][0].update(weighting="dwa"), "uncertainty"),
        (lambda r: r.pop("stages"), r"recipe\.stages is required"),
        (
            lambda r: r["stages"][0]["losses"].update(distill=1.0),
            r"stages\[0\]\.losses\.distill needs a pseudo",
        ),
        (
            lambda r: r["sources"].update(real={"kind": "pseudo", "images": "x"}),
            r"sources\.real \(pseudo\) needs a teacher",
        ),
        (lambda r: r["stages"][0].update(distill_norm="median"), r"distill_norm='median'.*'hybrid'"),
        (
            lambda r: r["sources"].update(
                real={"kind": "pseudo", "images": "x", "teacher": "t.onnx", "teacher_sides": [256, 16]}
            ),
            r"sources\.real\.teacher_sides=\[256, 16\]: each side must be at least 32",
        ),
    ],
)
def test_recipe_errors_name_the_key(edit, match: str) -> None:
    raw = smoke_raw()
    edit(raw)
    with pytest.raises(RecipeError, match=match):
        parse_recipe(raw)


def test_missing_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    raw = smoke_raw()
    raw["sources"]["real"] = {"kind": "rgbd", "root": str(tmp_path / "nowhere")}
    raw["stages"][0]["data"] = {"real": 1.0}
    trainer = Trainer(parse_recipe(raw), tmp_path / "run")
    with pytest.raises(DataError, match="nowhere"):
        trainer.fit(max_steps=1)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    state = {
        "a": torch.arange(3.0),
        "opt": {"state": {0: {"step": torch.tensor(2.0)}}, "groups": [{"lr": 0.1}]},
    }
    save_checkpoint(tmp_path / "c.safetensors", state, {"model": "x"})
    back = load_checkpoint(tmp_path / "c.safetensors")
    assert torch.equal(back["a"], state["a"]) and back["opt"]["state"][0]["step"].item() == 2.0
    assert back["opt"]["groups"] == [{"lr": 0.1}] and list(back["opt"]["state"]) == [0]
    assert not list(tmp_path.glob("*.tmp"))


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_is_exact(tmp_path: Path) -> None:
    """6 straight steps (crossing a stage boundary) equal 3 steps, a resume from disk, then 3 more."""
    recipe = load_recipe("smoke")
    straight = Trainer(recipe, tmp_path / "straight")
    straight.fit(max_steps=6)

    first = Trainer(recipe, tmp_path / "split")
    first.fit(max_steps=3)
    second = Trainer(recipe, tmp_path / "other")
    second.resume(tmp_path / "split" / "checkpoint.safetensors")
    assert (second.stage_index, second.step) == (0, 3)
    second.fit(max_steps=3)
    assert (second.stage_index, second.step) == (straight.stage_index, straight.step) == (1, 2)
    assert _states_equal(second.model.state_dict(), straight.model.state_dict())
    assert _states_equal(second.weighting.state_dict(), straight.weighting.state_dict())


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from safetensors.torch import save_file
    from edgedepth_train.recipe import load_recipe
    from edgedepth_train.trainer import Trainer, init_distributed
    info = init_distributed()
    trainer = Trainer(load_recipe("smoke"), sys.argv[1], info)
    trainer.fit(max_steps=3)
    # Parameters only: BatchNorm running stats are broadcast from rank 0 at each forward, then updated
    # by each rank's own batch, so they differ after the last step (rank 0's are the ones saved).
    state = {k: v.detach().contiguous() for k, v in trainer.model.named_parameters()}
    state.update({"weighting." + k: v.detach() for k, v in trainer.weighting.named_parameters()})
    save_file(state, f"{sys.argv[1]}/rank{info.rank}.safetensors")
    """
)


def test_ddp_two_cpu_processes_keep_parameters_identical(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           str(script), str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert _states_equal(rank0, rank1)
    start = dict(Trainer(load_recipe("smoke"), tmp_path / "unused").model.named_parameters())
    assert not _states_equal({k: rank0[k] for k in start}, {k: v.detach() for k, v in start.items()})


LOADER_STARTS = """
import cv2, numpy as np, torch
from edgedepth_train.data.synthetic import SyntheticRGBD
from edgedepth_train.data.loader import StepSampler, make_loader

data = SyntheticRGBD(1000, size=(64, 64), seed=0, texture_dir=None)
busy = np.random.default_rng(0).random((1200, 1200)).astype(np.float32)
threads = cv2.getNumThreads()
for attempt in range(20):
    cv2.setNumThreads(threads)
    # OpenCV's and torch's thread pools are live in this process, as during training.
    cv2.GaussianBlur(busy, (31, 31), 5)
    (torch.from_numpy(busy[:600, :600]) @ torch.from_numpy(busy[:600, :600])).sum()
    loader = make_loader(data, 2, StepSampler(attempt, attempt + 1, 2), workers=2, timeout_s=120)
    batch = next(iter(loader))  # a hang becomes a RuntimeError after timeout_s
    assert batch["bgr"].shape == (2, 64, 64, 3), attempt
print("started", attempt + 1)
"""


def test_two_worker_loader_starts_twenty_times_without_hanging() -> None:
    """Workers used to deadlock at step 0 when forked while this process's OpenCV pool was running.

    Run in its own interpreter: DataLoader workers install torch's SIGCHLD handler in the process that
    starts them, which the rest of the test session (it starts many subprocesses) should not inherit.
    """
    out = subprocess.run([sys.executable, "-c", LOADER_STARTS], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "started 20" in out.stdout


def test_a_corrupt_checkpoint_is_named(tmp_path: Path) -> None:
    """Checkpoints carry a checksum of their tensors: a flipped byte is caught at load, with the file's name."""
    from edgedepth.errors import ModelLoadError

    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"w": torch.arange(1000.0)}, {"model": "x"})
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # inside the tensor data, past the JSON header
    (tmp_path / "flipped.safetensors").write_bytes(bytes(data))
    with pytest.raises(
        ModelLoadError, match=r"flipped\.safetensors: its tensors do not match their checksum"
    ):
        load_checkpoint(tmp_path / "flipped.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}xxxxxx")
    with pytest.raises(ModelLoadError, match=r"garbage\.safetensors: not a readable checkpoint"):
        load_checkpoint(tmp_path / "garbage.safetensors")


def _smoke_with(tmp_path: Path, **top) -> Path:
    raw = smoke_raw()
    raw.update(top)
    path = tmp_path / f"smoke-{len(list(tmp_path.glob('smoke-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_bf16_step_and_an_fp32_step_give_close_losses(tmp_path: Path) -> None:
    """bf16 autocast changes the forward's arithmetic, not what is computed: on the same weights and batch
    the loss terms agree to bf16's precision, and the losses themselves are fp32."""
    from edgedepth_train.data.stage_data import StageData

    steps = {}
    for precision in ("fp32", "bf16"):
        recipe = load_recipe(_smoke_with(tmp_path, speed={"precision": precision, "channels_last": True}))
        trainer = Trainer(recipe, tmp_path / precision)
        trainer._setup_stage()
        data = StageData(recipe, 0, trainer.spec)
        batch = torch.utils.data.default_collate([data[i] for i in range(4)])
        trainer.model.eval()
        with torch.no_grad():
            params = trainer.forward(trainer.model, batch)
            steps[precision] = (params, trainer.compute_losses(params, batch))
    (p32, t32), (p16, t16) = steps["fp32"], steps["bf16"]
    assert p16.dtype == torch.float32 and all(v.dtype == torch.float32 for v in t16.values())
    assert not torch.equal(p32, p16)  # bf16 really ran
    for name in t32:
        assert abs(t16[name].item() - t32[name].item()) <= 0.03 * abs(t32[name].item()) + 1e-3, name


CTRL_C = """
import os, signal, sys, torch
from edgedepth_train.__main__ import main
from edgedepth_train.checkpoint import load_checkpoint
from edgedepth_train.trainer import Trainer
recipe, root = sys.argv[1], sys.argv[2]
assert main(["train", "--recipe", recipe, "--out", f"{root}/straight"]) == 0
real_step = Trainer.train_step
def step_with_ctrl_c(self, model, batch, clock):
    if self.stage_index == 0 and self.step == 2:
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the step runs
    return real_step(self, model, batch, clock)
Trainer.train_step = step_with_ctrl_c
try:
    main(["train", "--recipe", recipe, "--out", f"{root}/run"])
    sys.exit("not interrupted")
except SystemExit as exc:
    assert exc.code == 130, exc.code
Trainer.train_step = real_step
command = f"edgedepth-train train --recipe {recipe} --out {root}/run --resume {root}/run/checkpoint.safetensors"
assert load_checkpoint(f"{root}/run/checkpoint.safetensors")["progress"]["step"] == 3
assert main(command.split()[1:]) == 0
done, expected = (load_checkpoint(f"{root}/{d}/checkpoint.safetensors") for d in ("run", "straight"))
assert done["progress"] == expected["progress"]
for key, value in expected["model"].items():
    torch.testing.assert_close(done["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
print("resumed equal")
"""


@pytest.mark.parametrize(
    "speed",
    [{}, {"channels_last": True, "precision": "bf16", "worker_nice": 5}],
    ids=["plain", "channels_last-bf16"],
)
def test_ctrl_c_saves_and_resuming_equals_the_uninterrupted_run(tmp_path: Path, speed: dict) -> None:
    """A real SIGINT in the middle of step 3 lets the step finish, saves, and prints the resume command;
    that command continues with the same data order, schedule and optimiser state (one loader worker,
    which must ignore the Ctrl-C). In its own interpreter, like the loader test below: DataLoader workers
    install torch's SIGCHLD handler in the process that starts them."""
    recipe_file = _smoke_with(tmp_path, speed=speed, workers=1)
    done = subprocess.run([sys.executable, "-c", CTRL_C, str(recipe_file), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0 and "resumed equal" in done.stdout, done.stdout[-2000:] + done.stderr[-3000:]
    run = tmp_path / "run"
    assert "interrupted: stopped in stage first at step 3" in done.stderr
    assert (
        f"edgedepth-train train --recipe {recipe_file} --out {run} --resume {run}/checkpoint.safetensors"
        in done.stderr
    )


def test_snapshots_keep_the_weights_along_the_way(tmp_path: Path) -> None:
    from edgedepth_train.checkpoint import load_trained

    recipe = load_recipe(_smoke_with(tmp_path, snapshot_every=3))
    trainer = Trainer(recipe, tmp_path / "run")
    trainer.fit()
    snaps = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snaps == ["step0000003.safetensors", "step0000006.safetensors"]
    state = load_checkpoint(tmp_path / "run" / "snapshots" / snaps[-1])
    assert state["progress"] == {"step": 6, "images": 12}
    assert load_trained(tmp_path / "run" / "snapshots" / snaps[-1]).training is False


def test_the_plain_configuration_undoes_every_speed_lever(tmp_path: Path) -> None:
    raw = smoke_raw()
    raw.update(workers=1, threads=1, speed={"channels_last": True, "precision": "auto", "compile": True})
    raw["sources"]["synthetic"]["cache"] = str(tmp_path)
    raw["stages"][1]["perceptual_every"] = 4
    plain = parse_recipe(raw).plain()
    assert plain.speed == type(plain.speed)() and (plain.workers, plain.threads) == (2, 2)
    assert plain.sources["synthetic"].cache is None and plain.stages[1].perceptual_every == 1
    raw["speed"]["worker_nice"] = 40
    with pytest.raises(RecipeError, match=r"speed\.worker_nice must be in 0\.\.19"):
        parse_recipe(raw)


def test_throughput_prints_each_phase_and_the_ratio(tmp_path: Path) -> None:
    """The command in its own interpreter: its plain configuration starts two DataLoader workers, whose
    SIGCHLD handler must not stay behind in the test session (it crashed or hung the session's exit)."""
    import json

    def throughput(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "edgedepth_train", "throughput", "--recipe", "smoke", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600)

    out = tmp_path / "t.json"
    done = throughput("--steps", "2", "--warmup", "1", "--json", str(out),
                      "--set", "speed.channels_last=true", "--set", "stages.*.perceptual_every=2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "data   forward    losses  backward optimizer" in text and "ratio recipe / plain" in text
    result = json.loads(out.read_text())
    plain, fast = result["rows"]
    assert plain["settings"]["channels_last"] is False and fast["settings"]["channels_last"] is True
    assert fast["settings"]["perceptual_every"] == 2 and result["stage"] == "second"
    assert all(v >= 0 for v in fast["step_ms"].values()) and fast["images_per_s"] > 0
    refused = throughput("--stage", "third")
    assert refused.returncode == 2 and "its stages: first, second" in refused.stderr


def test_a_recipe_gives_only_what_differs_from_its_base(tmp_path: Path) -> None:
    from edgedepth_train.recipe import read_recipe

    (tmp_path / "base.yaml").write_text((RECIPES_DIR / "smoke.yaml").read_text())
    (tmp_path / "child.yaml").write_text(
        "base: base.yaml\nname: child\nseed: 3\nsources:\n  synthetic: {length: 10}\n"
        "stages:\n  - {}\n  - {iterations: 9, losses: {ssi_l1: 2.0}}\n"
    )
    child, base = load_recipe(tmp_path / "child.yaml"), load_recipe(tmp_path / "base.yaml")
    assert (child.name, child.seed, child.sources["synthetic"].length) == ("child", 3, 10)
    assert child.sources["synthetic"].texture_dir is None  # kept from the base
    assert child.stages[0] == base.stages[0] and child.stages[1].iterations == 9
    assert child.stages[1].losses == {**base.stages[1].losses, "ssi_l1": 2.0}  # mappings merge by key
    assert child.stages[1].weighting == "none"
    before = child.sha256  # the sha256 covers the base: editing the base changes the child's
    (tmp_path / "base.yaml").write_text((RECIPES_DIR / "smoke.yaml").read_text() + "\n# edited\n")
    assert read_recipe(tmp_path / "child.yaml")[1] != before
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(RecipeError, match="leads back to itself"):
        load_recipe(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(RecipeError, match=r"nowhere\.yaml does not exist"):
        load_recipe(tmp_path / "orphan.yaml")


def test_a_log_gets_plain_progress_lines_with_an_eta(capsys: pytest.CaptureFixture) -> None:
    from edgedepth_train.progress import LogProgress, eta_text

    assert eta_text(3600 + 61, 1.0) == "1:01:01" and eta_text(10, 0.0) == "?"
    progress = LogProgress("pseudo-labels t.onnx", 4, "img", every_s=0.0)
    for done in range(1, 5):
        progress.update(done)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and lines[-1].startswith("pseudo-labels t.onnx: 4/4 (100%), ")
    assert lines[0].split("ETA ")[1].count(":") == 2
