#!/usr/bin/env bash
# demo_seeds.sh - the demo's three-seed spread: mean ± sd over seeds of every
# cell of the paper-shaped table (the demo issue's target is stated that way).
#
#     bash tools/demo_seeds.sh run [SEEDS]      # train: the whole pipeline per seed
#     bash tools/demo_seeds.sh table DIR...     # summarise finished runs
#
# `run` calls `build/d1_demo --full --seed S --out build/demo-seeds/sS` for each
# seed in turn (every stage from scratch; each run uses both cores: the two
# tasks' base/SFT in parallel, then each task's two RL arms in parallel), then
# prints the table over build/demo-seeds/s*. On the 2-core development
# machine one seed takes about 33 minutes (the sum of its stage times).
# `table` reads DIR/TASK/eval/ROW-GENLEN.txt (written by d1_demo's evaluation:
# "n mean se exact exact_se no_answer") of each DIR and prints, per task and table cell
# (each generation length; at the first, d1's split "-any" and the block-8 decoding "-b8")
# each of the six rows' mean ± sd over the DIRs and the per-seed values ("+RL (x)" and
# "d1 (x)": the successor's arms, ESPO in the shipped settings). Sudoku
# shows the share of empty cells right and the puzzles solved, Countdown the
# exact answers, in %.
set -u
cmd=${1:-table}
shift || true
if [ "$cmd" = run ]; then
    make build/d1_demo >/dev/null || exit 1
    for s in ${1:-1 2 3}; do
        ./build/d1_demo --full --seed "$s" --out "build/demo-seeds/s$s" >"build/demo-seeds-s$s.log" 2>&1 ||
            { echo "demo_seeds: seed $s failed (build/demo-seeds-s$s.log)"; exit 1; }
    done
    set -- build/demo-seeds/s*
fi
[ $# -gt 0 ] || { echo "usage: demo_seeds.sh run [SEEDS] | table DIR..."; exit 2; }
for task in sudoku countdown; do
    # the table's cells: each generation length (the run's block), then at the first length
    # d1's split (-any) and the block-8 decoding (-b8), where the runs wrote them
    for cell in 56 64 56-any 56-b8 32 48 32-any 32-b8; do
        files=$(for d in "$@"; do ls "$d/$task/eval/base-$cell.txt" 2>/dev/null; done)
        [ -n "$files" ] || continue
        echo "$task, gen_len $cell: mean ± sd over the runs [each run], %"
        for row in base sft rl-base d1 x-rl-base x-d1; do
            for d in "$@"; do cat "$d/$task/eval/$row-$cell.txt" 2>/dev/null || echo "- - - - -"; done |
                awk -v row="$row" -v task="$task" '
                    $1 != "-" { n++; m = 100 * $2; e = 100 * $4; sm += m; sm2 += m * m; se += e; se2 += e * e
                                list_m = list_m sprintf(" %.1f", m); list_e = list_e sprintf(" %.1f", e) }
                    END {
                        names["base"] = "base"; names["sft"] = "+SFT"; names["rl-base"] = "+diffu-GRPO"; names["d1"] = "d1"
                        names["x-rl-base"] = "+RL (x)"; names["x-d1"] = "d1 (x)"
                        if (n == 0) { printf "  %-12s -\n", names[row]; exit }
                        mm = sm / n; me = se / n
                        sdm = n > 1 ? sqrt((sm2 - n * mm * mm) / (n - 1) > 0 ? (sm2 - n * mm * mm) / (n - 1) : 0) : 0
                        sde = n > 1 ? sqrt((se2 - n * me * me) / (n - 1) > 0 ? (se2 - n * me * me) / (n - 1) : 0) : 0
                        if (task == "sudoku")
                            printf "  %-12s cells %5.1f ± %4.1f [%s ]   solved %5.1f ± %4.1f [%s ]\n", names[row], mm, sdm, list_m, me, sde, list_e
                        else
                            printf "  %-12s exact %5.1f ± %4.1f [%s ]\n", names[row], me, sde, list_e
                    }'
        done
    done
done
