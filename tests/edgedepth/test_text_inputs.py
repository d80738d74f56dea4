"""Every text input a user names is read one way: regular files only, a size cap, bounded nesting, and a
typed error naming the file for everything else (the cases an outside probe found, one by one)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from edgedepth.clouds import read_points
from edgedepth.errors import InputError
from edgedepth.intrinsics import Intrinsics
from edgedepth.textinput import MAX_TEXT_BYTES, load_json_input, read_text_input

ROS_CAMERA_INFO = """image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [520.5, 0.0, 319.5, 0.0, 521.0, 239.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.01, -0.02, 0.0, 0.0, 0.0]
"""


def test_a_ros_camera_info_yaml_loads(tmp_path: Path) -> None:
    (tmp_path / "ost.yaml").write_text(ROS_CAMERA_INFO)
    k = Intrinsics.load(tmp_path / "ost.yaml")
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (520.5, 521.0, 319.5, 239.5, 640, 480)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.yaml", "", "expected a mapping"),
        ("binary.yaml", "\x00\x01\x02camera", "not a text file"),
        (
            "row.json",
            json.dumps({"camera_matrix": [1, 2, 3], "width": 4, "height": 4}),
            "must hold 9 numbers",
        ),
        (
            "scalar.json",
            json.dumps({"camera_matrix": 5, "width": 4, "height": 4}),
            "must be a list of 9 numbers",
        ),
        ("text.json", json.dumps({"K": "abc", "width": 4, "height": 4}), "must be a list of 9 numbers"),
        ("objects.json", json.dumps({"K": [{}] * 9, "width": 4, "height": 4}), "must be a finite number"),
        (
            "width.yaml",
            ROS_CAMERA_INFO.replace("image_width: 640", 'image_width: "abc"'),
            "image_width='abc'",
        ),
        (
            "bool.yaml",
            ROS_CAMERA_INFO.replace("image_height: 480", "image_height: true"),
            "image_height=True",
        ),
        ("deep.json", "[" * 5000 + "]" * 5000, "nested"),
        ("deep.yaml", "a: " + "[" * 3000 + "]" * 3000, "nested"),
        (
            "aliases.yaml",
            "a: &a [1,1,1,1,1,1,1,1,1]\n"
            + "".join(
                f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "more than",
        ),
        (
            "nan.json",
            '{"fx": NaN, "fy": 1, "cx": 0, "cy": 0, "width": 4, "height": 4}',
            "must be a finite number",
        ),
    ],
)
def test_bad_calibration_files_are_typed_errors_naming_them(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_bytes(content.encode())
    with pytest.raises(InputError, match=message) as raised:
        Intrinsics.load(tmp_path / name)
    assert name in str(raised.value)


def _unblock_reader(fifo: Path) -> None:
    """Open ``fifo`` for writing without blocking: frees a reader stuck in open(), and does nothing (ENXIO)
    when there is none. A plain open() here would itself block for ever, and hold the test session open."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_only_regular_files_are_read_and_size_is_capped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    guard = threading.Timer(30, _unblock_reader, [tmp_path / "pipe.yaml"])  # a hang guard only
    guard.daemon = True
    guard.start()
    try:
        with pytest.raises(InputError, match=r"pipe\.yaml is not a regular file"):
            Intrinsics.load(tmp_path / "pipe.yaml")
    finally:
        guard.cancel()
    with pytest.raises(InputError, match="/dev/zero is not a regular file"):
        read_points("/dev/zero")
    (tmp_path / "passwd.yaml").symlink_to("/etc/passwd")  # followed, but it is no calibration
    with pytest.raises(InputError, match=r"passwd\.yaml"):
        Intrinsics.load(tmp_path / "passwd.yaml")
    (tmp_path / "big.csv").write_bytes(b"1,2,3\n" * (MAX_TEXT_BYTES // 6 + 10))
    with pytest.raises(InputError, match=f"at most {MAX_TEXT_BYTES} are read"):
        read_text_input(tmp_path / "big.csv", "--metric-points")
    with pytest.raises(InputError, match="does not exist"):
        load_json_input(tmp_path / "nowhere.json", "teacher spec")
    (tmp_path / "latin1.yaml").write_bytes("fx: 1\nname: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8 text"):
        Intrinsics.load(tmp_path / "latin1.yaml")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("u,v,depth_m\n10,20,1.5\n30,40,2.5\n", [[10, 20, 1.5], [30, 40, 2.5]]),
        ("1e2,20,1.5\n30,40,2.5\n", [[100, 20, 1.5], [30, 40, 2.5]]),  # numeric first row: not a header
        ("+10,20,1.5\n", [[10, 20, 1.5]]),
        ("\n10, 20, 1.5\n\n", [[10, 20, 1.5]]),
    ],
)
def test_points_csv_reads_exactly_three_numbers_a_row(tmp_path: Path, content: str, expected: list) -> None:
    (tmp_path / "p.csv").write_text(content)
    np.testing.assert_allclose(read_points(str(tmp_path / "p.csv")), expected)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("10,20\n30,40\n50,60\n", "line 1: expected u, v, depth_m"),  # never regrouped into triples
        ("u,v,depth_m\n10,20,1.5\n10,20,x\n", "line 3"),
        ("10,20,1.5,7\n", "line 1"),
        ("10,20,inf\n", "line 1"),
    ],
)
def test_points_csv_refuses_other_rows_naming_the_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "p.csv").write_text(content)
    with pytest.raises(InputError, match=message):
        read_points(str(tmp_path / "p.csv"))


@pytest.mark.train
def test_teacher_specs_and_recipes_refuse_unknown_fields_and_non_finite_values(tmp_path: Path) -> None:
    from edgedepth_train.distill import DistillError, load_spec_json
    from edgedepth_train.errors import RecipeError
    from edgedepth_train.recipe import RECIPES_DIR, load_recipe

    (tmp_path / "spec.json").write_text(json.dumps({"preset": "depth-anything-v2", "outptu_name": "depth"}))
    with pytest.raises(DistillError, match=r"unknown field.*outptu_name; known: .*output_name"):
        load_spec_json(tmp_path / "spec.json")
    (tmp_path / "deep.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(DistillError, match=r"deep\.json: nested"):
        load_spec_json(tmp_path / "deep.json")
    recipe = (RECIPES_DIR / "smoke.yaml").read_text().replace("warmup: 2", "warmup: 2\n    lr: .nan")
    (tmp_path / "nan.yaml").write_text(recipe)
    with pytest.raises(RecipeError, match=r"stages\[0\]\.lr=nan must be a finite number"):
        load_recipe(tmp_path / "nan.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"\x00\xff\xfe")
    with pytest.raises(RecipeError, match=r"bin\.yaml is not a text file"):
        load_recipe(tmp_path / "bin.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(RecipeError, match=r"fifo\.yaml is not a regular file"):
        load_recipe(tmp_path / "fifo.yaml")


@pytest.mark.parametrize("side", [0, -5, 1, 100_000, 2.5, True])
def test_long_side_is_checked_against_the_specs_limits(tiny_onnx: Path, side: object) -> None:
    from edgedepth import DepthEstimator

    with pytest.raises(
        InputError, match=f"long_side={side!r} for tiny-depth: give a whole number of pixels from 8"
    ):
        DepthEstimator(tiny_onnx, long_side=side)  # type: ignore[arg-type]


@pytest.mark.train
def test_a_pickle_named_safetensors_is_a_typed_error(tmp_path: Path) -> None:
    import pickle

    from edgedepth.errors import ModelLoadError
    from edgedepth_train.checkpoint import load_trained

    (tmp_path / "model.safetensors").write_bytes(pickle.dumps({"model": [1, 2, 3]}))
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: not a readable checkpoint"):
        load_trained(tmp_path / "model.safetensors")
