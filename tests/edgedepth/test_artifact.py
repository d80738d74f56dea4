"""ModelSpec: metadata round trip and errors that name the key."""

from __future__ import annotations

import json

import pytest

from edgedepth.artifact import IMAGENET_MEAN, IMAGENET_STD, ColorOrder, Interpolation, ModelSpec, Precision
from edgedepth.errors import ModelLoadError
from edgedepth.model_file import read_spec


def test_round_trip() -> None:
    spec = ModelSpec(
        name="x",
        input_size=(224, 320),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.5, 0.75),
        precision=Precision.INT8,
        color_order=ColorOrder.BGR,
        provenance={"a": "b"},
    )
    assert ModelSpec.from_metadata(spec.to_metadata()) == spec


def test_missing_spec_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match=r"edgedepth\.spec_format"):
        ModelSpec.from_metadata({"other": "1"}, source="m.onnx")


X = ModelSpec(name="x", input_size=(256, 256), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@pytest.mark.parametrize("key", ["name", "input_size", "mean", "std"])
def test_a_missing_required_field_names_the_key(key: str) -> None:
    """Input size, mean and std have no defaults: a guess would feed the model silently wrong values."""
    meta = X.to_metadata()
    del meta[f"edgedepth.{key}"]
    with pytest.raises(ModelLoadError, match=rf"edgedepth\.{key} is missing"):
        ModelSpec.from_metadata(meta)
    with pytest.raises(TypeError, match=key):
        ModelSpec(
            **{
                k: v
                for k, v in [("name", "x"), ("input_size", (256, 256)), ("mean", X.mean), ("std", X.std)]
                if k != key
            }
        )


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("edgedepth.resize_mode", '"squash"', "letterbox"),
        ("edgedepth.input_size", '"big"', "edgedepth.input_size"),
        ("edgedepth.mean", "not json", "edgedepth.mean"),
        ("edgedepth.input_size", "[250, 250]", "multiples"),
    ],
)
def test_invalid_values_name_the_key(key: str, value: str, match: str) -> None:
    meta = X.to_metadata()
    meta[key] = value
    with pytest.raises(ModelLoadError, match=match):
        ModelSpec.from_metadata(meta)


def test_third_party_presets() -> None:
    """Published preprocessing: Depth Anything V2 (multiples of 14, ImageNet mean/std, bicubic), overridable."""
    spec = ModelSpec.preset("depth-anything-v2", output_name="predicted_depth")
    assert (spec.input_size, spec.size_multiple, spec.interpolation) == ((518, 518), 14, Interpolation.CUBIC)
    assert spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD and spec.output_name == "predicted_depth"
    assert (
        ModelSpec.preset("distill-any-depth").preprocessing()
        == ModelSpec.preset("depth-anything-v2").preprocessing()
    )
    assert ModelSpec.preset("midas-small").size_multiple == 32
    with pytest.raises(ValueError, match="depth-anything-v2"):
        ModelSpec.preset("zoedepth")
    with pytest.raises(ValueError, match="multiples"):
        ModelSpec.preset("depth-anything-v2", input_size=(520, 518))


def test_preprocessing_lists_what_feeds_the_model() -> None:
    pre = X.preprocessing()
    assert pre == {"resize_mode": "letterbox", "interpolation": "linear", "mean": [0.5] * 3, "std": [0.5] * 3,
                   "color_order": "rgb", "size_multiple": 32, "input_name": "image"}  # fmt: skip
    assert X.with_updates(precision=Precision.INT8, version="2").preprocessing() == pre


def test_read_spec_reads_onnx_metadata(tmp_path) -> None:
    from tests.tiny_models import make_tiny_depth_onnx, tiny_spec

    path = make_tiny_depth_onnx(tmp_path / "m.onnx")
    assert read_spec(path) == tiny_spec()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"std": (float("nan"),) * 3}, "std"),
        ({"mean": (0.5, float("inf"), 0.5)}, "mean"),
        ({"std": (0.0, 1.0, 1.0)}, "out of range"),
        ({"input_size": (65536, 65536), "size_multiple": 1}, "input size limit"),
        ({"size_multiple": 0}, "size_multiple"),
        ({"input_size": (256.5, 256)}, "two integers"),
        ({"name": ""}, "name"),
        ({"resize_mode": "squash"}, "letterbox"),
    ],
)
def test_the_spec_validator_refuses_what_once_loaded(changes: dict, match: str) -> None:
    """NaN std once gave NaN outputs, a 65536-square input a 48 GB allocation: refused where a spec is made."""
    fields = {"name": "x", "input_size": (256, 256), "mean": (0.5,) * 3, "std": (0.5,) * 3, **changes}
    with pytest.raises(ValueError, match=match):
        ModelSpec(**fields)
    meta = {**X.to_metadata(), **{f"edgedepth.{k}": json.dumps(v if not isinstance(v, tuple) else list(v))
                                  for k, v in changes.items()}}  # fmt: skip
    with pytest.raises(ModelLoadError):
        ModelSpec.from_metadata(meta)


def test_onnx_metadata_is_read_without_onnx_or_a_session(tmp_path) -> None:
    """The protobuf reader gives exactly what the onnx package gives, for the shipped models; files that
    are not ONNX models, or are cut short, are refused naming the file."""
    import onnx

    import edgedepth
    from edgedepth.model_file import read_onnx_metadata

    for path in edgedepth.embedded.MODELS_DIR.glob("*.onnx"):
        expected = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        assert read_onnx_metadata(path) == expected and expected
    data = (edgedepth.embedded.MODELS_DIR / "efficientdepth-s-int8.onnx").read_bytes()
    cases = {"empty.onnx": b"", "cut.onnx": data[: len(data) // 2], "text.onnx": b"hello world\n" * 10}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ModelLoadError, match=f"{name}: not a readable ONNX model"):
            read_onnx_metadata(tmp_path / name)


def test_the_readers_old_home_still_works_with_a_warning() -> None:
    import edgedepth.artifact as artifact
    from edgedepth.model_file import read_spec

    with pytest.warns(DeprecationWarning, match="moved to edgedepth.model_file.read_spec"):
        assert artifact.read_spec is read_spec
    with pytest.raises(AttributeError):
        artifact.no_such_name  # noqa: B018


def test_the_stagers_old_names_still_work_with_a_warning() -> None:
    import edgedepth.staging as staging
    from edgedepth.predictor import Predictor
    from edgedepth.result import DepthResult

    with pytest.warns(DeprecationWarning, match="edgedepth.predictor.Predictor"):
        assert staging.FrameStager is Predictor
    with pytest.warns(DeprecationWarning, match="moved to edgedepth.result"):
        assert staging.DepthResult is DepthResult
