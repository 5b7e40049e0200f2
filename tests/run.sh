#!/bin/sh
# Runs each test binary given, shows its output, and sums the "N passed, N failed"
# lines into one. A binary that crashes or prints no summary counts as a failure.
# $RUNNER (may be empty) prefixes each run, e.g. an emulator for a cross build.
passed=0; failed=0
for t in "$@"; do
    out=$($RUNNER "$t" 2>&1); rc=$?
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
