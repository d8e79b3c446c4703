#!/bin/sh
# Runs test programs (plain ones, then after "--" the sanitizer builds; each
# argument is a command line, e.g. "SIMILE=build/asan/simile tests/test_cli.sh"), sums
# their "N passed, N failed" lines and closes with the total. Exit 1 on any failure.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
passed=0; failed=0; broken=""
for t in "$@"; do
    case "$t" in --label=*) echo "== ${t#--label=}"; continue ;; esac
    [ "$t" = "--" ] && { echo "== the same tests under AddressSanitizer + UBSan"; continue; }
    out=$(sh -c "$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 30
        echo "BROKEN $t (exit $rc, no summary line)"; broken="$broken $t"; failed=$((failed + 1)); continue
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" != 0 ] || [ "$f" != 0 ]; then
        printf '%s\n' "$out" | grep -vE '^ok ' | tail -n 40
        echo "FAILED $t: $line (exit $rc)"
        [ "$f" = 0 ] && failed=$((failed + 1))
    else
        echo "ok     $t: $line"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
