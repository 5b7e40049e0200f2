#!/bin/sh
# The command-line tool (tools/d1.c) as a user meets it: the command list, each
# option with its default, and usage errors that give the numbers.
#   sh tests/cli_check.sh [D1]    from the repository root; D1 defaults to ./build/d1
# One line "ok   NAME" or "FAIL NAME" per check, then "N passed, N failed"
# (the line tests/run.sh sums); exits nonzero on any failure.
D1=${1:-./build/d1}
CKPT=tests/data/ckpt_torch_f32
SRC=tools/d1.c
out=${TMPDIR:-/tmp}/d1_cli_check.$$
trap 'rm -f "$out" "$out.opts" "$out.help" "$out.gguf"' EXIT
passed=0; failed=0

# check NAME COMMAND...: one test, passing when COMMAND succeeds
check() {
    name=$1; shift
    if "$@"; then echo "ok   $name"; passed=$((passed + 1))
    else echo "FAIL $name"; sed 's/^/  | /' "$out"; failed=$((failed + 1)); fi
}
# d1 ARGS...: runs the tool, stdout and stderr into $out, its status into $rc
d1() { "$D1" "$@" >"$out" 2>&1; rc=$?; }
# says TEXT...: the last run's output holds every TEXT
says() { for s in "$@"; do grep -qF -e "$s" "$out" || return 1; done; }
# config KEY: a number of the fixture's config.json
config() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" "$CKPT/config.json"; }
MAX=$(config max_sequence_length); VOCAB=$(config vocab_size); MASK=$(config mask_token_id)

# d1 help, d1 --help and d1 -h: exit 0, one line per command of the source's table
help_lists_commands() {
    cmds=$(sed -n '/^static const d1_command commands\[\]/,/^};/p' "$SRC" | sed -n 's/^ *{"\([a-z-]*\)".*/\1/p')
    [ -n "$cmds" ] || cmds="info sample help"
    for h in help --help -h; do
        d1 "$h"; [ "$rc" -eq 0 ] || return 1
        for c in $cmds; do grep -qE "^  $c +[a-z]" "$out" || return 1; done
    done
}

# d1 sample --help: exit 0, on stdout, each option with "(default: ...)"
sample_help_gives_defaults() {
    "$D1" sample --help >"$out" 2>/dev/null || return 1
    for o in --prompt --gen-len --block-len --steps --temperature; do
        grep -qE -e "^  $o .*\(default: [^)]+\)$" "$out" || return 1
    done
    ! grep -E '^  -' "$out" | grep -qv '(default: '
}

# every option string of the parser's source is in a command's help (--help aside)
help_covers_the_source() {
    { "$D1" sample --help && "$D1" export-gguf --help; } >"$out" 2>&1 || return 1
    for o in $(grep -oE '"--[a-z][a-z-]*"' "$SRC" | tr -d '"' | sort -u); do
        [ "$o" = --help ] || grep -qE -e "^  $o " "$out" || { echo "not in the help: $o" >>"$out"; return 1; }
    done
}

# every option the help names is accepted by the parser (with a value where it takes one)
help_options_parse() {
    opts=$out.opts
    "$D1" sample --help 2>/dev/null | awk '/^  --/ { print $1, ($2 ~ /^[A-Z]+$/ ? "x" : "") }' >"$opts"
    [ -s "$opts" ] || return 1
    while read -r o v; do
        d1 sample "$o" ${v:+"$v"} --help; [ "$rc" -eq 0 ] || return 1
    done <"$opts"
}

# d1 help sample is d1 sample --help; d1 info --help exits 0
help_cmd() {
    "$D1" sample --help >"$out.help" 2>&1; d1 help sample
    [ "$rc" -eq 0 ] && cmp -s "$out" "$out.help" || return 1
    d1 info --help; [ "$rc" -eq 0 ] && says "usage: d1 info"
}

# prompt + gen-len past max_seq_len: the sum and the limit
shape_error_numbers() {
    d1 sample "$CKPT" --prompt 1,2,3 --ids --gen-len 100000
    [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ] || return 1
    says 100003 "max_seq_len" && grep -qw "$MAX" "$out"
}

unknown_option_named() {
    d1 sample "$CKPT" --prompt 1,2,3 --no-such-option
    [ "$rc" -eq 2 ] && says "--no-such-option" "d1 sample --help"
}

bad_token_id_named() {
    bad=$((VOCAB + 5))
    d1 sample "$CKPT" --prompt "1,$bad,2" --ids --gen-len 4
    [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ] || return 1
    says "$bad" "vocab_size" && grep -qw "$VOCAB" "$out"
}

mask_in_prompt_named() {
    d1 sample "$CKPT" --prompt "1,$MASK" --ids --gen-len 4
    [ "$rc" -eq 2 ] && says "$MASK" "mask_id"
}

schedule_errors_named() {
    d1 sample "$CKPT" --prompt 1,2,3 --gen-len 8 --block-len 3
    [ "$rc" -eq 2 ] && says "--block-len 3" "--gen-len 8" || return 1
    d1 sample "$CKPT" --prompt 1,2,3 --gen-len 8 --block-len 4 --steps 3
    [ "$rc" -eq 2 ] && says "--steps 3" "2 blocks"
}

sample_still_samples() {
    "$D1" sample "$CKPT" --prompt 1,2,3 --ids --gen-len 8 --steps 4 >"$out" 2>&1 &&
        grep -qE '^1,2,3(,[0-9]+){8}$' "$out"
}

# with DIR's tokenizer.json the prompt is text and so is the output
TCKPT=examples/checkpoints/sudoku/sft
text_in_text_out() {
    "$D1" sample "$TCKPT" --prompt 0030100020040300 --gen-len 8 --steps 8 >"$out" 2>&1 &&
        grep -qE '^0030100020040300<reasoning>[0-9]' "$out"
}

# a prompt with a character the tokenizer lacks: usage error naming it
text_without_token_named() {
    d1 sample "$TCKPT" --prompt "0030 1000" --gen-len 8
    [ "$rc" -eq 2 ] && says "the prompt" 'no token for " "'
}

# d1 info names the tokenizer beside the checkpoint, and says when there is none
info_names_the_tokenizer() {
    d1 info "$TCKPT"
    [ "$rc" -eq 0 ] && says "tokenizer.json WordLevel, 26 ids (6 special" "mask <mask>" || return 1
    d1 info "$CKPT"
    [ "$rc" -eq 0 ] && says "tokenizer.json none"
}

if [ ! -x "$D1" ]; then
    echo "FAIL $D1 is not built (make build/d1)"; echo "0 passed, 1 failed"; exit 1
fi
# export-gguf --type: f32 or bf16, else a usage error (2) naming both
export_type_named() {
    d1 export-gguf "$CKPT" "$out.gguf" --type f16
    [ "$rc" -eq 2 ] && says "--type 'f16'" "f32 bf16" && [ ! -e "$out.gguf" ]
}

check help_lists_commands help_lists_commands
check sample_help_gives_defaults sample_help_gives_defaults
check help_covers_the_source help_covers_the_source
check help_options_parse help_options_parse
check help_cmd help_cmd
check shape_error_numbers shape_error_numbers
check unknown_option_named unknown_option_named
check bad_token_id_named bad_token_id_named
check mask_in_prompt_named mask_in_prompt_named
check schedule_errors_named schedule_errors_named
check sample_still_samples sample_still_samples
check text_in_text_out text_in_text_out
check text_without_token_named text_without_token_named
check info_names_the_tokenizer info_names_the_tokenizer
check export_type_named export_type_named
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
