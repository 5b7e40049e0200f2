#!/bin/sh
# Runs each test binary given, shows its output, and sums the "N passed, N failed"
# lines into one. A binary that crashes or prints no summary counts as a failure.
# $RUNNER (may be empty) prefixes each run, e.g. an emulator for a cross build.
# $D1_TEST_JOBS (default 1) runs that many binaries at once (for the slow suites:
# an emulator or a sanitizer runs each test on one core); the outputs still come
# in the order given.
passed=0; failed=0
out_dir=$(mktemp -d) || exit 1
trap 'rm -rf "$out_dir"' EXIT
export RUNNER out_dir
i=0
for t in "$@"; do i=$((i + 1)); printf '%s %s\n' "$i" "$t"; done |
    xargs -P "${D1_TEST_JOBS:-1}" -n 2 sh -c '$RUNNER "$2" >"$out_dir/$1.out" 2>&1; echo $? >"$out_dir/$1.rc"' sh
i=0
for t in "$@"; do
    i=$((i + 1))
    out=$(cat "$out_dir/$i.out" 2>/dev/null); rc=$(cat "$out_dir/$i.rc" 2>/dev/null || echo 127)
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -n "$line" ]; then
        p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
        passed=$((passed + p)); failed=$((failed + f))
        [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
    else
        echo "FAIL $t: exited with status $rc and no summary"; failed=$((failed + 1))
    fi
done
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
