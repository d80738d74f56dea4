"""TensorRT engine builder: ONNX in, an edgedepth ``.engine`` (JSON header + plan) out, in FP32, FP16 or INT8.

INT8 comes two ways. Explicitly: the QDQ ONNX that ``edgedepth-quantize int8`` writes already carries its
scales, and TensorRT follows them. Implicitly: an ``IInt8EntropyCalibrator2`` reads batches that went through
edgedepth's own preprocessing (``calibration.gather_calibration``, the same sources as the NNCF path). Its
cache is bound to the model's sha256, the TensorRT version and the preprocessing; a cache made for anything
else is refused, never silently reused.

Everything that needs no GPU (profiles, cache binding, flags) is plain Python and tested in CI; the build
itself imports tensorrt and pycuda, and runs on the device that will run the engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedepth import __version__
from edgedepth.artifact import ModelSpec, Precision
from edgedepth.engine_file import (
    BuildFlags,
    EngineHeader,
    ShapeProfile,
    write_engine,
)
from edgedepth.errors import InputError
from edgedepth.fileio import atomic_write_bytes, file_sha256
from edgedepth.model_file import read_onnx_spec
from edgedepth.preprocess import parse_dims

from .calibration import DEFAULT_FRAMES, DEFAULT_MIN_FRAMES, CalibrationData, gather_calibration
from .calibration_cache import calibration_binding, read_calibration_cache, write_calibration_cache
from .errors import CalibrationError, EngineBuildError

if TYPE_CHECKING:
    import tensorrt as trt

    from edgedepth.backends.tensorrt import TensorRTApi

JETSON_MEMORY_POOL_MIB = 1024  # workspace that leaves room for the app on 4-8 GB Jetsons
DEFAULT_TIMING_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgedepth"


# -- what differs between TensorRT releases for the builder ------------------------------------------
def network_flags(api: TensorRTApi) -> int:
    """8.x needs the EXPLICIT_BATCH network flag for ONNX models; 10.x is always explicit and deprecates it."""
    if api.version.major >= 10:
        return 0
    return 1 << int(api.module.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def has_implicit_int8(api: TensorRTApi) -> bool:
    """Implicit INT8 calibration (``IInt8EntropyCalibrator2``) is deprecated from 10.1 and absent later."""
    return hasattr(api.module, "IInt8EntropyCalibrator2")


# -- optimization profiles ---------------------------------------------------------------------------
def build_command(
    onnx_name: str, precision: Precision, profile: ShapeProfile, flags: BuildFlags
) -> tuple[str, ...]:
    """The ``edgedepth build-engine`` command line (without ``-o``) that builds an engine like this one;
    recorded in the engine's header so that a mismatch can print how to rebuild it."""
    f = flags
    args = [
        "edgedepth",
        "build-engine",
        onnx_name,
        "--precision",
        precision.value,
        "--min-shape",
        "x".join(map(str, profile.min)),
        "--opt-shape",
        "x".join(map(str, profile.opt)),
        "--max-shape",
        "x".join(map(str, profile.max)),
        "--memory-pool-mib",
        str(f.memory_pool_mib),
    ]
    if f.int8_mode == "calibrator":
        args += ["--calibration", "CALIBRATION_IMAGES_OR_VIDEO"]
    if f.version_compatible:
        args.append("--version-compatible")
    if f.hardware_compatibility != "none":
        args += ["--hardware-compatibility", f.hardware_compatibility]
    if f.dla_core is not None:
        args += ["--dla-core", str(f.dla_core)] + ([] if f.gpu_fallback else ["--no-gpu-fallback"])
    return tuple(args)


def parse_shape(text: str) -> tuple[int, ...]:
    """``1x3x256x320`` (NCHW), ``1x256x320`` (N, H, W) or ``256x320`` (H, W; batch 1) -> an NCHW tuple."""
    parts = list(parse_dims(text, "shape", (2, 3, 4), example="1x3x256x256"))
    if len(parts) == 2:
        parts = [1, *parts]
    if len(parts) == 3:
        parts = [parts[0], 3, parts[1], parts[2]]
    if parts[1] != 3:
        raise InputError(f"shape {text!r} is not NxCxHxW, NxHxW or HxW with 3 channels")
    return tuple(parts)


def derive_profile(
    spec: ModelSpec,
    min_shape: Sequence[int] | None = None,
    opt_shape: Sequence[int] | None = None,
    max_shape: Sequence[int] | None = None,
) -> ShapeProfile:
    """The input's optimization profile from the CLI's shapes and the model's spec.

    Static models take exactly ``spec.input_size`` (any batch). Dynamic ones default to opt = max = the
    spec's size, min = two ``size_multiple`` steps per side (the runtime keeps the long side at the spec's
    size and rounds the short side, so tall or wide frames stay inside); every side must be a multiple of
    ``size_multiple``.
    """
    h, w = spec.input_size
    m = spec.size_multiple
    opt = tuple(opt_shape) if opt_shape else (1, 3, h, w)
    max_ = tuple(max_shape) if max_shape else (opt[0], 3, max(opt[2], h), max(opt[3], w))
    if min_shape:
        min_ = tuple(min_shape)
    elif spec.dynamic_shape:
        min_ = (1, 3, min(2 * m, opt[2]), min(2 * m, opt[3]))
    else:
        min_ = (1, 3, h, w)
    for name, shape in (("min", min_), ("opt", opt), ("max", max_)):
        if not spec.dynamic_shape and tuple(shape[2:]) != (h, w):
            raise InputError(
                f"--{name}-shape {'x'.join(map(str, shape))}: {spec.name} has a fixed input of {h}x{w}"
            )
        if shape[2] % m or shape[3] % m:
            raise InputError(
                f"--{name}-shape {'x'.join(map(str, shape))}: height and width must be multiples of {m}"
            )
    return ShapeProfile(min_, opt, max_)  # type: ignore[arg-type]  # lengths checked by parse_shape


# -- the build ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationSettings:
    """Implicit INT8: where calibration frames come from and where the bound cache lives."""

    sources: tuple[str, ...] = ()
    cache_path: Path | None = None
    frames: int = DEFAULT_FRAMES
    min_frames: int = DEFAULT_MIN_FRAMES
    batch_size: int = 8
    input_hw: tuple[int, int] | None = None


def default_timing_cache(tensorrt_version: str, compute_capability: tuple[int, int]) -> Path:
    """One timing cache per TensorRT version and GPU architecture, so mismatches never arise."""
    cc = f"{compute_capability[0]}{compute_capability[1]}"
    return DEFAULT_TIMING_CACHE_DIR / f"tensorrt-{tensorrt_version}-sm{cc}.timing-cache"


def is_qdq_model(onnx_path: Path) -> bool:
    """Whether the ONNX graph carries QuantizeLinear/DequantizeLinear nodes (explicit INT8).

    Without the onnx package (e.g. a lean Jetson install) the spec's recorded precision decides.
    """
    try:
        import onnx
    except ImportError:
        return read_onnx_spec(onnx_path).precision is Precision.INT8
    model = onnx.load(str(onnx_path), load_external_data=False)
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def make_entropy_calibrator(
    data: CalibrationData | None,
    batch_size: int,
    cache_path: Path,
    binding: dict[str, Any],
    cached: bytes | None,
    cuda: Any,
) -> trt.IInt8EntropyCalibrator2:
    """An IInt8EntropyCalibrator2 fed with edgedepth-preprocessed batches; writes a bound cache."""
    import tensorrt as trt

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches_used = 0
            self._batches = iter(data.batches(batch_size)) if data is not None else iter(())
            self._device: Any = None
            if data is not None:
                h, w = data.input_hw
                self._device = cuda.mem_alloc(batch_size * 3 * h * w * np.dtype(np.float32).itemsize)

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:  # type: ignore[override,unused-ignore]
            batch = next(self._batches, None)
            if batch is None or batch.shape[0] != batch_size:  # TensorRT takes whole batches only
                return None
            cuda.memcpy_htod(self._device, np.ascontiguousarray(batch, dtype=np.float32))
            self.batches_used += 1
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return cached

        def write_calibration_cache(self, cache: Any) -> None:
            write_calibration_cache(cache_path, binding, bytes(cache))

    return EntropyCalibrator()


def build_engine(
    onnx_path: str | Path,
    output: str | Path,
    precision: Precision | str = Precision.FP16,
    profile_shapes: tuple[Sequence[int] | None, Sequence[int] | None, Sequence[int] | None] = (
        None,
        None,
        None,
    ),
    flags: BuildFlags | None = None,
    calibration: CalibrationSettings | None = None,
    timing_cache: str | Path | None = None,
    log: Callable[[str], object] = print,
) -> EngineHeader:
    """Build and write an engine for the GPU this runs on; returns the header written."""
    from edgedepth.artifact import parse_enum
    from edgedepth.backends.tensorrt import device_info, import_pycuda, import_tensorrt

    onnx_path, output = Path(onnx_path), Path(output)
    try:
        precision = Precision(parse_enum(Precision, precision, "precision"))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    spec = read_onnx_spec(onnx_path)
    profile = derive_profile(spec, *profile_shapes)
    flags = flags or BuildFlags()
    if flags.dla_core is not None and precision is Precision.FP32:
        raise InputError("--dla-core needs --precision fp16 or int8: the DLA runs neither FP32 nor TF32")
    qdq = precision is Precision.INT8 and is_qdq_model(onnx_path)
    if precision is Precision.INT8:
        flags = replace(flags, int8_mode="qdq" if qdq else "calibrator")
    elif is_qdq_model(onnx_path):
        raise InputError(f"{onnx_path} is a QDQ (INT8) model; build it with --precision int8")

    api = import_tensorrt()
    cuda = import_pycuda()
    import tensorrt as trt

    device_name, cc = device_info(cuda)
    onnx_sha = file_sha256(onnx_path)
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(api))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineBuildError(f"TensorRT {api.version} cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, flags.memory_pool_mib << 20)
        if precision in (Precision.FP16, Precision.INT8):
            config.set_flag(trt.BuilderFlag.FP16)  # INT8 engines keep unquantized layers in FP16
        if precision is Precision.INT8:
            config.set_flag(trt.BuilderFlag.INT8)
        opt_profile = builder.create_optimization_profile()
        opt_profile.set_shape(
            spec.input_name, *(trt.Dims(list(s)) for s in (profile.min, profile.opt, profile.max))
        )
        config.add_optimization_profile(opt_profile)
        if precision is Precision.INT8 and not qdq:
            _attach_calibrator(builder, config, spec, onnx_sha, str(api.version), calibration, cuda, api, log)
        if flags.version_compatible:
            config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if flags.hardware_compatibility == "ampere_plus":
            if cc < (8, 0):
                raise InputError(
                    f"--hardware-compatibility ampere_plus needs an Ampere+ GPU; {device_name} is {cc}"
                )
            config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
        if flags.dla_core is not None:
            if flags.dla_core >= builder.num_DLA_cores:
                raise InputError(
                    f"--dla-core {flags.dla_core}: this device has {builder.num_DLA_cores} DLA core(s)"
                )
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = flags.dla_core
            if flags.gpu_fallback:
                config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        cache_path = Path(timing_cache) if timing_cache else default_timing_cache(str(api.version), cc)
        cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
        timing = config.create_timing_cache(cache_bytes)
        if not config.set_timing_cache(timing, False):
            log(f"timing cache {cache_path} does not match this device; starting a fresh one")
            config.set_timing_cache(config.create_timing_cache(b""), False)
        log(f"building {precision.value} engine for {device_name} (sm{cc[0]}{cc[1]}), TensorRT {api.version}")
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineBuildError(f"TensorRT {api.version} could not build {onnx_path} (see its log above)")
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
        header = EngineHeader(
            spec=spec.with_updates(precision=precision),
            tensorrt_version=str(api.version),
            compute_capability=cc,
            device_name=device_name,
            profile=profile,
            onnx_sha256=onnx_sha,
            onnx_name=onnx_path.name,
            flags=flags,
            edgedepth_version=__version__,
            build_command=build_command(onnx_path.name, precision, profile, flags),
        )
        return write_engine(output, header, memoryview(plan))
    finally:
        context.pop()
        context.detach()


def _attach_calibrator(
    builder: trt.Builder,
    config: trt.IBuilderConfig,
    spec: ModelSpec,
    onnx_sha: str,
    tensorrt_version: str,
    calibration: CalibrationSettings | None,
    cuda: Any,
    api: TensorRTApi,
    log: Callable[[str], object],
) -> None:
    if not has_implicit_int8(api):
        raise InputError(
            f"TensorRT {api.version} has no implicit INT8 calibration; build from the QDQ ONNX that "
            "`edgedepth-quantize int8` writes instead"
        )
    settings = calibration or CalibrationSettings()
    input_hw = settings.input_hw or spec.input_size
    binding = calibration_binding(onnx_sha, tensorrt_version, spec, input_hw)
    cache_path = settings.cache_path or Path(f"{spec.name}-{onnx_sha[:12]}.calibration-cache")
    cached = read_calibration_cache(cache_path, binding)
    data = None
    if cached is None:
        if not settings.sources:
            raise CalibrationError(
                f"INT8 from a float ONNX needs --calibration sources (no bound cache at {cache_path}), or "
                "build from the QDQ ONNX of `edgedepth-quantize int8`"
            )
        data = gather_calibration(settings.sources, spec, settings.frames, settings.min_frames, input_hw)
        log(f"calibrating on {len(data)} frames at {input_hw[0]}x{input_hw[1]} ({', '.join(data.sources)})")
    else:
        log(f"reusing calibration cache {cache_path} (bound to this model, TensorRT and preprocessing)")
    config.int8_calibrator = make_entropy_calibrator(
        data, settings.batch_size, cache_path, binding, cached, cuda
    )
    import tensorrt as trt

    calib_shape = trt.Dims([settings.batch_size, 3, *input_hw])
    calib_profile = builder.create_optimization_profile()
    calib_profile.set_shape(spec.input_name, calib_shape, calib_shape, calib_shape)
    config.set_calibration_profile(calib_profile)
