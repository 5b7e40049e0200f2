#!/bin/sh
# d1.h's tokenizer checked by an independent implementation: for each
# tokenizer below, tools/tokenizer_dump (d1_tokenizer_encode, then
# d1_tokenizer_decode of those ids) runs on a corpus and
# tools/tokenizer_check/check.mjs (the npm package @huggingface/tokenizers)
# encodes and decodes every case itself; ids and texts must be equal. Installs
# the package into tools/tokenizer_check on first use (npm's registry).
#   sh tests/tokenizer_check.sh [DUMP [DIR CORPUS]...]    from the repository root
# DUMP defaults to ./build/tokenizer_dump, built here (cc) when it is missing
# or older than d1.h or tools/tokenizer_dump.c. Without DIR CORPUS pairs:
#   tests/data/tokenizers/gpt2    and tests/data/tokenizer_corpus.txt  (ByteLevel's expression, "a b" merges)
#   tests/data/tokenizers/llama3  and tests/data/tokenizer_corpus.txt  (Split with Llama 3's, ignore_merges)
#   a d1_tokenizer_init_chars tokenizer as the demo makes it, written here
#                                 and tests/data/tokenizer_corpus_chars.txt
#   examples/checkpoints/sudoku/base, when it has a tokenizer.json, and the same
# (tests/data/make_tokenizers.py writes the first two).
set -e
DUMP=${1:-./build/tokenizer_dump}
[ $# -gt 0 ] && shift
out=${TMPDIR:-/tmp}/d1_tokenizer_check.$$
mkdir -p "$out"
trap 'rm -rf "$out"' EXIT
command -v node >/dev/null || { echo "node is missing"; exit 1; }
if [ "$DUMP" = ./build/tokenizer_dump ] &&
    { [ ! -x "$DUMP" ] || [ -n "$(find d1.h tools/tokenizer_dump.c -newer "$DUMP")" ]; }; then
    mkdir -p build
    ${CC:-cc} -O1 -std=c99 -Wall -Wextra -Werror -o "$DUMP" tools/tokenizer_dump.c -lm -lpthread
fi
[ -d tools/tokenizer_check/node_modules/@huggingface/tokenizers ] ||
    (cd tools/tokenizer_check && npm install --no-audit --no-fund --silent >/dev/null)
if [ $# -eq 0 ]; then
    "$DUMP" --init-chars "$out/chars" '0123456789+-*/()=,.:' \
        '<reasoning>' '</reasoning>' '<answer>' '</answer>' '<eos>' '<mask>'
    set -- tests/data/tokenizers/gpt2 tests/data/tokenizer_corpus.txt \
        tests/data/tokenizers/llama3 tests/data/tokenizer_corpus.txt \
        "$out/chars" tests/data/tokenizer_corpus_chars.txt
    [ -f examples/checkpoints/sudoku/base/tokenizer.json ] &&
        set -- "$@" examples/checkpoints/sudoku/base tests/data/tokenizer_corpus_chars.txt
fi
[ $(($# % 2)) -eq 0 ] || { echo "usage: sh tests/tokenizer_check.sh [DUMP [DIR CORPUS]...]"; exit 2; }
n=0
args=
while [ $# -gt 0 ]; do # DIR CORPUS -> DIR CORPUS DUMPFILE, as absolute paths for check.mjs
    n=$((n + 1))
    dir=$(cd "$1" && pwd)
    corpus=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    "$DUMP" "$dir" "$corpus" >"$out/$n.jsonl"
    args="$args '$dir' '$corpus' '$out/$n.jsonl'"
    shift 2
done
eval "set -- $args"
cd tools/tokenizer_check && node check.mjs "$@"
