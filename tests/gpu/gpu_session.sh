#!/usr/bin/env bash
# Everything a borrowed GPU machine is for, in one call: a training burst of efficientdepth-l
# (train/gpu_burst.sh) and the GPU path's check (tests/gpu/device_check.sh).
#
#   bash tests/gpu/gpu_session.sh [--minutes M] [--recipe FILE] RESULTS_DIR     # from the repository root
#
# Carry `.burst` and `.whl` as both scripts say. pycuda builds on the CPU cores while the GPU trains; the
# check runs after the burst, on an idle GPU, so that its timings are the kernel's own. GPU utilisation and
# memory are sampled every 5 s during the burst. RESULTS_DIR receives at most 8 files, each under 16 MB:
# the checkpoint's parts (join them with `python -m edgedepth_train.burst join --parts RESULTS_DIR ...`)
# and session.tar.gz with every log and report. Budget: M minutes (default 4.5) plus at most 5.
set -uo pipefail
cd "$(dirname "$0")/../.."
MINUTES=4.5
RECIPE=()
while [ $# -gt 1 ]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --recipe) RECIPE=(--recipe "$2"); shift 2 ;;
    *) echo "unknown option $1; valid: --minutes M, --recipe FILE, then RESULTS_DIR" >&2; exit 2 ;;
  esac
done
[ $# = 1 ] || { echo "usage: bash tests/gpu/gpu_session.sh [--minutes M] [--recipe FILE] RESULTS_DIR" >&2; exit 2; }
RESULTS=$1
WORK=$(mktemp -d)
mkdir -p "$RESULTS" "$WORK/check" "$WORK/burst"
start=$(date +%s)
{ nvidia-smi; nproc; python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"; } \
  > "$WORK/machine.txt" 2>&1

bash tests/gpu/device_check.sh --build-only "$WORK/check" > "$WORK/check/build.out" 2>&1 &
build=$!
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 > "$WORK/burst/gpu_util.csv" &
sampler=$!
limit=$(python3 -c "print(int(60 * $MINUTES) + 120)")  # start-up, the last step and the split included
timeout "$limit" bash train/gpu_burst.sh --minutes "$MINUTES" "${RECIPE[@]}" --out "$WORK/burst"
burst_rc=$?
kill "$sampler" 2>/dev/null
echo "== burst exit $burst_rc after $(( $(date +%s) - start )) s"
mv "$WORK"/burst/checkpoint.safetensors.part-* "$RESULTS"/ 2>/dev/null  # back even if the check overruns

wait "$build"
echo "== pycuda build exit $? ($(tail -1 "$WORK/check/build.out"))"
timeout 170 bash tests/gpu/device_check.sh "$WORK/check"
check_rc=$?
echo "== check exit $check_rc after $(( $(date +%s) - start )) s"

tar czf "$RESULTS/session.tar.gz" -C "$WORK" .
ls -l "$RESULTS"
[ "$burst_rc" = 0 ] && [ "$check_rc" = 0 ]
