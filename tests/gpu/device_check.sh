#!/usr/bin/env bash
# The GPU path, checked on a real NVIDIA GPU in one run: the fused CUDA preprocessing kernel against the CPU
# reference, its CUDA-graph replay, its speed, compute-sanitizer's memcheck, and the GPU-marked tests.
#
#   bash tests/gpu/device_check.sh [--build-only] [OUT_DIR]   # from the repository root; OUT_DIR: gpu-check/
#
# It installs nothing from the network. Carry pycuda's sdist and its pure-Python dependencies as wheels in
# a folder `.whl/` beside the repository root (git-ignored), fetched on a machine with registry access:
#
#   pip download --no-deps --no-binary pycuda pycuda==2026.1 -d .whl
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       pytools==2026.1.1 platformdirs==4.14.5 mako==1.4.3 siphash24==1.9
#
# (the device image already has numpy, OpenCV, pytest, markupsafe and typing-extensions; carry those too
# where it does not).
# pycuda is then built with the machine's nvcc (about 2 minutes) into $PYCUDA_SITE (default
# /tmp/edgedepth-pycuda), once: --build-only stops there, so that the build can run beside other work, and
# a later run reuses it. The script needs python3 with numpy, OpenCV and pytest. It refuses to run without
# a GPU, and writes device_check.json and device_check.md to OUT_DIR, printing the table last. Budget:
# under 8 minutes, the pycuda build included.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD_ONLY=0
if [ "${1:-}" = --build-only ]; then BUILD_ONLY=1; shift; fi
OUT=${1:-gpu-check}
SITE=${PYCUDA_SITE:-/tmp/edgedepth-pycuda}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT"
PY=${PYTHON:-python3}

missing=0
sdist=$(ls "$WHEELS"/pycuda-*.tar.gz 2>/dev/null | head -1)
if [ -z "$sdist" ]; then
  echo "missing: pycuda's sdist in $WHEELS/ (get it with: pip download --no-deps --no-binary pycuda pycuda==2026.1 -d $WHEELS)"
  missing=1
fi
for dep in pytools platformdirs mako siphash24; do
  if ! ls "$WHEELS"/"$dep"-*.whl >/dev/null 2>&1 && ! $PY -c "import $dep" 2>/dev/null; then
    echo "missing: a $dep wheel in $WHEELS/ (get it with: pip download --no-deps --only-binary=:all: $dep -d $WHEELS)"
    missing=1
  fi
done

if ! command -v nvidia-smi >/dev/null || ! timeout 20 nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
  echo "no GPU: nothing to check (nvidia-smi finds no NVIDIA GPU on this machine)"
  exit 3
fi
[ "$missing" = 0 ] || { echo "carry the files named above, then run again"; exit 2; }
command -v nvcc >/dev/null || { echo "nvcc is not on PATH: pycuda cannot be built"; exit 2; }

export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
if ls "$SITE"/pycuda/_driver*.so >/dev/null 2>&1; then
  echo "== pycuda already built in $SITE"
else
  mkdir -p "$SITE"
  echo "== installing carried wheels and building pycuda ($sdist) with $(nvcc --version | tail -1)"
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl || exit 2
  fi
  # The toolkit's root (nvcc on PATH may be a wrapper script outside it), where libcuda.so is to link
  # against (the toolkit's stubs, or the driver's libcuda.so.1 through a link), and whether cuRAND is
  # there (pycuda's cuRAND wrapper is optional: the kernel does not use it). pycuda's build reads these
  # from ~/.aksetup-defaults.py, so HOME points at a folder of its own for the build.
  ROOT=""
  for d in "${CUDA_ROOT:-}" /usr/local/cuda "$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"; do
    if [ -n "$d" ] && [ -f "$d/include/cuda.h" ]; then ROOT=$d; break; fi
  done
  [ -n "$ROOT" ] || { echo "no CUDA toolkit with include/cuda.h found (set CUDA_ROOT)"; exit 2; }
  BUILD_HOME=$(mktemp -d)
  DRV=$(ls -d "$ROOT"/lib64/stubs "$ROOT"/lib64 "$ROOT"/targets/*/lib/stubs 2>/dev/null \
        | while read -r d; do [ -e "$d/libcuda.so" ] && echo "$d"; done | head -1)
  if [ -z "$DRV" ]; then
    real=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
    [ -n "$real" ] || { echo "no libcuda.so to link pycuda against"; exit 2; }
    DRV=$BUILD_HOME/lib && mkdir -p "$DRV" && ln -s "$real" "$DRV/libcuda.so"
  fi
  CURAND=False
  ls "$ROOT"/lib64/libcurand.so >/dev/null 2>&1 && CURAND=True
  printf 'CUDA_ROOT = "%s"\nCUDADRV_LIB_DIR = ["%s"]\nCUDART_LIB_DIR = ["%s/lib64"]\nCURAND_LIB_DIR = ["%s/lib64"]\nCUDA_ENABLE_CURAND = %s\n' \
    "$ROOT" "$DRV" "$ROOT" "$ROOT" "$CURAND" > "$BUILD_HOME/.aksetup-defaults.py"
  echo "   toolkit $ROOT, libcuda.so from $DRV, cuRAND $CURAND"
  HOME=$BUILD_HOME CUDA_ROOT=$ROOT $PY -m pip install -q --no-index --no-deps --no-build-isolation \
    --target "$SITE" "$sdist" > "$OUT/pycuda_build.log" 2>&1 \
    || { tail -30 "$OUT/pycuda_build.log"; rm -rf "$SITE/pycuda"; echo "pycuda build failed"; exit 2; }
  echo "   built in $(( $(date +%s) - start )) s"
fi
[ "$BUILD_ONLY" = 0 ] || exit 0

status=0
echo "== kernel, CUDA graph and timing checks"
PYTHONUNBUFFERED=1 $PY tests/gpu/device_check.py --out "$OUT" || status=1

echo "== the GPU-marked tests"
$PY -m pytest -q -m gpu -p no:cacheprovider tests/edgedepth/test_cuda.py tests/edgedepth/test_tensorrt_gpu.py -rs \
  > "$OUT/pytest_gpu.log" 2>&1 || status=1
tail -15 "$OUT/pytest_gpu.log"

if command -v compute-sanitizer >/dev/null; then
  echo "== compute-sanitizer --tool memcheck on the kernel check"
  compute-sanitizer --tool memcheck --error-exitcode 9 $PY tests/gpu/device_check.py --quick --out "$OUT/memcheck" \
    > "$OUT/memcheck.log" 2>&1
  rc=$?
  tail -5 "$OUT/memcheck.log"
  $PY tests/gpu/device_check.py --note "$OUT" memcheck "$( [ $rc = 0 ] && echo clean || echo "exit $rc, see memcheck.log")"
else
  $PY tests/gpu/device_check.py --note "$OUT" memcheck "compute-sanitizer is not on this machine"
fi

echo "== total $(( $(date +%s) - start )) s"
cat "$OUT/device_check.md"
exit $status
