"""What a benchmark run measures, and the parsing of the options into it (each error names its option)."""

from __future__ import annotations

import os
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgedepth.artifact import ModelSpec, Precision, parse_enum
from edgedepth.backends import BACKENDS, BackendKind, available_backends
from edgedepth.embedded import DEMO_CLIP, default_model_path
from edgedepth.errors import InputError, choices
from edgedepth.model_file import read_spec
from edgedepth.preprocess import parse_hw

from .reference import VIT_S14, ViTConfig

DEFAULT_SIZES = ((256, 256), (384, 384), (512, 512))
DEFAULT_BATCHES = (1, 4)
DEFAULT_PRECISIONS = (Precision.FP32, Precision.INT8)
PARTS = ("latency", "stream", "preprocess", "memory", "peak", "reference")
CPU_BACKENDS = (BackendKind.ONNXRUNTIME, BackendKind.OPENVINO)


@dataclass(frozen=True)
class ModelEntry:
    """One of our model files: an ONNX file runs on the CPU backends, an engine on TensorRT."""

    path: Path
    spec: ModelSpec | None  # an engine's comes from its header (None where that cannot be read)
    engine_precision: str | None = None  # the precision an engine was built in

    @property
    def is_engine(self) -> bool:
        return self.path.suffix.lower() == ".engine"

    @property
    def precision(self) -> str:
        if self.engine_precision is not None:
            return self.engine_precision
        if self.spec is not None:
            return self.spec.precision.value
        stem = self.path.stem.lower()
        return next((p.value for p in Precision if p.value in stem), "fp32")

    @property
    def label(self) -> str:
        name = self.spec.name if self.spec is not None else self.path.stem
        return f"{name} {self.precision}" + (" engine" if self.is_engine else "")


def count(default: int, minimum: int, help: str) -> Any:
    """A numeric setting: its default, its smallest valid value and its ``--option`` help, in one place
    (``__main__`` generates the option from it; ``BenchmarkConfig`` checks the minimum)."""
    return field(default=default, metadata={"minimum": minimum, "help": help})


@dataclass(frozen=True)
class BenchmarkConfig:
    models: tuple[ModelEntry, ...]
    backends: tuple[BackendKind, ...]
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES
    batches: tuple[int, ...] = DEFAULT_BATCHES
    threads: int = field(
        default_factory=lambda: os.cpu_count() or 1,
        metadata={"minimum": 1, "help": "threads per backend and OpenCV (default: all cores)"},
    )
    warmup: int = count(5, 1, "untimed calls per model and cell first")
    runs: int = count(20, 1, "timed calls per model, cell and round")
    rounds: int = count(3, 1, "interleaved rounds (reference and ours alternate)")
    ref_warmup: int = count(1, 1, "untimed reference calls per cell")
    ref_runs: int = count(2, 1, "timed reference calls per cell and round")
    memory_runs: int = count(10, 0, "calls per cell in the memory probe")
    stream_rounds: int = count(3, 1, "stream passes, each after a model-only block")
    stream_runs: int = count(50, 0, "model-only calls per stream round")
    stream_frames: int = count(120, 0, "frames per stream pass (0: all)")
    preprocess_runs: int = count(50, 1, "calls per preprocessing cell")
    video: Path = DEMO_CLIP
    reference: ViTConfig = VIT_S14
    reference_engine: Path | None = None
    cache_dir: Path | None = None
    skip: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for f in counted_fields():
            value = getattr(self, f.name)
            if value < f.metadata["minimum"]:
                raise InputError(
                    f"--{f.name.replace('_', '-')}={value} must be at least {f.metadata['minimum']}"
                )
        if not self.video.is_file() and "stream" not in self.skip:
            raise InputError(f"--video {self.video}: no such file")


def counted_fields() -> list[Field[Any]]:
    """The numeric settings, each of which is an ``--option`` of the same name."""
    return [f for f in fields(BenchmarkConfig) if "minimum" in f.metadata]


def parse_parts(skip: str, only: str | None) -> frozenset[str]:
    """The parts to leave out, from ``--skip`` or (its complement) ``--only``."""
    if only is not None and skip.strip():
        raise InputError("--skip and --only exclude each other; give one")
    option, text = ("--only", only) if only is not None else ("--skip", skip)
    named = frozenset(parse_list(text, option)) if text.strip() else frozenset()
    unknown = sorted(named - set(PARTS))
    if unknown:
        raise InputError(f"{option}: {', '.join(unknown)} unknown; choose from {', '.join(PARTS)}")
    return frozenset(PARTS) - named if only is not None else named


def parse_list(text: str, option: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"{option} is empty; give a comma-separated list")
    return items


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``256,384`` (squares) or ``192x256`` (height x width) -> ((h, w), ...)."""
    return tuple(parse_hw(item, "--sizes") for item in parse_list(text, "--sizes"))


def check_sizes(sizes: tuple[tuple[int, int], ...], multiple: int, name: str) -> None:
    bad = [f"{h}x{w}" for h, w in sizes if h % multiple or w % multiple]
    if bad:
        raise InputError(
            f"--sizes: {', '.join(bad)} not valid for {name}; sides must be multiples of {multiple} "
            f"(e.g. {', '.join(str(multiple * k) for k in (8, 12, 16))})"
        )


def parse_batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(b) for b in parse_list(text, "--batches"))
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise InputError(f"--batches={text!r} is not valid; use positive integers such as 1,4")
    return batches


def parse_precisions(text: str) -> tuple[Precision, ...]:
    try:
        return tuple(parse_enum(Precision, p, "--precisions") for p in parse_list(text, "--precisions"))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def parse_backends(text: str | None, engines: bool) -> tuple[BackendKind, ...]:
    """Named backends (each must be available), or every available one; TensorRT needs engines."""
    statuses = {s.kind: s for s in available_backends()}
    if text is None:
        kinds = [k for k in BACKENDS if statuses[k].available and (k is not BackendKind.TENSORRT or engines)]
        if not kinds:
            reasons = "; ".join(f"{s.kind}: {s.reason}" for s in statuses.values())
            raise InputError(f"no backend is available to benchmark: {reasons}")
        return tuple(kinds)
    kinds = []
    for name in parse_list(text, "--backends"):
        if name.lower() not in BACKENDS:
            raise InputError(
                f"--backends: {name!r} is not a backend; choose from {choices([k.value for k in BACKENDS])}"
            )
        kind = BackendKind(name.lower())
        if not statuses[kind].available:
            raise InputError(f"--backends: {kind.value} is not available here: {statuses[kind].reason}")
        if kind is BackendKind.TENSORRT and not engines:
            raise InputError(
                "--backends tensorrt needs at least one --engine PATH (TensorRT runs .engine files)"
            )
        kinds.append(kind)
    return tuple(dict.fromkeys(kinds))


def model_entries(
    models: list[Path] | None, precisions: tuple[Precision, ...], engines: list[Path] | None
) -> tuple[ModelEntry, ...]:
    """Our models: ``--model`` files, or the embedded default at each precision; plus ``--engine`` files."""
    paths = list(models) if models else [default_model_path(p) for p in precisions]
    entries = []
    for path in paths:
        if path.suffix.lower() != ".onnx":
            raise InputError(f"--model {path}: give an .onnx file (TensorRT engines go with --engine)")
        entries.append(ModelEntry(path, read_spec(path)))
    for path in engines or []:
        if path.suffix.lower() != ".engine" or not path.is_file():
            raise InputError(f"--engine {path}: give an existing TensorRT .engine file")
        entries.append(engine_entry(path))
    return tuple(entries)


def engine_entry(path: Path) -> ModelEntry:
    """An engine with the spec and precision from its header (read without TensorRT)."""
    from edgedepth.engine_file import read_engine_header

    header, _ = read_engine_header(path)
    return ModelEntry(path, header.spec, header.spec.precision.value)
