#!/bin/sh
# bench_llama.sh - the llama.cpp half of `make bench-compare`: d1.h against llama.cpp on the
# same exported model, FP32 and BF16, one thread (tools/llama_sampler_check.cpp and
# tools/llama_logits_check.cpp: their headers say what each side computes).
#
#   sh tools/bench_llama.sh LLAMA_BUILD [BUILD]
#
# LLAMA_BUILD: a llama.cpp CMake build directory (its source is LLAMA_BUILD/.., or
# $LLAMA_CPP_SRC) holding bin/libllama.so and the diffusion example's library (built with
# `make llama-diffusion-cli`). Empty: prints one "skipped" line and exits 0. BUILD: d1's build
# directory (default build; build/d1 and build/make_random_model must exist).
# Models: the demo's Sudoku base checkpoint (prompt: a 4x4 puzzle, gen 64, block 8, 32 steps:
# the d1 paper's block, the demo's steps = gen/2) and a random model of bench's config B
# (V 64, dim 256, 6 layers, 8 heads, ffn 768; prompt 32 ids, gen 64, block 32, 32 steps: the
# shape of bench's sampler rows), each exported with `d1 export-gguf` as F32 and --type bf16.
# Run it pinned for figures: taskset -c 1 make bench-compare LLAMA_CPP=...
set -e
LLAMA=$1
BUILD=${2:-build}
if [ -z "$LLAMA" ]; then
    echo "llama.cpp comparison skipped: LLAMA_CPP not set (make bench-compare LLAMA_CPP=/path/to/llama.cpp/build)"
    exit 0
fi
SRC=${LLAMA_CPP_SRC:-$LLAMA/..}
CXX=${CXX:-c++}
CXXFLAGS=${CXXFLAGS:--O3 -march=native} # d1.h's FP32 kernels are chosen at compile time (as the Makefile's CFLAGS)
for f in "$LLAMA/bin/libllama.so" "$LLAMA/examples/diffusion/libllama-diffusion.a" "$SRC/include/llama.h"; do
    [ -e "$f" ] || { echo "bench_llama.sh: $f is missing (build llama.cpp's llama-diffusion-cli in $LLAMA)"; exit 1; }
done
INC="-I. -I$SRC/include -I$SRC/ggml/include -I$SRC/examples/diffusion -I$SRC/common"
LIBS="-L$LLAMA/bin -Wl,-rpath,$(cd "$LLAMA/bin" && pwd) -lllama -lggml -lggml-base -lm -lpthread"
# llama.cpp's common library (diffusion_generate logs through it): shared or static, by version
COMMON=$(ls "$LLAMA"/common/libllama-common.a "$LLAMA"/common/libcommon.a 2>/dev/null || true)
[ -e "$LLAMA/bin/libllama-common.so" ] && COMMON="$COMMON -L$LLAMA/bin -lllama-common"
COMMON="$COMMON $(ls "$LLAMA"/common/libllama-common-base.a 2>/dev/null || true)"
$CXX $CXXFLAGS -std=c++17 $INC tools/llama_logits_check.cpp -o "$BUILD/llama_logits_check" $LIBS
$CXX $CXXFLAGS -std=c++17 $INC tools/llama_sampler_check.cpp -o "$BUILD/llama_sampler_check" \
    "$LLAMA/examples/diffusion/libllama-diffusion.a" $COMMON $LIBS
echo "llama.cpp: $(cd "$SRC" && git describe --tags --always 2>/dev/null || echo "$SRC")"

out=$BUILD/bench_llama
rm -rf "$out"
mkdir -p "$out"
SUDOKU=examples/checkpoints/sudoku/base
"./$BUILD/make_random_model" "$out/randB" --vocab 64 --dim 256 --layers 6 --heads 8 --kv-heads 8 --ffn 768 \
    --max-seq 96 --seed 7 >/dev/null
for m in sudoku randB; do
    dir=$SUDOKU
    [ $m = randB ] && dir=$out/randB
    "./$BUILD/d1" export-gguf "$dir" "$out/$m-f32.gguf" >/dev/null
    "./$BUILD/d1" export-gguf "$dir" "$out/$m-bf16.gguf" --type bf16 >/dev/null
done
# the Sudoku prompt: the puzzle 1..4/.41./2..3/.32. (0 = empty; ids are the digits)
P_SUDOKU=1,0,0,4,0,4,1,0,2,0,0,3,0,3,2,0
P_RAND=$(awk 'BEGIN { for (i = 0; i < 32; i++) printf "%s%d", i ? "," : "", (i * 37 + 11) % 62 }')

echo
echo "logits, one non-causal pass over prompt + 64 masks (max |llama.cpp - d1.h| / max |d1.h|):"
for m in sudoku randB; do
    dir=$SUDOKU; p=$P_SUDOKU; mask=25
    [ $m = randB ] && { dir=$out/randB; p=$P_RAND; mask=63; }
    toks=$p$(awk -v m=$mask 'BEGIN { for (i = 0; i < 64; i++) printf ",%d", m }')
    printf "  %-6s F32  " $m; "./$BUILD/llama_logits_check" "$dir" "$out/$m-f32.gguf" "$toks" 2>/dev/null
    printf "  %-6s BF16 " $m; "./$BUILD/llama_logits_check" "$dir" "$out/$m-bf16.gguf" "$toks" bf16 2>/dev/null
done

echo
for m in sudoku randB; do
    dir=$SUDOKU; p=$P_SUDOKU; blk=8
    [ $m = randB ] && { dir=$out/randB; p=$P_RAND; blk=32; }
    for prec in f32 bf16; do
        "./$BUILD/llama_sampler_check" "$dir" "$out/$m-$prec.gguf" "$p" 64 $blk 32 $prec 11 2>/dev/null |
            tee "$out/$m-$prec.txt"
        echo
    done
done

echo "sampler, one sequence, 1 thread, ms per generation (median of 11; passes in brackets):"
printf "| %-7s | %-4s | %-22s | %-26s | %-34s | %-22s |\n" model prec "d1.h temp 0" "llama.cpp, d1.h's schedule" \
    "llama.cpp diffusion_generate (T=1)" "d1.h temp 1"
for m in sudoku randB; do
    for prec in f32 bf16; do
        awk -v m=$m -v p=$prec '
            /^RESULT/ { t[$2] = sprintf("%.2f (%d)", $4, $6) }
            /^tokens agree/ { ag = $4 "/" $6 }
            END { printf "| %-7s | %-4s | %-22s | %-26s | %-34s | %-22s |\n", m, p, t["d1"],
                  t["llama_same_schedule"] " agree " ag, (t["llama_diffusion_generate"] == "" ? "-" : t["llama_diffusion_generate"]),
                  t["d1_temperature1"] }' "$out/$m-$prec.txt"
    done
done
