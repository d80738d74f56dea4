"""The edgedepth TensorRT engine file: a JSON header, then TensorRT's serialized plan.

Layout: 16 magic bytes, a little-endian uint32 header length, the UTF-8 JSON header, the plan. The header
carries the ModelSpec (so an engine needs no side file), the TensorRT version and GPU compute capability it
was built with, the precision and build flags, the input's optimization profile and the sha256 of the source
ONNX and of the plan. Engines are not portable: :func:`check_compatibility` compares the header with the
running TensorRT and GPU before anything is deserialized and names the rebuild command on a mismatch.

Pure Python on purpose: the builder (edgedepth_quantize) writes these files, the TensorRT backend reads
them, and both are tested without TensorRT.
"""

from __future__ import annotations

import hashlib
import shlex
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .artifact import MAX_INPUT_PIXELS, ModelSpec
from .errors import InputError, ModelLoadError, choices
from .fileio import read_framed_header, write_framed

MAGIC = b"EDGEDEPTH-TRT\x00\x00\x01"
HEADER_FORMAT = 1
MAX_HEADER_BYTES = 1 << 20
MAX_PROFILE_BATCH = 1024
_LENGTH = struct.Struct("<I")

HARDWARE_COMPATIBILITY = ("none", "ampere_plus")
INT8_MODES = ("qdq", "calibrator")
AMPERE = (8, 0)


@dataclass(frozen=True)
class ShapeProfile:
    """One optimization profile of the NCHW input: the smallest, the tuned-for and the largest shape."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            shape = getattr(self, name)
            if (
                len(shape) != 4
                or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
                or any(d < 1 for d in shape)
                or shape[1] != 3
            ):
                raise InputError(
                    f"profile {name} shape {shape} must be N x 3 x H x W with positive integer sides"
                )
            if shape[0] > MAX_PROFILE_BATCH or shape[2] * shape[3] > MAX_INPUT_PIXELS:
                raise InputError(
                    f"profile {name} shape {shape} is beyond the limits (batch <= {MAX_PROFILE_BATCH}, "
                    f"H x W <= {MAX_INPUT_PIXELS})"
                )
            object.__setattr__(self, name, tuple(shape))
        for i, axis in enumerate("NCHW"):
            if not self.min[i] <= self.opt[i] <= self.max[i]:
                raise InputError(
                    f"profile {axis}: min {self.min[i]} <= opt {self.opt[i]} <= max {self.max[i]} does not hold"
                )

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(
            lo <= d <= hi for lo, d, hi in zip(self.min, shape, self.max, strict=True)
        )

    def describe(self) -> str:
        return " .. ".join("x".join(map(str, s)) for s in (self.min, self.opt, self.max))

    def to_json(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class BuildFlags:
    """How the engine was built; recorded so that the rebuild command can be written back out."""

    memory_pool_mib: int = 1024
    version_compatible: bool = False
    hardware_compatibility: str = "none"
    dla_core: int | None = None
    gpu_fallback: bool = True
    int8_mode: str | None = None  # "qdq" (explicit, from a QDQ ONNX), "calibrator" (implicit) or None

    def __post_init__(self) -> None:
        if self.hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise InputError(
                f"hardware_compatibility={self.hardware_compatibility!r} is not valid; "
                f"choose one of {choices(HARDWARE_COMPATIBILITY)}"
            )
        if self.int8_mode is not None and self.int8_mode not in INT8_MODES:
            raise InputError(
                f"int8_mode={self.int8_mode!r} is not valid; choose one of {choices(INT8_MODES)}"
            )
        if self.memory_pool_mib < 1:
            raise InputError(f"memory_pool_mib={self.memory_pool_mib} must be at least 1")
        if self.dla_core is not None and self.dla_core < 0:
            raise InputError(f"dla_core={self.dla_core} must be 0 or more (or None for the GPU)")


@dataclass(frozen=True)
class EngineHeader:
    spec: ModelSpec  # its precision is the engine's
    tensorrt_version: str
    compute_capability: tuple[int, int]
    device_name: str
    profile: ShapeProfile
    onnx_sha256: str
    onnx_name: str
    flags: BuildFlags = field(default_factory=BuildFlags)
    plan_sha256: str = ""
    plan_size: int = 0
    edgedepth_version: str = ""
    build_command: tuple[str, ...] = ()  # the command line that built it (without -o), for rebuilding

    def to_json(self) -> dict[str, Any]:
        return {
            "format": HEADER_FORMAT,
            "spec": self.spec.to_metadata(),
            "tensorrt_version": self.tensorrt_version,
            "compute_capability": f"{self.compute_capability[0]}.{self.compute_capability[1]}",
            "device_name": self.device_name,
            "profile": self.profile.to_json(),
            "onnx_sha256": self.onnx_sha256,
            "onnx_name": self.onnx_name,
            "flags": {k: getattr(self.flags, k) for k in BuildFlags.__dataclass_fields__},
            "plan_sha256": self.plan_sha256,
            "plan_size": self.plan_size,
            "edgedepth_version": self.edgedepth_version,
            "build_command": list(self.build_command),
        }

    @classmethod
    def from_json(cls, data: Any, source: str) -> EngineHeader:
        """Validate a decoded header; anything missing or malformed raises ModelLoadError naming the key."""
        if not isinstance(data, dict):
            raise ModelLoadError(f"{source}: the engine header is not a JSON object")
        if data.get("format") != HEADER_FORMAT:
            raise ModelLoadError(
                f"{source}: engine header format {data.get('format')!r}; this edgedepth reads {HEADER_FORMAT}"
            )

        def get(key: str, kind: type | tuple[type, ...]) -> Any:
            if key not in data:
                raise ModelLoadError(f"{source}: the engine header has no {key!r}")
            if not isinstance(data[key], kind):
                raise ModelLoadError(f"{source}: the engine header's {key!r} is invalid: {data[key]!r}")
            return data[key]

        spec_metadata = get("spec", dict)
        spec = ModelSpec.from_metadata({str(k): str(v) for k, v in spec_metadata.items()}, source)
        try:
            cc = parse_compute_capability(get("compute_capability", str))
            version = get("tensorrt_version", str)
            Version(version)
            profile_data = get("profile", dict)
            profile = ShapeProfile(*(tuple(profile_data[k]) for k in ("min", "opt", "max")))
            flags = BuildFlags(**get("flags", dict))
            command = data.get("build_command", [])  # absent from headers of earlier builds
            if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
                raise ValueError(f"build_command {command!r} is not a list of strings")
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError, InvalidVersion) as exc:
            raise ModelLoadError(f"{source}: the engine header is invalid: {str(exc)[:200]}") from None
        return cls(
            spec=spec,
            tensorrt_version=version,
            compute_capability=cc,
            device_name=get("device_name", str),
            profile=profile,
            onnx_sha256=get("onnx_sha256", str),
            onnx_name=get("onnx_name", str),
            flags=flags,
            plan_sha256=get("plan_sha256", str),
            plan_size=get("plan_size", int),
            edgedepth_version=get("edgedepth_version", str),
            build_command=tuple(command),
        )


def parse_compute_capability(text: str) -> tuple[int, int]:
    """ "8.7" -> (8, 7)."""
    major, dot, minor = text.partition(".")
    if not dot or not major.isdigit() or not minor.isdigit():
        raise ValueError(f"compute capability {text!r} is not MAJOR.MINOR")
    return int(major), int(minor)


def write_engine(path: str | Path, header: EngineHeader, plan: bytes | memoryview) -> EngineHeader:
    """Write header + plan atomically; the header's plan size and sha256 are filled in from ``plan``."""
    header = replace(header, plan_size=len(plan), plan_sha256=hashlib.sha256(plan).hexdigest())
    write_framed(path, MAGIC, header.to_json(), plan)
    return header


def read_engine_header(path: str | Path) -> tuple[EngineHeader, int]:
    """The header and the byte offset where the plan starts; checks the plan's size against the file."""
    hint = (
        "Build engines with `edgedepth build-engine MODEL.onnx`; a bare TensorRT plan carries no ModelSpec."
    )
    data, offset, plan_size = read_framed_header(path, MAGIC, "engine", hint)
    header = EngineHeader.from_json(data, str(path))
    if plan_size != header.plan_size:
        raise ModelLoadError(
            f"{path}: the plan is {plan_size} bytes but the header records {header.plan_size}; "
            "the file is truncated or corrupt, rebuild it"
        )
    return header, offset


def read_engine(path: str | Path, verify: bool = True) -> tuple[EngineHeader, bytes]:
    """Header and plan bytes; with ``verify`` the plan's sha256 must match the header's."""
    header, offset = read_engine_header(path)
    with open(path, "rb") as f:
        f.seek(offset)
        plan = f.read()
    if verify and hashlib.sha256(plan).hexdigest() != header.plan_sha256:
        raise ModelLoadError(f"{path}: the plan's sha256 does not match its header; the file is corrupt")
    return header, plan


def rebuild_command(header: EngineHeader, engine_path: str | Path) -> str:
    """The command that rebuilds this engine on the current machine: the builder's own command line, as it
    recorded it in the header (``build_command``), writing to ``engine_path``."""
    command = list(header.build_command) or [
        "edgedepth",
        "build-engine",
        header.onnx_name,
        "--precision",
        header.spec.precision.value,
    ]
    return shlex.join([*command, "-o", str(engine_path)])


def compatibility_problems(
    header: EngineHeader, tensorrt_version: str, compute_capability: tuple[int, int]
) -> list[str]:
    """Why this engine cannot run on TensorRT ``tensorrt_version`` and a GPU of ``compute_capability``.

    By default TensorRT runs a plan only with the TensorRT release that built it (major.minor.patch) and on
    GPUs of the same compute capability. A version-compatible engine also runs on later releases of the same
    major version; a hardware-compatible (ampere_plus) one on any GPU of compute capability 8.0 or newer.
    """
    problems = []
    built, running = Version(header.tensorrt_version), Version(tensorrt_version)
    if header.flags.version_compatible:
        if running.major != built.major or running < built:
            problems.append(
                f"it was built version-compatible with TensorRT {built}, which runs on TensorRT "
                f"{built.major}.x releases from {built} on; this machine has TensorRT {running}"
            )
    elif running.release[:3] != built.release[:3]:
        problems.append(f"it was built with TensorRT {built}; this machine has TensorRT {running}")
    cc_built, cc_here = _cc(header.compute_capability), _cc(compute_capability)
    if header.flags.hardware_compatibility == "ampere_plus":
        if compute_capability < AMPERE:
            problems.append(
                f"it was built hardware-compatible for Ampere and newer GPUs (compute capability 8.0+); "
                f"this GPU has compute capability {cc_here}"
            )
    elif tuple(compute_capability) != tuple(header.compute_capability):
        problems.append(
            f"it was built for compute capability {cc_built} ({header.device_name}); "
            f"this GPU has compute capability {cc_here}"
        )
    return problems


def check_compatibility(
    header: EngineHeader,
    path: str | Path,
    tensorrt_version: str,
    compute_capability: tuple[int, int],
    device_name: str = "this GPU",
) -> None:
    """Raise ModelLoadError naming both sides and the rebuild command when the engine cannot run here."""
    problems = compatibility_problems(header, tensorrt_version, compute_capability)
    if problems:
        raise ModelLoadError(
            f"engine {path} cannot run here: {'; '.join(problems)} ({device_name}). TensorRT engines are not "
            f"portable across TensorRT versions or GPUs; rebuild it on this device from its ONNX:\n  "
            f"{rebuild_command(header, path)}"
        )


def _cc(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"
