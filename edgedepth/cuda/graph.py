"""CUDA graph capture and replay through the CUDA driver library (ctypes; pycuda has no graph API).

The TensorRT backend captures one ``execute_async_v3`` per input shape and replays it, which removes the
per-layer launch overhead that dominates small models on Jetson-class GPUs. Only driver entry points that
exist since CUDA 11.4 (JetPack 5) are used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache
from typing import Any

from ..errors import BackendUnavailableError

CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1


# The driver entry points used, with their ctypes argument types (all return CUresult, an int).
# tests/edgedepth/test_cuda.py compiles these prototypes against the toolkit's cuda.h.
DRIVER_FUNCTIONS: dict[str, list[Any]] = {
    "cuStreamBeginCapture_v2": [ctypes.c_void_p, ctypes.c_int],
    "cuStreamEndCapture": [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)],
    "cuGraphInstantiateWithFlags": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_ulonglong],
    "cuGraphLaunch": [ctypes.c_void_p, ctypes.c_void_p],
    "cuGraphExecDestroy": [ctypes.c_void_p],
    "cuGraphDestroy": [ctypes.c_void_p],
    "cuGetErrorName": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
}


@cache
def _driver() -> ctypes.CDLL:
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise BackendUnavailableError(f"the CUDA driver library ({name}) cannot be loaded: {exc}") from None
    for fn, argtypes in DRIVER_FUNCTIONS.items():
        getattr(lib, fn).argtypes = argtypes
        getattr(lib, fn).restype = ctypes.c_int
    return lib


def _check(result: int, what: str) -> None:
    if result != 0:
        name = ctypes.c_char_p()
        _driver().cuGetErrorName(result, ctypes.byref(name))
        raise RuntimeError(f"{what} failed: {(name.value or b'CUDA error').decode()} ({result})")


class CudaGraph:
    """An instantiated graph of the work ``enqueue`` issues on ``stream_handle`` (a CUstream)."""

    def __init__(self, stream_handle: int, enqueue: Callable[[], object]) -> None:
        lib = _driver()
        stream = ctypes.c_void_p(stream_handle)
        _check(
            lib.cuStreamBeginCapture_v2(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture"
        )
        graph = ctypes.c_void_p()
        try:
            ok = enqueue()
        finally:  # always end the capture, or the stream stays unusable
            ended = lib.cuStreamEndCapture(stream, ctypes.byref(graph))
        if ok is False:
            if graph.value:
                lib.cuGraphDestroy(graph)
            raise RuntimeError("the captured enqueue reported failure")
        _check(ended, "cuStreamEndCapture")
        self._graph = graph
        self._exec = ctypes.c_void_p()
        _check(lib.cuGraphInstantiateWithFlags(ctypes.byref(self._exec), graph, 0), "cuGraphInstantiate")

    def launch(self, stream_handle: int) -> None:
        _check(_driver().cuGraphLaunch(self._exec, ctypes.c_void_p(stream_handle)), "cuGraphLaunch")

    def destroy(self) -> None:
        lib = _driver()
        if self._exec.value:
            lib.cuGraphExecDestroy(self._exec)
            self._exec = ctypes.c_void_p()
        if self._graph.value:
            lib.cuGraphDestroy(self._graph)
            self._graph = ctypes.c_void_p()
