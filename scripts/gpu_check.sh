#!/usr/bin/env bash
# The GPU check in one call (issue 43), from any folder, on a machine with an NVIDIA GPU:
#   bash scripts/gpu_check.sh         # within 8 minutes; the table goes to stdout, .gpu_check/gpu_check.md and, when
#                                     # $OUT is set, $OUT/gpu_check.md
#   bash scripts/gpu_check.sh --cpu   # the same flow on the CPU on a tiny set (GPU_CHECK_ALLOW_CPU=1 says the same):
#                                     # the parts that run without a GPU, as tests/test_gpu_check.py runs them
# It sets up from uv.lock (an existing .venv is used as it is, else `uv sync --frozen`), makes the generated
# CIFAR-shaped set of full size (45,000 train / 5,000 val / 10,000 test at 32x32) in a scratch folder
# ($GPU_CHECK_SCRATCH, default .gpu_check/; a later run with the same params reuses it), runs tests/test_cuda.py,
# times cifar_best's train stage against its bare step (`pipeline bench`, goal: a ratio of 0.9 or more), trains and
# evaluates cifar_best, trains airbench94 (the airbench package, `pipeline bench-airbench`) on the same arrays, and
# prints one markdown table (`pipeline dev gpu-table`). The workspace's params.yaml, data/ and metrics/ are never
# touched: the stages run in the scratch folder, on a copy of params.yaml with `-S` overrides.
# Each part runs under its own time limit, all of them within BUDGET_S: one that hangs shows "timed out" in its
# cell and the table still prints. Exit status 1 when a part failed or timed out.
set -euo pipefail

usage="usage: bash scripts/gpu_check.sh [--cpu]"
MODE=gpu
case "${1:-}" in
    --cpu) MODE=cpu ;;
    "") ;;
    *) echo "$usage" >&2; exit 2 ;;
esac
[[ "${GPU_CHECK_ALLOW_CPU:-0}" == 1 ]] && MODE=cpu

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRATCH=${GPU_CHECK_SCRATCH:-$REPO/.gpu_check}
CHECK=$SCRATCH/check           # each part's .status and .log, airbench.json: what the table is made from
PY=$REPO/.venv/bin/python
BUDGET_S=470                   # every part together; the table takes a few seconds more: within 8 minutes
MODEL=cifar_best
DATASET=cifar10

# The full-size generated set; near-duplicate search off: on 60,000 images it takes minutes and 7 GB, and the
# generated images have none worth dropping. The recipe's settings for all of CIFAR-10 on a GPU
# (docs/how-to/training-recipes.md): airbench94's set-up, batch 1024 for 10 epochs (the block's, not its `sample`
# budget: `sample={}`).
if [[ $MODE == gpu ]]; then
    DATA=(-S data.$DATASET.sample_per_class=5000 -S data.$DATASET.sample_test_per_class=1000)
    TRAIN=(-S "models.$MODEL.sample={}" -S models.$MODEL.batch_size=1024 -S models.$MODEL.lr=1.5
           -S models.$MODEL.epochs=10 -S +models.$MODEL.data_on_device=true)
    BENCH=()
    #       setup data cuda_tests bench train evaluate airbench: each part's own limit, in seconds
    CAPS=(  90    240  90         90    90    60       90)
else
    # A tiny set and a narrow net (the full one trains some 50 images/s on 2 CPU cores).
    DATA=(-S data.$DATASET.sample_per_class=10 -S data.$DATASET.sample_test_per_class=3)
    TRAIN=(-S "models.$MODEL.sample={}" -S models.$MODEL.epochs=1 -S models.$MODEL.batch_size=16
           -S "models.$MODEL.widths=[8,16,16]" -S train.device=cpu)
    BENCH=(--epochs 1 --steps 2)
    CAPS=(  90    60   60         60    60    60       60)
fi
DATA+=(-S audit.$DATASET.near_duplicates=false)

export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}  # the checkout's code, wherever .venv was made
export PYTHONUNBUFFERED=1 DVC_STUDIO_OFFLINE=true
# As make does: with PYTHONDONTWRITEBYTECODE set, every command would compile torch's modules again (seconds each).
unset PYTHONDONTWRITEBYTECODE
START=$SECONDS
FAILED=0

part_limit() {  # CAP: the seconds a part may take, its cap or what is left of the budget
    local left=$((BUDGET_S - (SECONDS - START)))
    echo $((left < $1 ? left : $1))
}

record() {  # NAME OUTCOME SECONDS [DETAIL]: one line in CHECK/NAME.status, which `pipeline dev gpu-table` reads
    echo "$2 $3 ${4:-}" > "$CHECK/$1.status"
}

run_part() {  # NAME CAP COMMAND...: COMMAND under its time limit, output to the terminal and CHECK/NAME.log
    local name=$1 cap=$2 limit code=0 start=$SECONDS
    shift 2
    limit=$(part_limit "$cap")
    if ((limit <= 0)); then
        record "$name" not_run 0 "the check's $BUDGET_S s were spent"
        return
    fi
    echo "== $name (at most $limit s): $*"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$CHECK/$name.log" || code=${PIPESTATUS[0]}
    case $code in
        0) record "$name" ok $((SECONDS - start)) ;;
        124 | 137) record "$name" timeout "$limit"; FAILED=1 ;;
        *) record "$name" failed $((SECONDS - start)) "$code"; FAILED=1 ;;
    esac
}

find_uv() {  # the uv that `make sync` would use
    command -v uv || { [[ -x $REPO/.tools/bin/uv ]] && echo "$REPO/.tools/bin/uv"; } || {
        echo "no uv on PATH nor in .tools/: run \`make sync\` once (it installs uv with pip)" >&2
        return 1
    }
}

has() {  # MODULE...: whether .venv's Python finds them all (without importing them)
    "$PY" -c "import importlib.util as u, sys; sys.exit(None in map(u.find_spec, sys.argv[1:]))" "$@" 2>/dev/null
}

setup() {  # an existing .venv that holds what the check runs, else one made from uv.lock
    if has torch pytest pipeline; then
        has airbench || echo "setup: .venv has no airbench (a dev dependency): its part will fail; \`uv sync\` adds it"
        echo "setup: using the existing .venv"
        return
    fi
    local uv
    uv=$(find_uv)
    echo "setup: .venv missing or incomplete; running: $uv sync --frozen (from uv.lock)"
    (cd "$REPO" && "$uv" sync --frozen)
}

make_data() {  # OVERRIDES...: the generated set through download, settings, split and preprocess, here
    local stage
    for stage in download settings split preprocess; do
        "$PY" -m pipeline "$stage" "$DATASET" "$@"
    done
}

data_part() {  # make_data, or the arrays of an earlier run made from the same params and settings
    local stamp
    stamp="$(sha256sum < "$SCRATCH/params.yaml") ${DATA[*]}"
    if [[ -f $SCRATCH/data.stamp && $(cat "$SCRATCH/data.stamp") == "$stamp" \
          && -f $SCRATCH/data/processed/$DATASET/meta.json ]]; then
        echo "== data: reusing $SCRATCH/data (same params and settings as the run that made it)"
        record data ok 0 reused
        return
    fi
    rm -rf "$SCRATCH/data" "$SCRATCH/data.stamp"
    run_part data "${CAPS[1]}" bash -c 'make_data "$@"' make_data "${DATA[@]}"
    [[ -f $CHECK/data.status && $(cut -d' ' -f1 "$CHECK/data.status") == ok ]] && echo "$stamp" > "$SCRATCH/data.stamp"
    return 0
}

show_device() {  # what the check runs on (CHECK/device.txt, for the table); a GPU run refused where torch sees none
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    fi
    "$PY" -c "import sys, torch
from pipeline.upkeep.gpu_check import device_text
print(device_text())
sys.exit(sys.argv[1] == 'gpu' and not torch.cuda.is_available())" "$MODE" > "$CHECK/device.txt" || {
        echo "torch sees no CUDA GPU: run \`bash scripts/gpu_check.sh --cpu\` for the parts that run without one" >&2
        exit 1
    }
    cat "$CHECK/device.txt"
}

mkdir -p "$SCRATCH"
rm -rf "$CHECK" "$SCRATCH/metrics" "$SCRATCH/models"
mkdir -p "$CHECK"
cp "$REPO/params.yaml" "$SCRATCH/params.yaml"
echo "$MODE" > "$CHECK/mode"

export -f has setup find_uv make_data
export REPO PY DATASET
run_part setup "${CAPS[0]}" bash -c setup
[[ $(cut -d' ' -f1 "$CHECK/setup.status") == ok ]] || { echo "setup failed: see the lines above" >&2; exit 1; }
show_device

cd "$SCRATCH"
data_part
if [[ $MODE == gpu ]]; then
    run_part cuda_tests "${CAPS[2]}" "$PY" -m pytest -q -p no:cacheprovider -o addopts= "$REPO/tests/test_cuda.py"
else  # every test of the file would skip
    record cuda_tests skipped 0 "needs a GPU (a --cpu run)"
fi
run_part bench "${CAPS[3]}" "$PY" -m pipeline bench "$MODEL" "${BENCH[@]}" "${TRAIN[@]}"
run_part train "${CAPS[4]}" "$PY" -m pipeline train "$MODEL" "${TRAIN[@]}"
run_part evaluate "${CAPS[5]}" "$PY" -m pipeline evaluate "$MODEL" "${TRAIN[@]}"
if [[ $MODE == gpu ]]; then
    run_part airbench "${CAPS[6]}" "$PY" -m pipeline bench-airbench "$DATASET" --out "$CHECK/airbench.json"
else
    record airbench skipped 0 "needs a GPU (a --cpu run)"
fi

echo "== the table"
"$PY" -m pipeline dev gpu-table "$SCRATCH" --seconds $((SECONDS - START)) --model "$MODEL" --dataset "$DATASET" \
    | tee "$SCRATCH/gpu_check.md"
if [[ -n ${OUT:-} ]]; then
    mkdir -p "$OUT"
    cp "$SCRATCH/gpu_check.md" "$OUT/gpu_check.md"
    cp -r "$CHECK" "$OUT/gpu_check_parts"  # each part's log and outcome, to see what a failed part said
    echo "wrote $OUT/gpu_check.md and $OUT/gpu_check_parts/"
fi
exit "$FAILED"
