"""NNCF post-training INT8 quantization of an edgedepth ONNX model, behind the accuracy gate.

The FP32 model's ModelSpec drives calibration (``calibration.py``); NNCF's ONNX backend inserts QDQ pairs;
the result carries the spec with ``precision=int8`` and provenance (calibration hash, NNCF version, PTQ
settings), and is written only if :func:`gate.publish` passes it. Activations are always quantized per
tensor: NNCF's CPU setup allows per-channel activation quantizers before depthwise convolutions, and in the
attention blocks' Mix-FFN it places them on the (batch, tokens, channels) tensor before the reshape, with one
scale per *token*. That graph only runs at the calibration resolution (OpenVINO refuses to load it at all).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedepth.artifact import ModelSpec, Precision
from edgedepth.errors import InputError
from edgedepth.fileio import file_sha256
from edgedepth.metrics import depth_metrics
from edgedepth.model_file import read_onnx_spec
from edgedepth.rgbd import RGBDFrame, iter_rgbd

from .calibration import DEFAULT_FRAMES, DEFAULT_MIN_FRAMES, CalibrationData, gather_calibration
from .gate import GateConfig, GateReport, publish
from .graph import check_patterns, head_scope, resolve_nodes, set_spec

PRESETS = ("performance", "mixed")
MODEL_TYPES = ("transformer", "none")
ValidationFn = Callable[[Any, Iterable[RGBDFrame]], tuple[float, list[float]]]


@dataclass(frozen=True)
class PTQSettings:
    """NNCF settings. ``model_type="transformer"`` enables NNCF's transformer patterns (SmoothQuant, no
    quantizers on LayerNorm/Softmax paths); ``keep_head_float`` leaves the density head's last convolution
    and the readout in float; ``subset_size`` None uses every calibration frame; ``accuracy_control`` runs
    ``nncf.quantize_with_accuracy_control`` with the gate's metric (needs a validation RGB-D folder)."""

    preset: str = "performance"
    model_type: str = "transformer"
    fast_bias_correction: bool = True
    keep_head_float: bool = True
    ignored_names: tuple[str, ...] = ()
    ignored_patterns: tuple[str, ...] = ()
    subset_size: int | None = None
    accuracy_control: bool = False

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise InputError(f"preset={self.preset!r} is not valid; choose one of {', '.join(PRESETS)}")
        if self.model_type not in MODEL_TYPES:
            raise InputError(
                f"model_type={self.model_type!r} is not valid; choose one of {', '.join(MODEL_TYPES)}"
            )
        if self.subset_size is not None and self.subset_size < 1:
            raise InputError(f"subset_size={self.subset_size} must be positive (or None for all frames)")


def ignored_names(model: Any, settings: PTQSettings) -> list[str]:
    """The node names kept in float: the head scope (if asked) plus the user's nodes or layers, each checked
    against the graph (as are the patterns), so that a misspelt name stops the run instead of being ignored."""
    names = head_scope(model) if settings.keep_head_float else []
    check_patterns(model, settings.ignored_patterns)
    return [*names, *(n for n in resolve_nodes(model, settings.ignored_names) if n not in names)]


def nncf_arguments(names: list[str], settings: PTQSettings, subset_size: int) -> dict[str, Any]:
    """Keyword arguments shared by ``nncf.quantize`` and ``nncf.quantize_with_accuracy_control``, with the
    node ``names`` to keep in float."""
    import nncf

    scope = None
    if names or settings.ignored_patterns:
        scope = nncf.IgnoredScope(names=names, patterns=list(settings.ignored_patterns), validate=False)
    return {
        "preset": nncf.QuantizationPreset(settings.preset),
        "model_type": nncf.ModelType.TRANSFORMER if settings.model_type == "transformer" else None,
        "fast_bias_correction": settings.fast_bias_correction,
        "subset_size": subset_size,
        "ignored_scope": scope,
    }


def advanced_parameters() -> Any:
    """Per-tensor activation quantizers everywhere (see the module docstring for why)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

    return AdvancedQuantizationParameters(
        activations_quantization_params=QuantizationParameters(per_channel=False)
    )


def int8_spec(
    spec: ModelSpec,
    model_path: Path,
    data: CalibrationData,
    settings: PTQSettings,
    names: list[str],
    subset_size: int,
) -> ModelSpec:
    """The FP32 spec with precision int8 and the quantization's provenance added."""
    import nncf

    provenance = dict(spec.provenance)
    provenance.update(
        {
            "quantize.source_model": model_path.name,
            "quantize.source_sha256": file_sha256(model_path),
            "quantize.calibration_sha256": data.sha256,
            "quantize.calibration_frames": str(len(data)),
            "quantize.calibration_skipped": str(len(data.skipped)),
            "quantize.calibration_input_size": f"{data.input_hw[0]}x{data.input_hw[1]}",
            "quantize.calibration_sources": ", ".join(data.sources),
            "quantize.nncf_version": nncf.__version__,
            "quantize.preset": settings.preset,
            "quantize.model_type": settings.model_type,
            "quantize.fast_bias_correction": json.dumps(settings.fast_bias_correction),
            "quantize.ignored_scope": json.dumps(
                {"names": names, "patterns": list(settings.ignored_patterns)}
            ),
            "quantize.subset_size": str(subset_size),
            "quantize.accuracy_control": json.dumps(settings.accuracy_control),
            "quantize.activations": "per-tensor",
        }
    )
    return spec.with_updates(precision=Precision.INT8, provenance=provenance)


def rgbd_validation_fn(spec: ModelSpec, long_side: int | None) -> ValidationFn:
    """NNCF's validation function: minus the mean AbsRel on RGB-D frames (NNCF wants higher = better).

    The same protocol as the gate: the runtime's Predictor (preprocessing at ``long_side``, the spec's
    outputs, back to the frame's size) over an ONNX Runtime session of the candidate, then ``depth_metrics``.
    """
    import onnxruntime as ort

    from edgedepth.backends.onnxruntime import OnnxRuntimeBackend
    from edgedepth.predictor import InputPolicy, Predictor

    policy = InputPolicy(spec, long_side=long_side or max(spec.input_size))

    def validate(model: Any, frames: Iterable[RGBDFrame]) -> tuple[float, list[float]]:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        with OnnxRuntimeBackend(session, spec, source="the INT8 candidate") as backend:
            predictor = Predictor(backend, policy)
            values = [
                -depth_metrics(predictor.predict(f.bgr).inverse_depth, f.depth_m).abs_rel for f in frames
            ]
        return float(np.mean(values)), values

    return validate


def quantize_int8(
    model_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    calibration: CalibrationData | Sequence[str | os.PathLike[str]],
    gate: GateConfig,
    settings: PTQSettings | None = None,
    num_frames: int = DEFAULT_FRAMES,
    min_frames: int = DEFAULT_MIN_FRAMES,
    input_size: tuple[int, int] | None = None,
    report_path: str | os.PathLike[str] | None = None,
) -> GateReport:
    """Quantize ``model_path`` to INT8 QDQ and write it to ``output`` only if the accuracy gate passes.

    ``calibration`` is a list of sources (image folders/globs, videos, RGB-D folders) or prepared
    :class:`CalibrationData`. Raises CalibrationError (too few or unusable frames) or AccuracyGateError
    (gate failed: no model written, the report still is). Returns the gate report.
    """
    import nncf
    import onnx

    settings = settings or PTQSettings()
    model_path = Path(model_path)
    spec = read_onnx_spec(model_path)
    if gate.rgbd is None and not gate.images:
        if isinstance(calibration, CalibrationData):
            raise InputError("give the gate a validation RGB-D folder (rgbd) or images (agreement)")
        gate = GateConfig(**{**asdict(gate), "images": tuple(os.fspath(s) for s in calibration)})
    if settings.accuracy_control and gate.rgbd is None:
        raise InputError("accuracy_control needs a validation RGB-D folder (gate rgbd=...) for its metric")
    model = onnx.load(str(model_path))
    names = ignored_names(model, settings)  # a misspelt name stops here, before the calibration's work
    t0 = time.perf_counter()
    if not isinstance(calibration, CalibrationData):
        calibration = gather_calibration(calibration, spec, num_frames, min_frames, input_size)
    t1 = time.perf_counter()
    subset = min(settings.subset_size or len(calibration), len(calibration))
    kwargs = nncf_arguments(names, settings, subset)
    dataset = nncf.Dataset(calibration, lambda x: {spec.input_name: x})
    if settings.accuracy_control:
        frames = list(iter_rgbd(gate.rgbd))  # type: ignore[arg-type]
        quantized = nncf.quantize_with_accuracy_control(
            model,
            dataset,
            nncf.Dataset(frames),
            rgbd_validation_fn(spec, gate.long_side),
            max_drop=gate.max_drop,
            advanced_quantization_parameters=advanced_parameters(),
            **kwargs,
        )
    else:
        quantized = nncf.quantize(model, dataset, advanced_parameters=advanced_parameters(), **kwargs)
    t2 = time.perf_counter()
    set_spec(quantized, int8_spec(spec, model_path, calibration, settings, names, subset))
    details = {
        "precision": "int8",
        "reference_model": str(model_path),
        "calibration": calibration.summary(),
        "settings": {**asdict(settings), "ignored_names": names, "subset_size": subset},
        "nncf_version": nncf.__version__,
        "seconds": {"calibration_data": round(t1 - t0, 1), "quantize": round(t2 - t1, 1)},
    }
    return publish(quantized, output, model_path, gate, report_path, details, candidate_name="int8")
