#!/usr/bin/env bash
# shellcheck disable=SC2317  # test_cuda and bench_d1 run through `bash -c`
# gpu_check.sh - the one prepared check of the CUDA backend on a GPU machine:
# build it, run its tests, then the GPU benchmark against PyTorch on the same GPU.
#
#     bash tools/gpu_check.sh        (from the repository root; $OUT optional)
#
# Stages: the GPU and nvcc; `make cuda`; `make test-cuda` (must print
# "N passed, 0 failed"); build/cuda/bench --device cuda --configs B,C,D;
# tools/bench_torch.py --device cuda --configs B,C,D (python3 with a CUDA
# torch; PYTHON=... overrides); tools/bench_compare.py on the common CSV. A failed
# stage is reported and the next ones still run; the exit status is 1 when
# any stage failed. Each stage has a time cap (seconds, overridable from the
# environment) so that a hang cannot eat the machine's budget: the caps add
# up to 6 minutes, a normal run on an H100 takes well under that.
# With $OUT set: the CSV is $OUT/bench_cuda.csv and everything printed is
# also in $OUT/gpu_check.log; without, the CSV is build/cuda/bench_cuda.csv.
set -o pipefail

T_BUILD=${T_BUILD:-120}     # make cuda
T_TEST=${T_TEST:-75}        # make test-cuda
T_BENCH=${T_BENCH:-60}      # build/cuda/bench, configs B, C, D
T_TORCH=${T_TORCH:-90}      # tools/bench_torch.py, configs B, C, D
T_COMPARE=${T_COMPARE:-15}
PYTHON=${PYTHON:-python3}
CONFIGS=${CONFIGS:-B,C,D}

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    CSV="$OUT/bench_cuda.csv"
    LOG="$OUT/gpu_check.log"
else
    mkdir -p build/cuda
    CSV=build/cuda/bench_cuda.csv
    LOG=/dev/null
fi
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH="/usr/local/cuda/bin:$PATH"
fi

FAILED=()

# stage NAME CAP_SECONDS COMMAND...: runs it under `timeout`, reports rc and seconds
stage() {
    local name=$1 cap=$2 t0=$SECONDS rc
    shift 2
    echo
    echo "==== $name: $*  (cap ${cap} s)"
    timeout --kill-after=5 "$cap" "$@"
    rc=$?
    [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "==== $name: TIMED OUT after ${cap} s"
    echo "==== $name: rc $rc, $((SECONDS - t0)) s"
    [ "$rc" -eq 0 ] || FAILED+=("$name")
    return "$rc"
}

# make test-cuda, then its "N passed, N failed" line must say 0 failed
test_cuda() {
    local tmp rc
    tmp=$(mktemp)
    make test-cuda 2>&1 | tee "$tmp"
    rc=$?
    if ! grep -Eq '[0-9]+ passed, [0-9]+ failed' "$tmp"; then
        echo "gpu_check: no 'N passed, N failed' line from make test-cuda"
        [ "$rc" -eq 0 ] && rc=1
    elif grep -Eq '[0-9]+ passed, [1-9][0-9]* failed' "$tmp"; then
        echo "gpu_check: make test-cuda reports failures"
        [ "$rc" -eq 0 ] && rc=1
    fi
    rm -f "$tmp"
    return "$rc"
}

bench_d1() {
    if [ ! -x build/cuda/bench ]; then
        echo "gpu_check: build/cuda/bench was not built"
        return 1
    fi
    build/cuda/bench --device cuda --configs "$CONFIGS" --csv "$CSV"
}

main() {
    local t0=$SECONDS
    echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')" \
         "$( [ -n "$(git status --porcelain 2>/dev/null)" ] && echo '(+ uncommitted changes)')"
    echo "==== GPU"
    nvidia-smi -L || FAILED+=("nvidia-smi")
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
    if command -v nvcc >/dev/null 2>&1; then
        nvcc --version | grep -E 'release' || nvcc --version | tail -n 1
    else
        echo "nvcc: not found"
    fi

    stage build "$T_BUILD" make -j"$(nproc 2>/dev/null || echo 4)" cuda
    stage test-cuda "$T_TEST" bash -c test_cuda

    rm -f "$CSV"
    stage bench-d1 "$T_BENCH" bash -c bench_d1
    stage bench-torch "$T_TORCH" "$PYTHON" tools/bench_torch.py --device cuda --configs "$CONFIGS" --csv "$CSV"
    if [ -s "$CSV" ]; then
        stage compare "$T_COMPARE" "$PYTHON" tools/bench_compare.py "$CSV"
    else
        echo "gpu_check: no benchmark rows in $CSV"
        FAILED+=("compare")
    fi

    echo
    echo "==== total $((SECONDS - t0)) s; CSV $CSV"
    if [ "${#FAILED[@]}" -eq 0 ]; then
        echo "gpu_check: every stage passed"
        return 0
    fi
    echo "gpu_check: FAILED: ${FAILED[*]}"
    return 1
}

# `timeout` runs these functions through `bash -c`, so export them and what they use
export -f test_cuda bench_d1
export CSV CONFIGS

main 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"
