"""Distillation: normalisation strategies, cross-context crop geometry, teachers through the runtime, the
pseudo-label cache (keyed, stale refusal, resumable after an interruption), and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from edgedepth_train.__main__ import main as train_main
from edgedepth_train.data.stage_data import StageData
from edgedepth_train.data.unlabelled import UnlabelledImages
from edgedepth_train.distill import CropPlan, DistillError, PseudoLabelCache, Teacher, pseudo_labels
from edgedepth_train.losses.distill import DistillLoss, crop_region, normalized_l1
from edgedepth_train.recipe import parse_recipe
from edgedepth_train.trainer import Trainer
from tests.tiny_models import make_tiny_depth_onnx, tiny_spec


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEDEPTH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    """Six smooth random images of two sizes and one corrupt file."""
    root = tmp_path / "frames"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        h, w = (60, 80) if i % 2 else (72, 72)
        small = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
        cv2.imwrite(str(root / f"f{i}.png"), cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def _map(seed: int, size: int = 16) -> torch.Tensor:
    return torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(seed)) + 0.5


# -- normalisation strategies ------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["global", "local", "hybrid"])
def test_normalised_strategies_ignore_a_global_affine(strategy: str) -> None:
    pred, target = _map(0), _map(1)
    base = normalized_l1(pred, target, strategy=strategy)
    assert base > 0.1
    assert torch.allclose(normalized_l1(3.0 * pred + 2.0, target, strategy=strategy), base, atol=1e-5)
    assert normalized_l1(0.5 * target - 1.0, target, strategy=strategy) < 1e-5


def test_local_normalisation_ignores_an_affine_per_cell_and_global_does_not() -> None:
    target = _map(2)
    cell_gain = torch.tensor([[1.0, 4.0, 0.5, 2.0]] * 4).repeat_interleave(4, 0).repeat_interleave(4, 1)
    pred = target * cell_gain + cell_gain  # a different affine map in each of the 4x4 cells
    assert normalized_l1(pred, target, strategy="local", grid=4) < 1e-5
    assert normalized_l1(pred, target, strategy="global") > 0.1
    assert normalized_l1(pred, target, strategy="hybrid") > 0.05  # its global and 2x2 terms see it


def test_no_normalisation_compares_raw_values() -> None:
    target = _map(3)
    assert normalized_l1(target, target, strategy="none") == 0
    assert torch.isclose(normalized_l1(target + 0.25, target, strategy="none"), torch.tensor(0.25))
    assert normalized_l1(2 * target, target, strategy="none") > 0.5
    with pytest.raises(ValueError, match="hybrid, global, local, none"):
        normalized_l1(target, target, strategy="median")


def test_distill_loss_backpropagates_and_masks() -> None:
    pred, target = _map(4).requires_grad_(), _map(5)
    mask = torch.ones_like(pred, dtype=torch.bool)
    mask[..., :8] = False
    loss = DistillLoss("hybrid")(pred, target, mask, torch.rand(2, 3, 16, 16))
    loss.backward()
    assert torch.isfinite(loss) and pred.grad is not None
    assert pred.grad[..., :7].abs().max() == 0 and pred.grad[..., 9:].abs().max() > 0


# -- cross-context geometry ------------------------------------------------------------------------------------
def test_crop_region_maps_a_box_back_to_the_student_pixels() -> None:
    """An 8x8 map whose value encodes (row, column); the box x 0.25..0.75, y 0.5..1.0 sampled at 4x4 is
    exactly rows 4..7 and columns 2..5; at 8x8, output pixel (i, j) lies at row 3.75 + i/2, column 1.75 + j/2."""
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    full = (10 * rows + cols)[None, None]
    box = torch.tensor([[0.25, 0.5, 0.75, 1.0]])
    region = crop_region(full, box, (4, 4))[0, 0]
    assert torch.allclose(region, full[0, 0, 4:8, 2:6])
    fine = crop_region(full, box, (8, 8))[0, 0]
    assert torch.isclose(fine[1, 1], torch.tensor(44.75)) and torch.isclose(fine[0, 0], torch.tensor(39.25))
    flipped = crop_region(full.flip(-1), torch.tensor([[0.25, 0.5, 0.75, 1.0]]), (4, 4))[0, 0]
    assert torch.allclose(flipped, full[0, 0, 4:8, 2:6].flip(-1))  # the mirrored box of a mirrored map


def test_crop_plan_boxes_keep_the_aspect_and_stay_inside() -> None:
    plan = CropPlan(crops=5, scale=(0.3, 0.6), seed=1)
    boxes = plan.boxes(3, (60, 80))
    assert (boxes == plan.boxes(3, (60, 80))).all() and not (boxes == plan.boxes(4, (60, 80))).all()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 80).all() and (boxes[:, 3] <= 60).all()
    assert np.allclose(w / h, 80 / 60, atol=0.1) and (w >= 0.29 * 80).all() and (w <= 0.61 * 80).all()


# -- teachers ------------------------------------------------------------------------------------------------
def _edit_tiny(tmp_path: Path, name: str, edit) -> Path:
    path = make_tiny_depth_onnx(tmp_path / name)
    model = onnx.load(str(path))
    edit(model.graph)
    onnx.save(model, str(path))
    return path


def test_a_teacher_with_nan_output_is_refused_naming_the_file(tmp_path: Path) -> None:
    def nan_bias(graph) -> None:
        bias = next(i for i in graph.initializer if i.name == "conv_b")
        bias.CopyFrom(numpy_helper.from_array(np.full(2, np.nan, np.float32), "conv_b"))

    path = _edit_tiny(tmp_path, "nan.onnx", nan_bias)
    with pytest.raises(DistillError, match=r"nan\.onnx.*NaN"):
        Teacher(path).predict(np.zeros((32, 32, 3), np.uint8) + 100)


def test_a_teacher_with_wrong_rank_output_is_refused_naming_the_file(tmp_path: Path) -> None:
    def flatten(graph) -> None:
        slice_node = next(n for n in graph.node if n.output[0] == "inverse_depth")
        slice_node.output[0] = "inv4d"
        graph.node.append(helper.make_node("Flatten", ["inv4d"], ["inverse_depth"], axis=1))
        out = next(o for o in graph.output if o.name == "inverse_depth")
        out.CopyFrom(helper.make_tensor_value_info("inverse_depth", onnx.TensorProto.FLOAT, ["batch", "hw"]))

    path = _edit_tiny(tmp_path, "flat.onnx", flatten)
    with pytest.raises(DistillError, match=r"flat\.onnx.*not a depth map"):
        Teacher(path).predict(np.zeros((32, 32, 3), np.uint8) + 100)


def test_a_third_party_teacher_runs_through_its_spec_json(tmp_path: Path) -> None:
    """Multiple-of-14 input, ImageNet mean/std, depth (not inverse) output, no edgedepth metadata."""
    path = make_tiny_depth_onnx(
        tmp_path / "third.onnx", spec=tiny_spec(size_multiple=14, input_size=(28, 28))
    )
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    spec = {
        "preset": "depth-anything-v2",
        "name": "third-party",
        "input_size": [28, 28],
        "output_kind": "depth",
        "output_name": "inverse_depth",
        "confidence_name": "confidence",
    }
    (tmp_path / "third.json").write_text(json.dumps(spec))
    with pytest.raises(Exception, match="spec"):
        Teacher(path)  # no metadata and no spec
    teacher = Teacher(path, spec=tmp_path / "third.json")
    assert teacher.spec.size_multiple == 14 and teacher.spec.mean == (0.485, 0.456, 0.406)
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3)).astype(np.uint8)
    out = teacher.predict(image)
    assert out.shape == (50, 70) and np.isfinite(out).all()


def test_a_checkpoint_of_our_family_is_a_teacher(tmp_path: Path) -> None:
    from edgedepth_train.checkpoint import save_checkpoint
    from edgedepth_train.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("efficientdepth-s", pretrained=False)
    ckpt = tmp_path / "student.safetensors"
    save_checkpoint(ckpt, {"model": model.state_dict()}, {"model": "efficientdepth-s"})
    out = Teacher(ckpt).predict(np.random.default_rng(0).integers(0, 256, (64, 96, 3)).astype(np.uint8))
    assert out.shape == (64, 96) and np.isfinite(out).all()
    assert list((tmp_path / "cache" / "teachers").glob("*.onnx"))


# -- the pseudo-label cache -------------------------------------------------------------------------------------
def test_cache_is_keyed_by_teacher_sha256_and_refuses_a_stale_folder(tmp_path: Path, frames: Path) -> None:
    images = UnlabelledImages(images=frames)
    plan = CropPlan(crops=2, label_size=(24, 32))
    t0 = make_tiny_depth_onnx(tmp_path / "t0.onnx", seed=0)
    t1 = make_tiny_depth_onnx(tmp_path / "t1.onnx", seed=1)
    a, b = pseudo_labels(t0, images, plan), pseudo_labels(t1, images, plan)
    assert a.root != b.root and a.complete() and b.complete()
    assert a.bad_count == 1 and len(images) == 7  # the corrupt file is skipped and counted
    labels = a.labels(1)
    assert labels is not None and labels["global"].shape == (24, 32) and labels["crops"].shape == (2, 24, 32)
    assert labels["global"].dtype == np.float16 and (labels["boxes"] <= 1).all()
    with pytest.raises(DistillError, match=r"stale.*teacher_sha256"):
        pseudo_labels(t1, images, plan, cache=a.root)
    with pytest.raises(DistillError, match=r"stale.*plan"):
        PseudoLabelCache(a.root, a.key["teacher_sha256"], images, CropPlan(crops=3, label_size=(24, 32)))
    # labels from the teacher's views at several sizes, mirrored too, are another cache; the default plan's
    # key has no teacher views, so caches made before they existed keep their folders
    assert "teacher_sides" not in plan.key() and "teacher_flip" not in plan.key()
    views = CropPlan(crops=2, label_size=(24, 32), teacher_sides=(64, 96), teacher_flip=True)
    c = pseudo_labels(t0, images, views)
    assert c.root != a.root and list(c.key["plan"]["teacher_sides"]) == [64, 96]
    c_labels = c.labels(1)
    assert c_labels is not None and not np.allclose(c_labels["global"], labels["global"])
    # a recipe that pins its teacher by sha256 refuses another file under the same name
    assert pseudo_labels(t0, images, plan, expected_sha256=a.key["teacher_sha256"]).root == a.root
    with pytest.raises(DistillError, match=r"t1\.onnx has sha256 .* pins"):
        pseudo_labels(t1, images, plan, expected_sha256=a.key["teacher_sha256"])


def test_an_interrupted_labelling_leaves_a_valid_cache_that_resumes(
    tmp_path: Path, frames: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = UnlabelledImages(images=frames)
    plan = CropPlan(crops=2, label_size=(24, 32))
    teacher_path = make_tiny_depth_onnx(tmp_path / "t.onnx")
    reference = pseudo_labels(teacher_path, images, plan, cache=tmp_path / "straight")

    calls = {"n": 0}
    real_predict = Teacher.predict

    def interrupted(self, bgr):
        calls["n"] += 1
        if calls["n"] == 8:  # inside the third readable image (three views each)
            raise KeyboardInterrupt
        return real_predict(self, bgr)

    monkeypatch.setattr(Teacher, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pseudo_labels(teacher_path, images, plan, cache=tmp_path / "split")
    cache = PseudoLabelCache(tmp_path / "split", reference.key["teacher_sha256"], images, plan)
    assert sorted(p.name for p in cache.root.iterdir()) == [
        "000000.bad",
        "000001.npz",
        "000002.npz",
        "key.json",
    ]
    monkeypatch.setattr(Teacher, "predict", real_predict)
    resumed = pseudo_labels(teacher_path, images, plan, cache=tmp_path / "split")
    for i in range(len(images)):
        got, want = resumed.labels(i), reference.labels(i)
        assert (got is None) == (want is None)
        if got is not None and want is not None:
            assert all(np.array_equal(got[k], want[k]) for k in want)


def test_labels_reach_training_in_the_teachers_units_whatever_its_output_scale(
    tmp_path: Path, frames: Path
) -> None:
    """A teacher that outputs 10x + 3 of another gives the same training labels: one affine per image set."""
    import shutil

    from edgedepth_train.data.pseudo import PseudoLabelled

    images = UnlabelledImages(images=frames)
    plan = CropPlan(crops=2, label_size=(24, 32))
    a = pseudo_labels(make_tiny_depth_onnx(tmp_path / "t.onnx"), images, plan, cache=tmp_path / "a")
    shutil.copytree(a.root, tmp_path / "b")
    for f in (tmp_path / "b").glob("*.npz"):
        with np.load(f) as data:
            views = {k: data[k] for k in data.files}
        views["global"], views["crops"] = (10 * views[k] + 3 for k in ("global", "crops"))
        np.savez(f, **views)
    b = PseudoLabelCache(tmp_path / "b", a.key["teacher_sha256"], images, plan)
    da, db = PseudoLabelled([a]), PseudoLabelled([b])
    labels = np.concatenate([da.draw(i, np.random.default_rng(i))["global"].ravel() for i in range(len(da))])
    median = np.median(labels)
    assert abs(median) < 1e-3 and np.mean(np.abs(labels - median)) == pytest.approx(1, rel=0.05)
    for i in range(len(da)):
        sa, sb = da.draw(i, np.random.default_rng(i)), db.draw(i, np.random.default_rng(i))
        for k in ("global", "crop"):
            np.testing.assert_allclose(sa[k], sb[k], atol=0.02)


# -- end to end ------------------------------------------------------------------------------------------------
def _distill_recipe(teacher: Path, frames: Path, cache: Path, **stage: object) -> dict:
    return {
        "name": "distill-test",
        "model": "efficientdepth-s",
        "pretrained": False,
        "batch_size": 4,
        "workers": 0,
        "threads": 1,
        "export_size": [64, 64],
        "sources": {
            "real": {
                "kind": "pseudo",
                "teacher": str(teacher),
                "images": str(frames),
                "crops": 2,
                "label_size": [64, 64],
                "cache": str(cache),
            },
            "synthetic": {"kind": "synthetic", "texture_dir": None, "length": 100},
        },
        "stages": [
            {
                "name": "distill",
                "iterations": 40,
                "resolution": [64, 64],
                "data": {"real": 1.0},
                "losses": {"distill": 1.0, "distill_shared": 0.5, "distill_local_global": 0.5},
                "weighting": "none",
                "lr": 2e-3,
                "warmup": 1,
                **stage,
            }
        ],
    }


def _fixed_batch_loss(trainer: Trainer) -> float:
    data = StageData(trainer.recipe, 0, trainer.spec)
    items = [data[i] for i in range(8)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    trainer.model.eval()
    with torch.no_grad():
        terms = trainer.compute_losses(trainer.forward(trainer.model, batch), batch)
    return float(sum(terms.values()))


def test_a_tiny_teacher_distils_into_a_student_and_the_loss_falls(tmp_path: Path, frames: Path) -> None:
    teacher = make_tiny_depth_onnx(tmp_path / "teacher.onnx")
    recipe = parse_recipe(_distill_recipe(teacher, frames, tmp_path / "labels"))
    trainer = Trainer(recipe, tmp_path / "run")
    trainer._setup_stage()
    before = _fixed_batch_loss(trainer)
    trainer.fit(max_steps=40)
    after = _fixed_batch_loss(trainer)
    assert after < 0.8 * before, (before, after)


def test_mixed_batches_train_labelled_and_distillation_terms(tmp_path: Path, frames: Path) -> None:
    teacher = make_tiny_depth_onnx(tmp_path / "teacher.onnx")
    raw = _distill_recipe(
        teacher,
        frames,
        tmp_path / "labels",
        data={"real": 0.5, "synthetic": 0.5},
        losses={"ssi_l1": 1.0, "distill": 1.0, "distill_local_global": 0.5},
        weighting="uncertainty",
    )
    trainer = Trainer(parse_recipe(raw), tmp_path / "run")
    trainer._setup_stage()
    data = StageData(trainer.recipe, 0, trainer.spec)
    items = [data[i] for i in range(8)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    assert batch["mask"].flatten(1).any(1).any() and batch["pseudo_mask"].flatten(1).any(1).any()
    terms = trainer.compute_losses(trainer.forward(trainer.model, batch), batch)
    assert set(terms) == {"ssi_l1", "distill", "distill_local_global"}
    trainer.fit(max_steps=3)
    assert trainer.step == 3


def test_distill_command_runs_a_shipped_style_recipe(tmp_path: Path, frames: Path) -> None:
    import yaml

    teacher = make_tiny_depth_onnx(tmp_path / "teacher.onnx")
    raw = _distill_recipe(teacher, frames, tmp_path / "unused")
    raw["sources"]["real"].pop("images")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    code = train_main(
        ["distill", "--teacher", str(teacher), "--images", str(frames), "--recipe", str(tmp_path / "recipe.yaml"),
         "--out", str(out), "--steps", "2", "--normalization", "global", "--cache", str(tmp_path / "labels"),
         "--teacher-sides", "64", "96", "--teacher-flip"]
    )  # fmt: skip
    assert code == 0 and (out / "checkpoint.safetensors").is_file()
    written = yaml.safe_load((out / "recipe.yaml").read_text())
    assert written["stages"][0]["distill_norm"] == "global" and written["stages"][0]["iterations"] == 2
    assert written["sources"]["real"]["images"] == str(frames)
    real = written["sources"]["real"]
    assert real["teacher_sides"] == [64, 96] and real["teacher_flip"] is True
    assert json.loads((tmp_path / "labels" / "key.json").read_text())["plan"]["teacher_sides"] == [64, 96]
    bad = train_main(["distill", "--teacher", str(tmp_path / "none.onnx"), "--images", str(frames),
                      "--recipe", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "x")])  # fmt: skip
    assert bad == 2


FORK_AFTER_LABELLING = r"""
import sys, time
import torch
from torch.utils.data import DataLoader, Dataset
from edgedepth_train.data.unlabelled import UnlabelledImages
from edgedepth_train.distill import CropPlan, pseudo_labels

teacher, videos, cache = sys.argv[1:4]
images = UnlabelledImages(videos=videos, frame_step=40)
pseudo_labels(teacher, images, CropPlan(crops=1, label_size=(24, 32)), cache=cache)

class Frames(Dataset):
    def __len__(self):
        return 6
    def __getitem__(self, i):
        return torch.tensor(images._load(i)["bgr"].shape)

for _ in DataLoader(Frames(), batch_size=2, num_workers=2, timeout=60):
    pass
print("workers read frames")
"""


def test_data_workers_read_videos_after_labelling_them(video_dir: Path, tmp_path: Path) -> None:
    """Labelling decodes the videos in this process; workers forked while a capture's decoder threads ran
    hung at their first VideoCapture. In its own interpreter, as the loader test in test_trainer.py."""
    import subprocess
    import sys

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "box.mp4").symlink_to(video_dir / "box.mp4")  # H.264: FFmpeg decodes it with threads
    teacher = make_tiny_depth_onnx(tmp_path / "t.onnx")
    cmd = [sys.executable, "-c", FORK_AFTER_LABELLING, str(teacher), str(videos), str(tmp_path / "cache")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "workers read frames" in out.stdout
