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

. "$(dirname "$0")/lib.sh"
need_data t10k-images-idx3-ubyte.gz
make_tmp export
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
expect_ok "train on the split tree" && ok "train on the split tree"
sim eval --model "$T/m2.safetensors" --data "$T/split" --json --threads 1
expect_ok "eval on the split tree" && grep -q '"n_test": 20, "n_train": 20' "$T/out" && ok "eval --json counts"
# a model trained on IDX data evaluates the exported files with the same labels
sim eval --model "$T/m2.safetensors" --data "$T/flat" --threads 1
expect_ok "eval of the split-tree model on the flat export" && ok "eval of the split-tree model on the flat export"

# ------------------------------------------------------- 3. a CSV manifest
{
    echo "path,label"
    for f in "$T"/flat/*/*.png; do
        d=${f%/*}
        echo "flat/${d##*/}/${f##*/},${d##*/}"
    done
} >"$T/m.csv"
sim train --data "$T/m.csv" $TRAIN --out "$T/m3.safetensors"
expect_ok "train on a CSV manifest" && ok "train on a CSV manifest"
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
