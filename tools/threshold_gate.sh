#!/bin/sh
# The sampler issue's bar as a check: on the shipped trained Sudoku models
# (examples/checkpoints/gpu-seed1), threshold 0.9 must take >= 2x fewer forward
# passes than steps = gen/2, with the score within 1 point. Reads `make
# threshold-check`'s output on stdin.
# The scores are this build's on this CPU (another SIMD path rounds otherwise),
# so the build line the demo prints is repeated beside the verdict.
awk '/^build: / { print; next }
     /forward passes/ {
        model = $2; r = $0; sub(/.*reward /, "", r); sub(/ .*/, "", r)
        p = $0; sub(/ forward passes.*/, "", p); n = split(p, f, " "); p = f[n]
        if ($0 ~ /threshold/) { tr[model] = r; tp[model] = p } else { sr[model] = r; sp[model] = p }
     }
     END {
        bad = 0; seen = 0
        for (m in tp) {
            seen++
            ok = sp[m] >= 2 * tp[m] && tr[m] >= sr[m] - 0.01
            printf "%-8s passes %d -> %d (%.2fx), score %.3f -> %.3f: %s\n", m, sp[m], tp[m], sp[m] / tp[m], sr[m], tr[m], ok ? "ok" : "FAIL"
            bad += !ok
        }
        exit (seen == 0 || bad > 0)
     }'
