"""The checks that tests/gpu/device_check.sh runs on a GPU machine (needs pycuda, a GPU and its driver).

1. The fused kernel, through ``CudaPreprocessor``, against the CPU reference (``edgedepth.preprocess``):
   real frames of the embedded demo clip and random sizes (odd, large downscales, upscales), letterbox
   and stretch, RGB and BGR, fp32 and fp16 outputs. The max abs error per case.
2. CUDA-graph replay (``edgedepth.cuda.graph``) of an upload and a kernel launch: bit-identical to the
   direct launch, also after a new frame is staged into the captured host buffer.
3. Timing with CUDA events (medians after warm-up) at 640x480 -> 256x256 and 1920x1080 -> 512x512: the
   upload and the kernel separately, beside the CPU reference's median.

Writes device_check.json and device_check.md into ``--out``. ``--quick`` runs the kernel cases only (for
compute-sanitizer); ``--note OUT KEY VALUE`` adds a line to an existing report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgedepth.artifact import ColorOrder, Interpolation, ModelSpec, ResizeMode  # noqa: E402
from edgedepth.embedded import DEMO_CLIP  # noqa: E402
from edgedepth.preprocess import plan_resize, preprocess  # noqa: E402

TOLERANCE = {"fp32": 1e-3, "fp16": 4e-3}  # fp16 output: half a unit in the last place near |x| = 2.6


def demo_frames(count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(DEMO_CLIP))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"cannot read frames from {DEMO_CLIP}")
    return frames


def kernel_cases(quick: bool) -> list[tuple[str, np.ndarray, ModelSpec, str]]:
    rng = np.random.default_rng(0)
    letterbox = ModelSpec(name="lb", input_size=(256, 256), mean=(0.5,) * 3, std=(0.5,) * 3)
    stretch = ModelSpec.preset(  # the preset's own interpolation is cubic, which the kernel refuses
        "midas-small",
        name="st",
        input_size=(512, 512),
        resize_mode=ResizeMode.STRETCH,
        interpolation=Interpolation.LINEAR,
    )
    bgr_order = ModelSpec(
        name="bgr",
        input_size=(192, 256),
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.25, 0.3),
        color_order=ColorOrder.BGR,
    )
    cases: list[tuple[str, np.ndarray, ModelSpec, str]] = []
    for i, frame in enumerate(demo_frames(2 if quick else 4)):
        cases.append(
            (f"demo frame {i} {frame.shape[1]}x{frame.shape[0]} -> 256 letterbox", frame, letterbox, "fp32")
        )
        cases.append((f"demo frame {i} -> 256 letterbox", frame, letterbox, "fp16"))
    sizes = [(37, 53), (1080, 1920), (97, 131), (2160, 3840), (241, 319), (2, 3)]
    if not quick:
        sizes += [tuple(int(v) for v in rng.integers(2, 1500, 2)) for _ in range(6)]
    for h, w in sizes:
        bgr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for spec in (letterbox, stretch, bgr_order):
            for precision in ("fp32", "fp16"):
                cases.append((f"random {w}x{h} -> {spec.name} {spec.input_size[1]}", bgr, spec, precision))
    return cases


def check_kernel(cuda: Any, quick: bool) -> list[dict[str, Any]]:
    from edgedepth.cuda.launcher import CudaPreprocessor

    rows = []
    preprocessors: dict[tuple[str, str], Any] = {}
    out = cuda.mem_alloc(3 * 512 * 512 * 4)
    for name, bgr, spec, precision in kernel_cases(quick):
        key = (spec.name, precision)
        if key not in preprocessors:
            preprocessors[key] = CudaPreprocessor(spec, (2160, 3840), precision=precision)
        plan = preprocessors[key](bgr, int(out))
        cuda.Context.synchronize()
        dtype = np.float32 if precision == "fp32" else np.float16
        got = np.empty((3, *plan.out_hw), dtype)
        cuda.memcpy_dtoh(got, out)
        want = preprocess(bgr, spec)[0][0]
        err = float(np.abs(got.astype(np.float32) - want).max())
        rows.append(
            {"case": name, "precision": precision, "max_abs_err": err, "ok": err <= TOLERANCE[precision]}
        )
    return rows


def check_graph(cuda: Any) -> dict[str, Any]:
    from edgedepth.cuda.graph import CudaGraph
    from edgedepth.cuda.launcher import CudaPreprocessor

    spec = ModelSpec(name="g", input_size=(256, 256), mean=(0.5,) * 3, std=(0.5,) * 3)
    a = demo_frames(1)[0]
    b = np.ascontiguousarray(a[::-1])  # another frame of the same size
    pre = CudaPreprocessor(spec, a.shape[:2])
    stream = cuda.Stream()
    direct, replay = cuda.mem_alloc(3 * 256 * 256 * 4), cuda.mem_alloc(3 * 256 * 256 * 4)

    def fetch(ptr: Any) -> np.ndarray:
        host = np.empty((3, 256, 256), np.float32)
        cuda.memcpy_dtoh(host, ptr)
        return host

    results = {}
    graph = CudaGraph(stream.handle, lambda: pre(a, int(replay), stream=stream))  # captures a's upload
    for name, frame in (("same frame", a), ("new frame staged", b)):
        np.copyto(pre._pinned[0, : frame.size].reshape(frame.shape), frame)  # what a capture replays from
        graph.launch(stream.handle)
        stream.synchronize()
        pre(frame, int(direct), stream=stream)
        stream.synchronize()
        got, want = fetch(replay), fetch(direct)
        results[name] = {
            "identical": bool(np.array_equal(got, want)),
            "max_abs_diff": float(np.abs(got - want).max()),
        }
    graph.destroy()
    return results


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples), 4)


def time_kernel(
    cuda: Any, src_hw: tuple[int, int], out_hw: tuple[int, int], repeats: int = 50
) -> dict[str, Any]:
    from edgedepth.cuda import kernel_params
    from edgedepth.cuda.launcher import BLOCK, CudaPreprocessor

    spec = ModelSpec(name="t", input_size=out_hw, mean=(0.5,) * 3, std=(0.5,) * 3)
    bgr = np.random.default_rng(1).integers(0, 256, (*src_hw, 3), dtype=np.uint8)
    pre = CudaPreprocessor(spec, src_hw)
    out = cuda.mem_alloc(3 * out_hw[0] * out_hw[1] * 4)
    stream = cuda.Stream()
    plan = plan_resize(src_hw, spec)
    staged = pre._pinned[0, : bgr.size]
    np.copyto(staged.reshape(bgr.shape), bgr)
    oh, ow = plan.out_hw
    grid = ((ow + BLOCK[0] - 1) // BLOCK[0], (oh + BLOCK[1] - 1) // BLOCK[1], 1)
    params = kernel_params(plan, spec)
    start, end = cuda.Event(), cuda.Event()

    def timed(fn: Any) -> float:
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        return float(end.time_since(start))

    def upload() -> None:
        cuda.memcpy_htod_async(pre._device_src, staged, stream)

    def kernel() -> None:
        pre._kernel(pre._device_src, np.uintp(int(out)), params, block=BLOCK, grid=grid, stream=stream)

    def both() -> None:
        pre(bgr, int(out), stream=stream)

    for _ in range(10):
        both()
    stream.synchronize()
    up = [timed(upload) for _ in range(repeats)]
    ker = [timed(kernel) for _ in range(repeats)]
    tot = [timed(both) for _ in range(repeats)]
    cpu = []
    for i in range(repeats // 2 + 3):
        t0 = time.perf_counter()
        preprocess(bgr, spec)
        if i >= 3:
            cpu.append((time.perf_counter() - t0) * 1e3)
    return {
        "src": f"{src_hw[1]}x{src_hw[0]}",
        "out": f"{out_hw[1]}x{out_hw[0]}",
        "upload_ms": median_ms(up),
        "kernel_ms": median_ms(ker),
        "upload_and_kernel_ms": median_ms(tot),
        "cpu_reference_ms": median_ms(cpu),
        "kernel_speedup_vs_cpu": round(statistics.median(cpu) / statistics.median(ker), 1),
    }


def machine() -> dict[str, str]:
    def run(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"

    gpu = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    nvcc = run(["nvcc", "--version"]).splitlines()
    return {"gpu": gpu, "nvcc": nvcc[-1] if nvcc else "unknown", "python": sys.version.split()[0]}


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "device_check.json").write_text(json.dumps(report, indent=1))
    lines = [f"GPU: {report['machine']['gpu']}; {report['machine']['nvcc']}", ""]
    kernel = report.get("kernel", [])
    if kernel:
        worst = {
            p: max((r["max_abs_err"] for r in kernel if r["precision"] == p), default=0.0) for p in TOLERANCE
        }
        failed = [r["case"] + " " + r["precision"] for r in kernel if not r["ok"]]
        lines += [
            f"kernel vs CPU reference: {len(kernel) - len(failed)}/{len(kernel)} cases within tolerance; "
            f"max abs error fp32 {worst['fp32']:.2e}, fp16 {worst['fp16']:.2e}",
            *[f"  FAILED: {f}" for f in failed],
        ]
    for name, res in report.get("graph", {}).items():
        lines.append(
            f"CUDA graph replay, {name}: {'identical' if res['identical'] else 'DIFFERS'} "
            f"(max abs diff {res['max_abs_diff']:.2e})"
        )
    if report.get("timing"):
        lines += [
            "",
            "| src -> out | upload ms | kernel ms | call ms (copy+upload+kernel) | CPU reference ms | kernel vs CPU |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        lines += [
            f"| {t['src']} -> {t['out']} | {t['upload_ms']} | {t['kernel_ms']} | {t['upload_and_kernel_ms']} | "
            f"{t['cpu_reference_ms']} | {t['kernel_speedup_vs_cpu']}x |"
            for t in report["timing"]
        ]
    lines += [f"{k}: {v}" for k, v in report.get("notes", {}).items()]
    (out / "device_check.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--note", nargs=3, metavar=("OUT", "KEY", "VALUE"))
    args = parser.parse_args()
    if args.note:
        out = Path(args.note[0])
        report = json.loads((out / "device_check.json").read_text())
        report.setdefault("notes", {})[args.note[1]] = args.note[2]
        write_report(out, report)
        return 0
    import pycuda.autoinit  # noqa: F401  (creates the context on GPU 0)
    import pycuda.driver as cuda

    report: dict[str, Any] = {"machine": machine(), "kernel": check_kernel(cuda, args.quick)}
    if not args.quick:
        report["graph"] = check_graph(cuda)
        report["timing"] = [
            time_kernel(cuda, (480, 640), (256, 256)),
            time_kernel(cuda, (1080, 1920), (512, 512)),
        ]
    write_report(args.out, report)
    print((args.out / "device_check.md").read_text())
    ok = all(r["ok"] for r in report["kernel"]) and all(
        g["identical"] for g in report.get("graph", {}).values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
