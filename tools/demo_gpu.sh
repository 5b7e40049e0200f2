#!/usr/bin/env bash
# demo_gpu.sh - the d1 demo pipeline on a GPU: build/cuda/d1_demo --device cuda
# --full for several seeds at once, with budgets a 2-core machine cannot give
# (what the recipe reaches with more steps; the demo issue asks for that).
#
#     make cuda && bash tools/demo_gpu.sh [CAP_SECONDS]     ($OUT optional)
#
# Every seed runs the whole pipeline (base, SFT, both RL arms, evaluation on
# 500 held-out prompts) for both tasks; then Fast-dLLM's threshold decoding is
# measured on seed 1's four models. CAP_SECONDS (default 400) bounds the
# pipeline; what finished is reported either way. Outputs: build/demo-gpu/sSEED/
# (the demo's usual tree), and with $OUT set: demo_gpu.log, the seeds' CSVs and
# tables in demo_gpu_runs.tgz, seed 1's final models in demo_gpu_models_TASK.tgz.
set -u
CAP=${1:-400}
SEEDS=${SEEDS:-"1 2 3"}
ARGS=${DEMO_GPU_ARGS:-"--base-steps 12000 --sft-steps 6000 --rl-iters 120 --rl-inner 8"}
DIR=build/demo-gpu
LOG=${OUT:+$OUT/demo_gpu.log}
LOG=${LOG:-$DIR.log}
rm -rf "$DIR"
mkdir -p "$DIR"
t0=$SECONDS
{
    echo "demo_gpu: seeds $SEEDS, $ARGS, cap $CAP s"
    for s in $SEEDS; do
        timeout --kill-after=5 "$CAP" build/cuda/d1_demo --device "${DEVICE:-cuda}" --full --seed "$s" --out "$DIR/s$s" $ARGS \
            >"$DIR/s$s.out" 2>"$DIR/s$s.err" &
    done
    wait
    echo "demo_gpu: pipelines done after $((SECONDS - t0)) s"
    for s in $SEEDS; do
        echo "---- seed $s"
        tail -n 25 "$DIR/s$s.out"
        grep -E "eval|d1_demo:" "$DIR/s$s.err" | tail -n 20
    done
    echo "---- threshold decoding (seed 1)"
    timeout 60 build/cuda/demo_measure --device "${DEVICE:-cuda}" --full --seed 1 --out "$DIR/s1" --stage threshold $ARGS 2>&1 |
        grep -E "forward passes|demo_measure:|d1_demo:"
    echo "demo_gpu: total $((SECONDS - t0)) s"
} 2>&1 | tee "$LOG"
if [ -n "${OUT:-}" ]; then
    (cd "$DIR" && tar czf "$OUT/demo_gpu_runs.tgz" --exclude=final --exclude=ckpt . 2>/dev/null)
    for task in sudoku countdown; do
        [ -d "$DIR/s1/$task" ] && (cd "$DIR/s1/$task" && tar czf "$OUT/demo_gpu_models_$task.tgz" */final 2>/dev/null)
    done
fi
exit 0
