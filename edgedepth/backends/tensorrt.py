"""TensorRT backend: edgedepth ``.engine`` files on NVIDIA GPUs (Jetson and desktop), through pycuda.

Loading reads the engine header first and refuses an engine built for another TensorRT version or GPU
before anything is deserialized (see :mod:`edgedepth.engine_file`). Inference uses TensorRT's named-tensor
API (``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``), present in both supported lines,
8.6 and 10.x; where they differ (:class:`TensorRTApi`) the version is compared with ``packaging.version``.

Each calling thread gets its own execution context, CUDA stream, device buffers (sized for the profile's
largest shape) and page-locked host buffers, so copy-in, execution and copy-out are asynchronous on that
thread's stream and threads never share mutable TensorRT state. All CUDA work runs in the device's primary
context, which is also the one TensorRT's runtime API uses.

Typing: ``tensorrt`` is typed by ``tensorrt-stubs``. pycuda ships no type information, so its module and
objects are typed as ``Any`` (mypy treats ``pycuda`` as an untyped import); every value this module derives
from them is typed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from packaging.version import Version

from ..artifact import ModelSpec
from ..engine_file import EngineHeader, check_compatibility, read_engine
from ..errors import BackendUnavailableError, InputError, ModelLoadError
from ..preprocess import ResizePlan
from .base import Backend, BackendDescription, BackendKind, BackendOptions, output_names

if TYPE_CHECKING:
    import tensorrt as trt

MIN_TENSORRT = Version("8.6")
INSTALL = "pip install edgedepth[tensorrt] (on Jetson: JetPack's TensorRT and pycuda built from source)"


@dataclass(frozen=True)
class TensorRTApi:
    """The installed TensorRT and its version. The inference path (named tensors, ``execute_async_v3``) is
    the same in 8.6 and 10.x; where the builder differs, ``edgedepth_quantize.engine`` decides."""

    module: ModuleType
    version: Version


def import_tensorrt() -> TensorRTApi:
    """The API adapter of the installed TensorRT; BackendUnavailableError when missing or too old.

    Callers then ``import tensorrt as trt`` themselves, so that mypy checks their calls against the stubs.
    """
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(f"tensorrt is not installed ({exc}); {INSTALL}") from None
    version_text = getattr(tensorrt, "__version__", None)
    if version_text is None:  # e.g. only the type stubs are installed: an empty namespace package
        raise BackendUnavailableError(f"tensorrt is not installed (only its type stubs are); {INSTALL}")
    version = Version(version_text)
    if version < MIN_TENSORRT:
        raise BackendUnavailableError(
            f"TensorRT {version} is too old; edgedepth needs {MIN_TENSORRT} or newer"
        )
    return TensorRTApi(tensorrt, version)


def dims(shape: trt.Dims) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple of ints."""
    return tuple(int(shape[i]) for i in range(len(shape)))


def import_pycuda() -> Any:
    """pycuda.driver, initialised; BackendUnavailableError when missing or when no GPU/driver is present."""
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailableError(f"pycuda is not usable ({exc}); {INSTALL}") from None
    try:
        cuda.init()
        count = int(cuda.Device.count())
    except Exception as exc:  # pycuda raises its own LogicError / RuntimeError without a driver
        raise BackendUnavailableError(f"CUDA cannot initialise: {exc}") from None
    if count == 0:
        raise BackendUnavailableError("no CUDA GPU is present")
    return cuda


def device_info(cuda: Any, index: int = 0) -> tuple[str, tuple[int, int]]:
    device = cuda.Device(index)
    major, minor = device.compute_capability()
    return str(device.name()), (int(major), int(minor))


def probe() -> tuple[bool, str]:
    try:
        api = import_tensorrt()
        cuda = import_pycuda()
    except BackendUnavailableError as exc:
        return False, str(exc)
    name, (major, minor) = device_info(cuda)
    return True, f"TensorRT {api.version} on {name} (compute capability {major}.{minor})"


@dataclass
class _ThreadState:
    """One thread's execution context, stream and buffers."""

    context: trt.IExecutionContext
    stream: Any  # pycuda.driver.Stream
    device: dict[str, Any]  # tensor name -> pycuda DeviceAllocation sized for the profile's max shape
    host: dict[str, np.ndarray]  # tensor name -> flat page-locked buffer of the same size
    shape: tuple[int, ...] = ()
    graphs: dict[tuple[int, ...], Any] = field(default_factory=dict)  # input shape -> CudaGraph
    preprocessor: Any = None  # CudaPreprocessor, created on the first infer_frames call


class TensorRTBackend(Backend):
    """An engine on one GPU; ``infer`` and ``infer_frames`` may be called from any number of threads."""

    kind = BackendKind.TENSORRT

    def __init__(
        self,
        engine: trt.ICudaEngine,
        header: EngineHeader,
        cuda: Any,
        cuda_context: Any,
        source: str,
        use_cuda_graph: bool = False,
    ) -> None:
        import tensorrt

        super().__init__(header.spec, source, (None, 3, None, None))
        self._engine = engine
        self.header = header
        self.use_cuda_graph = use_cuda_graph
        self._cuda = cuda
        self._cuda_context = cuda_context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == tensorrt.TensorIOMode.INPUT]
        if inputs != [self.spec.input_name]:
            raise ModelLoadError(
                f"{source}: expected one input {self.spec.input_name!r}, the engine has {inputs}"
            )
        self._outputs = output_names(self.spec, [n for n in names if n not in inputs], source)
        self._dtypes = {n: np.dtype(tensorrt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self._local = threading.local()
        self._states: list[_ThreadState] = []
        self._lock = threading.Lock()

    # -- CUDA context and per-thread state ---------------------------------------------------------------
    @contextlib.contextmanager
    def _active(self) -> Iterator[_ThreadState]:
        self.check_open()
        self._cuda_context.push()
        try:
            state: _ThreadState | None = getattr(self._local, "state", None)
            if state is None:
                state = self._local.state = self._new_state()
            yield state
        finally:
            self._cuda_context.pop()

    def _new_state(self) -> _ThreadState:
        with self._lock:  # contexts are created one at a time; each is then used by its thread only
            context = self._engine.create_execution_context()
        if context is None:
            raise ModelLoadError(
                f"{self.source}: TensorRT could not create an execution context (GPU memory?)"
            )
        stream = self._cuda.Stream()
        max_shape = self.header.profile.max
        if not context.set_input_shape(self.spec.input_name, max_shape):
            raise ModelLoadError(f"{self.source}: the engine refuses its own profile's max shape {max_shape}")
        device, host = {}, {}
        returned = {self.spec.input_name, *self._outputs}
        for name in self._dtypes:  # every IO tensor needs an address, returned or not
            count = max(int(np.prod(dims(context.get_tensor_shape(name)))), 1)
            if name in returned:  # staged through page-locked host memory
                host[name] = self._cuda.pagelocked_empty(count, self._dtypes[name])
            device[name] = self._cuda.mem_alloc(count * self._dtypes[name].itemsize)
            if not context.set_tensor_address(name, int(device[name])):
                raise ModelLoadError(f"{self.source}: TensorRT refused the address of tensor {name!r}")
        state = _ThreadState(context, stream, device, host, shape=tuple(max_shape))
        with self._lock:
            self._states.append(state)
        return state

    # -- inference ----------------------------------------------------------------------------------------
    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if not self.header.profile.contains(shape):
            raise InputError(
                f"{self.source}: input shape {'x'.join(map(str, shape))} is outside the engine's profile "
                f"{self.header.profile.describe()} (min .. opt .. max); rebuild the engine with "
                "--min-shape/--max-shape covering it, or pass input_size= within the profile"
            )

    def _enqueue(self, state: _ThreadState, shape: tuple[int, ...]) -> None:
        if state.shape != shape:
            if not state.context.set_input_shape(self.spec.input_name, shape):
                raise InputError(f"{self.source}: TensorRT refused input shape {shape}")
            state.shape = shape
        handle = int(state.stream.handle)
        if not self.use_cuda_graph:
            if not state.context.execute_async_v3(handle):
                raise RuntimeError(f"{self.source}: TensorRT execution failed")
            return
        graph = state.graphs.get(shape)
        if graph is None:
            from ..cuda.graph import CudaGraph

            # One ordinary enqueue first: TensorRT finishes shape-dependent setup outside the capture.
            if not state.context.execute_async_v3(handle):
                raise RuntimeError(f"{self.source}: TensorRT execution failed")
            graph = state.graphs[shape] = CudaGraph(handle, lambda: state.context.execute_async_v3(handle))
        graph.launch(handle)

    def _outputs_to_host(self, state: _ThreadState) -> dict[str, np.ndarray]:
        views = {}
        for name in self._outputs:
            shape = dims(state.context.get_tensor_shape(name))
            views[name] = state.host[name][: int(np.prod(shape))].reshape(shape)
            self._cuda.memcpy_dtoh_async(views[name], state.device[name], state.stream)
        state.stream.synchronize()
        return {name: view.astype(np.float32, copy=True) for name, view in views.items()}

    def _infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self._check_shape(batch.shape)
        with self._active() as state:
            name = self.spec.input_name
            staged = state.host[name][: batch.size].reshape(batch.shape)
            np.copyto(staged, batch, casting="same_kind")
            self._cuda.memcpy_htod_async(state.device[name], staged, state.stream)
            self._enqueue(state, batch.shape)
            return self._outputs_to_host(state)

    def infer_frames(
        self, frames: Sequence[np.ndarray], input_hw: tuple[int, int]
    ) -> tuple[dict[str, np.ndarray], list[ResizePlan]]:
        """BGR uint8 frames in; the fused CUDA kernel writes each straight into the engine's input buffer."""
        from ..cuda import KERNELS
        from ..cuda.launcher import CudaPreprocessor

        h, w = input_hw
        shape = (len(frames), 3, h, w)
        self._check_shape(shape)
        precision = {np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16"}.get(
            self._dtypes[self.spec.input_name]
        )
        if precision not in KERNELS:
            raise InputError(f"{self.source}: CUDA preprocessing needs an fp32 or fp16 input tensor")
        with self._active() as state:
            pre = state.preprocessor
            max_h, max_w = max(f.shape[0] for f in frames), max(f.shape[1] for f in frames)
            if pre is not None:
                max_h, max_w = max(max_h, pre.max_src_hw[0]), max(max_w, pre.max_src_hw[1])
            if pre is None or pre.slots < len(frames) or pre.max_src_hw != (max_h, max_w):
                slots = max(len(frames), pre.slots if pre is not None else 1)
                pre = state.preprocessor = CudaPreprocessor(self.spec, (max_h, max_w), precision, slots=slots)
            base = int(state.device[self.spec.input_name])
            frame_bytes = 3 * h * w * self._dtypes[self.spec.input_name].itemsize
            plans = [
                pre(frame, base + i * frame_bytes, input_hw, state.stream, slot=i)
                for i, frame in enumerate(frames)
            ]
            self._enqueue(state, shape)
            return self._outputs_to_host(state), plans

    def _release(self) -> None:
        with self._lock:
            states, self._states = self._states, []
        self._cuda_context.push()
        try:
            for state in states:
                for graph in state.graphs.values():
                    graph.destroy()
                for allocation in state.device.values():
                    allocation.free()
                del state.context
            del self._engine
        finally:
            self._cuda_context.pop()
            self._cuda_context.detach()


def deserialize(plan: bytes, header: EngineHeader, source: str) -> trt.ICudaEngine:
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    if header.flags.version_compatible:
        runtime.engine_host_code_allowed = True  # version-compatible plans embed the lean runtime
    if header.flags.dla_core is not None:
        if header.flags.dla_core >= runtime.num_DLA_cores:
            raise ModelLoadError(
                f"{source}: built for DLA core {header.flags.dla_core}, this device has "
                f"{runtime.num_DLA_cores} DLA core(s); rebuild without --dla-core or with a valid core"
            )
        runtime.DLA_core = header.flags.dla_core
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise ModelLoadError(
            f"{source}: TensorRT could not deserialize the plan (see the TensorRT log above)"
        )
    return engine


def load(path: Path, spec: ModelSpec | None, options: BackendOptions) -> TensorRTBackend:
    """Read the header, check TensorRT version and compute capability, then deserialize the plan."""
    api = import_tensorrt()
    cuda = import_pycuda()
    header, plan = read_engine(path)
    device_index = _device_index(DESCRIPTION.device(options))
    name, cc = device_info(cuda, device_index)
    check_compatibility(header, path, str(api.version), cc, name)
    if spec is not None and spec.input_name != header.spec.input_name:
        raise ModelLoadError(f"{path}: the given spec's input {spec.input_name!r} is not the engine's")
    cuda_context = cuda.Device(device_index).retain_primary_context()
    cuda_context.push()
    try:
        engine = deserialize(plan, header, str(path))
    except BaseException:
        cuda_context.pop()
        cuda_context.detach()
        raise
    cuda_context.pop()
    return TensorRTBackend(engine, header, cuda, cuda_context, str(path), options.cuda_graph)


def _device_index(device: str) -> int:
    """The GPU to use: "cuda:1" -> 1; "cuda" and "gpu" -> 0. "CPU" is refused before this (DESCRIPTION)."""
    prefix, _, index = device.lower().partition(":")
    if not index:
        return 0
    if prefix != "cuda" or not index.isdigit():
        raise InputError(f"device={device!r} is not valid for tensorrt; use 'cuda' or 'cuda:N'")
    return int(index)


DESCRIPTION = BackendDescription(
    kind=BackendKind.TENSORRT,
    load=load,  # also takes spec=None: the engine's header carries it
    probe=probe,
    libraries=("tensorrt", "pycuda"),
    install=INSTALL,
    suffixes=(".engine",),
    devices=("cuda", "gpu"),
    default_device="cuda:0",
)
