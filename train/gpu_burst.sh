#!/usr/bin/env bash
# One training burst of efficientdepth-l on a GPU machine, then the checkpoint split for the way back.
#
#   bash train/gpu_burst.sh [--minutes M] [--recipe FILE] [--out DIR] [--burst PACKED] [--cpu]   # from the root
#
# Before (on a machine with the package installed and registry access):
#   python -m edgedepth_train.burst pack [--checkpoint RUN/checkpoint.safetensors]   # -> .burst/
#   pip download --no-deps --only-binary=:all: -d .whl efficientnet-lite-pytorch==0.1.0
# and carry `.burst` and `.whl` (both git-ignored). The GPU machine needs python3 with torch, numpy,
# OpenCV, PyYAML, safetensors and tqdm; the script names whatever is missing. It installs nothing from the
# network and does not install this package: it imports it from the checkout.
#
# It trains FILE (default train/recipes/efficientdepth-l-burst.yaml) for M minutes (default 9), or to its
# end, stopping after a whole step, then writes to DIR (default burst-out/): checkpoint.safetensors.part-NN (each under 16 MB),
# train_log.jsonl, train.log and burst.json. Join the parts here with
#   python -m edgedepth_train.burst join --parts DIR --out RUN/checkpoint.safetensors
# --cpu is the dry run: the same steps on this machine's CPU, on a tiny batch at 64x64 (a test runs it).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=9
OUT=burst-out
BURST=.burst
RECIPE=train/recipes/efficientdepth-l-burst.yaml
CPU=0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --recipe) RECIPE=$2; shift 2 ;;
    --burst) BURST=$2; shift 2 ;;
    --cpu) CPU=1; shift ;;
    *) echo "unknown option $1; valid: --minutes M, --recipe FILE, --out DIR, --burst PACKED, --cpu" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
mkdir -p "$OUT"
[ -f "$BURST/init.safetensors" ] || { echo "missing $BURST/init.safetensors: run 'python -m edgedepth_train.burst pack' first and carry $BURST" >&2; exit 2; }

# This checkout as the packages edgedepth and edgedepth_train (setup.cfg maps train/ to edgedepth_train),
# plus any carried wheels, on a path of its own.
SITE=$(mktemp -d)
ln -s "$PWD/edgedepth" "$SITE/edgedepth"
ln -s "$PWD/train" "$SITE/edgedepth_train"
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl || exit 2
fi
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
missing=$($PY - <<'EOF'
import importlib.util
names = {"torch": "torch", "numpy": "numpy", "cv2": "opencv-python-headless", "yaml": "pyyaml",
         "safetensors": "safetensors", "tqdm": "tqdm", "efficientnet_lite_pytorch": "efficientnet-lite-pytorch"}
print(" ".join(p for m, p in names.items() if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "missing Python packages: $missing (carry their wheels in $WHEELS/: pip download --no-deps --only-binary=:all: -d $WHEELS $missing)" >&2
  exit 2
fi

if [ "$CPU" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""
  DEVICE="cpu (dry run)"
  SETS=(--set batch_size=2 --set workers=1 --set threads=2 --set speed.precision=fp32
        --set "stages.*.resolution=[64,64]" --set checkpoint_every=2)
else
  if ! command -v nvidia-smi >/dev/null || ! timeout 20 nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
    echo "no GPU: nvidia-smi finds no NVIDIA GPU on this machine (use --cpu for the dry run)" >&2
    exit 3
  fi
  DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  SETS=()
fi
SETS+=(--set "init=$BURST/init.safetensors")
if [ -d "$BURST/textures" ]; then SETS+=(--set "sources.synthetic.texture_dir=$BURST/textures")
else SETS+=(--set "sources.synthetic.texture_dir=null"); fi  # procedural textures only
echo "== burst: $RECIPE on $DEVICE for at most $MINUTES minutes"
RUN=$(mktemp -d)/run
$PY -m edgedepth_train train --recipe "$RECIPE" --out "$RUN" \
  --max-minutes "$MINUTES" "${SETS[@]}" 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
  echo "training failed (exit $status); see $OUT/train.log" >&2
  [ -f "$RUN/checkpoint.safetensors" ] || exit 1
  echo "returning its last checkpoint" >&2  # what the failed run had saved is not lost
fi
$PY -m edgedepth_train.burst finish --run "$RUN" --out "$OUT" --device "$DEVICE" || exit 1
[ "$status" = 0 ]
