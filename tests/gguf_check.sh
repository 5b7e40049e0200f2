#!/bin/sh
# d1 export-gguf checked by an independent reader: each checkpoint below is
# exported and tools/gguf_check/check.mjs (the npm package @huggingface/gguf)
# reads every key, every tensor's shape and every value back against the
# checkpoint's own files. Installs the package into tools/gguf_check on first
# use (npm's registry). Then --type bf16 (the matrices BF16, each value the
# checkpoint's rounded to nearest even): the two above (stored BF16: exact) and an
# F32 checkpoint (where the rounding shows).
#   sh tests/gguf_check.sh [D1]    from the repository root; D1 defaults to ./build/d1
set -e
D1=${1:-./build/d1}
out=${TMPDIR:-/tmp}/d1_gguf_check.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
command -v node >/dev/null || { echo "node is missing"; exit 1; }
[ -d tools/gguf_check/node_modules/@huggingface/gguf ] ||
    (cd tools/gguf_check && npm install --no-audit --no-fund --silent >/dev/null)
"$D1" export-gguf examples/checkpoints/sudoku/base "$out/sudoku.gguf"
(cd tools/gguf_check && node check.mjs ../../examples/checkpoints/sudoku/base "$out/sudoku.gguf")
"$D1" export-gguf tests/data/ckpt_torch_bf16 "$out/gqa.gguf" # GQA (4 heads, 2 KV heads), BF16, no vocabulary
(cd tools/gguf_check && node check.mjs ../../tests/data/ckpt_torch_bf16 "$out/gqa.gguf")
"$D1" export-gguf examples/checkpoints/sudoku/base "$out/sudoku-bf16.gguf" --type bf16
(cd tools/gguf_check && node check.mjs ../../examples/checkpoints/sudoku/base "$out/sudoku-bf16.gguf" bf16)
"$D1" export-gguf tests/data/ckpt_torch_bf16 "$out/gqa-bf16.gguf" --type bf16
(cd tools/gguf_check && node check.mjs ../../tests/data/ckpt_torch_bf16 "$out/gqa-bf16.gguf" bf16)
"$D1" export-gguf tests/data/ckpt_torch_f32 "$out/f32-bf16.gguf" --type bf16
(cd tools/gguf_check && node check.mjs ../../tests/data/ckpt_torch_f32 "$out/f32-bf16.gguf" bf16)
