#!/bin/sh
# test_export.sh - image files end to end: `simile export-images` writes
# Fashion-MNIST out as PNG folders, then train / eval / embed read them back
# (a plain folder per class, a train/ + test/ tree, a CSV manifest), and bad
# inputs end in one "simile ...:" error line with the right exit status.
#
#   SIMILE=build/simile sh tests/test_export.sh      (make test runs it with the
#   SIMILE=build/asan/simile sh tests/test_export.sh  plain and the ASan binary)
#
# 20 images per split and 2 training steps of a 8-d net: seconds, even under
# ASan. POSIX sh; closes with "N passed, N failed", exit 1 on any failure.

SIMILE=${SIMILE:-build/simile}
case $SIMILE in /*) ;; *) SIMILE=$PWD/$SIMILE ;; esac
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1: $2"; }
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
}

if [ ! -x "$SIMILE" ]; then
    bad "setup" "no executable '$SIMILE' (make build/simile, or set SIMILE)"
    finish
fi
if [ ! -r "$FMNIST/t10k-images-idx3-ubyte.gz" ]; then
    bad "setup" "no Fashion-MNIST in '$FMNIST' (apt-get install dataset-fashion-mnist)"
    finish
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/simile-export.XXXXXX") || { bad "setup" "mktemp -d failed"; finish; }
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM

# sim ARGS...: runs simile; stdout in $T/out, stderr in $T/err, status in $rc.
sim() { "$SIMILE" "$@" >"$T/out" 2>"$T/err"; rc=$?; }
first_err() { head -n 1 "$T/err"; }
crash() {
    if [ "$rc" -ge 128 ]; then why="exit $rc (killed by a signal); stderr: $(head -c 300 "$T/err")"; return 0; fi
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/err"; then
        why="sanitizer report: $(grep -m 1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/err")"
        return 0
    fi
    return 1
}
expect_ok() {
    if crash; then bad "$1" "$why"; return 1; fi
    if [ "$rc" != 0 ]; then bad "$1" "exit $rc: $(first_err)"; return 1; fi
    ok "$1"
}
# expect_err NAME CODES REGEX: failed with status CODES (case pattern), one
# "simile..." line on stderr matching REGEX (+ at most a "hint:" line).
expect_err() {
    if crash; then bad "$1" "$why"; return; fi
    case $rc in
        $2) ;;
        *) bad "$1" "exit $rc, expected $2 (stderr: $(first_err))"; return ;;
    esac
    l1=$(first_err)
    case $l1 in simile*) ;; *) bad "$1" "stderr does not start with 'simile': '$l1'"; return ;; esac
    if [ "$(grep -vc '^hint:' "$T/err")" != 1 ]; then bad "$1" "more than one error line: $(tr '\n' '|' <"$T/err")"; return; fi
    if ! printf '%s\n' "$l1" | grep -qiE -- "$3"; then bad "$1" "message '$l1' does not match /$3/"; return; fi
    ok "$1"
}
count_png() { find "$1" -name '*.png' | wc -l | tr -d ' '; }

TRAIN="--epochs 1 --max-steps 2 --batch 8 --dim 8 --threads 1 --quiet"

# ------------------------------------------------------- 1. one split, flat
sim export-images --data fashion-mnist:test --out "$T/flat" --limit 20
if expect_ok "export-images fashion-mnist:test --limit 20"; then
    n=$(count_png "$T/flat")
    if [ "$n" = 20 ] && [ -d "$T/flat/T-shirt_top" ] && [ "$(wc -l <"$T/flat/classes.txt")" = 10 ] &&
        grep -q "$(printf 'T-shirt_top\tT-shirt/top')" "$T/flat/classes.txt" && [ -f "$T/flat/Ankle boot/00.png" ]; then
        ok "20 PNG files in class folders, classes.txt with 10 classes"
    else
        bad "export layout" "$n PNG files; $(ls "$T/flat" | tr '\n' ' ')"
    fi
fi
sim train --data "$T/flat" $TRAIN --out "$T/m.safetensors"
expect_ok "train on the exported folder" && [ -s "$T/m.safetensors" ] && ok "checkpoint written"
sim eval --model "$T/m.safetensors" --data "$T/flat" --threads 1
if expect_ok "eval on the exported folder"; then
    if grep -q "test 20 images, train 20" "$T/out"; then ok "eval sees 20 + 20 images"
    else bad "eval counts" "$(head -n 1 "$T/out")"; fi
fi
sim embed --model "$T/m.safetensors" --data "$T/flat:test" --out "$T/e.npy" --threads 1
if expect_ok "embed the exported folder"; then
    grep -q "20 x 8" "$T/err" && ok "embed wrote 20 x 8" || bad "embed size" "$(cat "$T/err")"
fi

# ------------------------------------------------------- 2. both splits
sim export-images --data fashion-mnist --out "$T/split" --limit 20
if expect_ok "export-images fashion-mnist (both splits)"; then
    if [ "$(count_png "$T/split/train")" = 20 ] && [ "$(count_png "$T/split/test")" = 20 ]; then ok "train/ and test/ with 20 each"
    else bad "split layout" "$(count_png "$T/split/train") train, $(count_png "$T/split/test") test"; fi
fi
sim train --data "$T/split" $TRAIN --out "$T/m2.safetensors"
expect_ok "train on the split tree"
sim eval --model "$T/m2.safetensors" --data "$T/split" --json --threads 1
expect_ok "eval on the split tree" && grep -q '"n_test": 20, "n_train": 20' "$T/out" && ok "eval --json counts"
# a model trained on IDX data evaluates the exported files with the same labels
sim eval --model "$T/m2.safetensors" --data "$T/flat" --threads 1
expect_ok "eval of the split-tree model on the flat export"

# ------------------------------------------------------- 3. a CSV manifest
{
    echo "path,label"
    for f in "$T"/flat/*/*.png; do
        d=${f%/*}
        echo "flat/${d##*/}/${f##*/},${d##*/}"
    done
} >"$T/m.csv"
sim train --data "$T/m.csv" $TRAIN --out "$T/m3.safetensors"
expect_ok "train on a CSV manifest"
printf 'path,label\nflat/Bag/18.png,Bag\nflat/Bag/18.png\n' >"$T/bad.csv"
sim train --data "$T/bad.csv" $TRAIN --out "$T/m4.safetensors"
expect_err "CSV with a bad line" 1 "bad.csv' line 3"

# ------------------------------------------------------- 4. refusals
sim export-images --data fashion-mnist:test --out "$T/flat" --limit 5
expect_err "export into a non-empty directory" 1 "not empty"
sim export-images --data fashion-mnist:test
expect_err "export without --out" 2 "--out"
sim export-images --data fashion-mnist:test --out "$T/x" --limit 0
expect_err "export --limit 0" 2 "--limit"
sim export-images --data "$T/nonexistent:test" --out "$T/y"
expect_err "export from a missing dataset" 1 "nonexistent"
mkdir -p "$T/broken/a" "$T/broken/b"
cp "$T/flat/Bag/18.png" "$T/broken/a/1.png"
head -c 60 "$T/flat/Bag/18.png" >"$T/broken/b/cut.png"
sim train --data "$T/broken" $TRAIN --out "$T/m5.safetensors"
expect_err "train on a folder with a truncated PNG" 1 "broken/b/cut.png.*truncated"
printf 'hello\n' >"$T/broken/b/cut.png"
sim train --data "$T/broken" $TRAIN --out "$T/m5.safetensors"
expect_err "train on a folder with a text file named .png" 1 "cut.png.*not a PNG or JPEG"
mkdir "$T/loose"
cp "$T/flat/Bag/18.png" "$T/loose/"
sim train --data "$T/loose" $TRAIN --out "$T/m5.safetensors"
expect_err "train on images without class folders" 1 "no class folders"
finish
