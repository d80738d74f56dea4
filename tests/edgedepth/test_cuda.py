"""Fused CUDA preprocessing, verified without a GPU: nvcc builds it, and its own arithmetic (the same source
compiled for the host through a thin shim) matches edgedepth.preprocess, the CPU reference."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgedepth.artifact import IMAGENET_MEAN, IMAGENET_STD, ColorOrder, ModelSpec, ResizeMode
from edgedepth.cuda import KERNEL_SOURCE, KERNELS, kernel_params
from edgedepth.preprocess import plan_resize, preprocess

# Xavier (sm_72, JetPack 5 / CUDA 11.4), Orin (sm_87), Hopper (sm_90).
ARCHITECTURES = ["sm_72", "sm_87", "sm_90"]


def nvcc_architectures() -> set[str]:
    out = subprocess.run(["nvcc", "--list-gpu-code"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_nvcc_builds_ptx(arch: str, tmp_path: Path) -> None:
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    if arch not in nvcc_architectures():
        pytest.skip(f"this nvcc cannot target {arch} (CUDA 13 dropped it; JetPack 5's CUDA 11.4 builds it)")
    ptx = tmp_path / f"preprocess_{arch}.ptx"
    subprocess.run(["nvcc", "--ptx", f"-arch={arch}", str(KERNEL_SOURCE), "-o", str(ptx)], check=True)
    text = ptx.read_text()
    for kernel in KERNELS.values():
        assert f".entry {kernel}" in text


@pytest.fixture(scope="module")
def host_kernel(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """The kernel source compiled for the host: preprocess_pixel() looped over the grid."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the host shim")
    lib = tmp_path_factory.mktemp("cuda") / "preprocess_host.so"
    cmd = [compiler, "-x", "c++", "-O2", "-shared", "-fPIC", str(KERNEL_SOURCE), "-o", str(lib)]
    subprocess.run(cmd, check=True)
    return ctypes.CDLL(str(lib))


def run_host_kernel(
    lib: ctypes.CDLL, bgr: np.ndarray, spec: ModelSpec, out_hw: tuple[int, int]
) -> np.ndarray:
    plan = plan_resize(bgr.shape[:2], spec, out_hw)
    params = np.array(kernel_params(plan, spec, src_stride=bgr.strides[0]))
    out = np.full((3, *plan.out_hw), np.nan, dtype=np.float32)
    lib.preprocess_bgr_to_nchw_f32_host(
        ctypes.c_void_p(bgr.ctypes.data),
        ctypes.c_void_p(out.ctypes.data),
        ctypes.c_void_p(params.ctypes.data),
    )
    return out


CASES = [
    # (source h, w, output h, w, resize mode, colour order)
    (480, 640, 256, 256, ResizeMode.LETTERBOX, ColorOrder.RGB),  # typical camera, letterbox
    (576, 768, 192, 256, ResizeMode.LETTERBOX, ColorOrder.RGB),  # exact aspect, no padding
    (37, 53, 256, 320, ResizeMode.LETTERBOX, ColorOrder.RGB),  # odd sizes, 6x upscale
    (1080, 1920, 64, 64, ResizeMode.LETTERBOX, ColorOrder.BGR),  # extreme downscale (30x)
    (9, 2000, 128, 128, ResizeMode.STRETCH, ColorOrder.RGB),  # extreme aspect, stretched
    (257, 255, 256, 256, ResizeMode.STRETCH, ColorOrder.BGR),  # almost identity
    (256, 256, 256, 256, ResizeMode.LETTERBOX, ColorOrder.RGB),  # identity
    (120, 480, 96, 96, ResizeMode.LETTERBOX, ColorOrder.RGB),  # exact 2x horizontal (OpenCV's area path)
]


@pytest.mark.parametrize(("sh", "sw", "oh", "ow", "mode", "order"), CASES)
def test_kernel_arithmetic_matches_the_cpu_reference(
    host_kernel: ctypes.CDLL, sh: int, sw: int, oh: int, ow: int, mode: ResizeMode, order: ColorOrder
) -> None:
    rng = np.random.default_rng(sh * 7919 + sw)
    spec = ModelSpec(
        name="t",
        input_size=(oh, ow),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize_mode=mode,
        color_order=order,
    )
    for _ in range(3):
        bgr = rng.integers(0, 256, (sh, sw, 3), dtype=np.uint8)
        reference, _ = preprocess(bgr, spec)
        got = run_host_kernel(host_kernel, bgr, spec, (oh, ow))
        assert np.abs(got - reference[0]).max() <= 1e-3


def test_kernel_reads_strided_frames(host_kernel: ctypes.CDLL) -> None:
    """A crop of a larger frame (row stride wider than the width) is read correctly."""
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    crop = big[10:250, 20:340]
    spec = ModelSpec(name="t", input_size=(192, 256), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    reference, _ = preprocess(np.ascontiguousarray(crop), spec)
    assert np.abs(run_host_kernel(host_kernel, crop, spec, (192, 256)) - reference[0]).max() <= 1e-3


@pytest.mark.gpu
def test_gpu_kernel_matches_the_cpu_reference() -> None:
    """On a machine with a GPU and pycuda: the real kernel, launched through the launcher."""
    cuda = pytest.importorskip("pycuda.driver", reason="pycuda is not installed (no GPU stack here)")
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            pytest.skip("no CUDA device")
    except cuda.Error as exc:
        pytest.skip(f"no usable CUDA driver: {exc}")
    import pycuda.autoinit  # noqa: F401

    from edgedepth.cuda.launcher import CudaPreprocessor

    spec = ModelSpec(name="t", input_size=(256, 256), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    rng = np.random.default_rng(0)
    pre = CudaPreprocessor(spec, (1080, 1920))
    out = cuda.mem_alloc(3 * 256 * 256 * 4)
    for h, w in [(480, 640), (37, 53), (1080, 1920)]:
        bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        pre(bgr, int(out))
        got = np.empty((3, 256, 256), np.float32)
        cuda.memcpy_dtoh(got, out)
        assert np.abs(got - preprocess(bgr, spec)[0][0]).max() <= 1e-3


# ctypes argument type -> the C type cuda.h declares for that parameter, per driver function.
DRIVER_PROTOTYPES = {
    "cuStreamBeginCapture_v2": "CUresult (*)(CUstream, CUstreamCaptureMode)",
    "cuStreamEndCapture": "CUresult (*)(CUstream, CUgraph *)",
    "cuGraphInstantiateWithFlags": "CUresult (*)(CUgraphExec *, CUgraph, unsigned long long)",
    "cuGraphLaunch": "CUresult (*)(CUgraphExec, CUstream)",
    "cuGraphExecDestroy": "CUresult (*)(CUgraphExec)",
    "cuGraphDestroy": "CUresult (*)(CUgraph)",
    "cuGetErrorName": "CUresult (*)(CUresult, const char **)",
}


def test_cuda_graph_driver_bindings_match_cuda_h(tmp_path: Path) -> None:
    """The CUDA-graph wrapper's ctypes bindings name real driver functions with the prototypes it assumes."""
    import ctypes as c

    from edgedepth.cuda.graph import DRIVER_FUNCTIONS

    nvcc = shutil.which("nvcc")
    compiler = shutil.which("g++") or shutil.which("c++")
    if nvcc is None or compiler is None:
        pytest.skip("needs nvcc (for cuda.h) and a C++ compiler")
    include = Path(nvcc).resolve().parents[1] / "include"
    if not (include / "cuda.h").is_file():
        include = Path("/usr/local/cuda/include")
    if not (include / "cuda.h").is_file():
        pytest.skip("cuda.h not found beside nvcc")
    assert set(DRIVER_FUNCTIONS) == set(DRIVER_PROTOTYPES)
    # Handles (CUstream, CUgraph, CUgraphExec) are pointers, enums and CUresult are ints.
    sizes = {c.c_void_p: 8, c.c_int: 4, c.c_ulonglong: 8}
    lines = ["#include <cuda.h>", "#include <type_traits>"]
    for name, proto in DRIVER_PROTOTYPES.items():
        lines.append(f'static_assert(std::is_same<decltype(&{name}), {proto}>::value, "{name}");')
        c_params = proto.split("(*)(")[1].rstrip(")").split(", ")
        assert len(c_params) == len(DRIVER_FUNCTIONS[name]), name
        for c_param, ctype in zip(c_params, DRIVER_FUNCTIONS[name], strict=True):
            width = "sizeof(void *)" if c_param.endswith("*") else f"sizeof({c_param})"
            expected = sizes.get(ctype, 8)  # POINTER(...) types are pointer-sized
            lines.append(f'static_assert({width} == {expected}, "{name}: {c_param}");')
    source = tmp_path / "bindings.cpp"
    source.write_text("\n".join(lines) + "\n")
    subprocess.run([compiler, "-std=c++17", "-fsyntax-only", f"-I{include}", str(source)], check=True)
