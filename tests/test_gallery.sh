#!/bin/sh
# test_gallery.sh - end-to-end tests of the gallery verbs: enroll, items,
# search, remove, calibrate, on PNG files exported from Fashion-MNIST.
#
#   SIMILE=build/simile sh tests/test_gallery.sh        (make test runs it with the
#   SIMILE=build/asan/simile sh tests/test_gallery.sh    plain and the ASan binary)
#
# A tiny model (a few training steps) embeds 600 exported test images. Checks:
# enroll -> items -> search (each enrolled image finds itself first) ->
# remove; enrolling twice is idempotent; JSON outputs; the stored threshold
# and "unknown"; the HNSW file built, reused, and rebuilt when stale; every
# refusal (corrupt or truncated image, a file that is not a gallery, a gallery
# of another model or dimension, a damaged gallery, k <= 0, an unknown id) is
# one "simile ...:" line with exit 1 or 2 and leaves the gallery byte for
# byte as it was; and kill -9 during an enroll of 500 images committed 50 at a
# time: afterwards the gallery opens, holds exactly the first 50*j images,
# passes SQLite's integrity check and searches correctly. POSIX sh (dash);
# closes with "N passed, N failed" and exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
need_data t10k-images-idx3-ubyte.gz
make_tmp gallery
sum() { if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo missing; fi; }
# untouched NAME FILE BEFORE: the file's checksum is still BEFORE
untouched() {
    if [ "$(sum "$2")" = "$3" ]; then ok "$1 (gallery unchanged)"; else bad "$1" "the gallery file changed"; fi
}
count() { "$SIMILE" items --gallery "$1" --json 2>/dev/null | sed -n 's/.*"count":\([0-9]*\).*/\1/p'; }
json_ok() { if command -v python3 >/dev/null 2>&1; then python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1"; else true; fi; }

# ------------------------------------------------------------------ 1. data and models
I=$T/img
sim export-images --data "$FMNIST:test" --out "$I" --limit 600 --threads 1
expect_ok "export 600 test images" || finish
ls "$I"/*/*.png >"$T/all" 2>/dev/null
n=$(wc -l <"$T/all")
[ "$n" = 600 ] && ok "600 PNG files" || { bad "export" "got $n files"; finish; }
TRAIN="--data $I --epochs 1 --max-steps 3 --batch 16 --threads 1 --quiet"
M=$T/m.safetensors
# models B (another seed) and C (12-d) train in the background meanwhile
"$SIMILE" train $TRAIN --dim 16 --seed 7 --out "$T/m2.safetensors" >"$T/b.out" 2>&1 &
pb=$!
"$SIMILE" train $TRAIN --dim 12 --out "$T/m12.safetensors" >"$T/c.out" 2>&1 &
pc=$!
sim train $TRAIN --dim 16 --out "$M"
expect_ok "train model A" || finish
wait $pb && wait $pc && [ -s "$T/m2.safetensors" ] && [ -s "$T/m12.safetensors" ] &&
    ! grep -qE 'AddressSanitizer|runtime error:' "$T/b.out" "$T/c.out" && ok "train models B (other seed) and C (12-d)" ||
    { bad "train models B and C" "$(head -c 300 "$T/b.out" "$T/c.out")"; finish; }
BAGS=$(grep '/Bag/' "$T/all" | head -n 5 | tr '\n' ' ')
COATS=$(grep '/Coat/' "$T/all" | head -n 5 | tr '\n' ' ')
set -- $BAGS
BAG1=$1
BAG5=$5
G=$T/g.db

# ------------------------------------------------------------------ 2. enroll, items, search, remove
sim enroll --gallery "$G" --model "$M" $BAGS --label bag --threads 1
if expect_ok "enroll 5 bags"; then
    if [ "$(wc -l <"$T/out")" = 5 ] && grep -q "^1	bag	$BAG1" "$T/out" && grep -q '5 new, 0 already' "$T/err"; then
        ok "enroll 5 bags: ids 1..5, one line each"
    else bad "enroll 5 bags" "$(head -c 300 "$T/out") / $(head -c 200 "$T/err")"; fi
fi
sim enroll --gallery "$G" --model "$M" $COATS --label coat --json --threads 1
if expect_ok "enroll 5 coats --json"; then
    if json_ok "$T/out" && grep -q '"added":5' "$T/out" && grep -q '"count":10' "$T/out"; then ok "enroll --json"
    else bad "enroll --json" "$(head -c 300 "$T/out")"; fi
fi
sim enroll --gallery "$G" --model "$M" $BAGS --label bag --threads 1
if expect_ok "enroll the same bags again"; then
    if grep -q '0 new, 5 already' "$T/err" && grep -q "^1	bag	$BAG1" "$T/out" && [ "$(count "$G")" = 10 ]; then
        ok "enrolling the same images twice is idempotent (same ids, 10 items)"
    else bad "idempotent enroll" "$(head -c 300 "$T/err")"; fi
fi
sim items --gallery "$G"
if expect_ok "items"; then
    if [ "$(grep -vc '^#' "$T/out")" = 10 ] && grep -q '^# gallery .*10 items, 16-d float32' "$T/out"; then ok "items: 10 rows"
    else bad "items" "$(head -c 300 "$T/out")"; fi
fi
sim items --gallery "$G" --json --after 3 --limit 4
if expect_ok "items --json page"; then
    ids=$(grep -o '"id":[0-9]*' "$T/out" | tr -d '"id:' | tr '\n' ' ')
    if json_ok "$T/out" && [ "$ids" = "4 5 6 7 " ]; then ok "items --json --after 3 --limit 4: ids 4..7"
    else bad "items --json page" "ids '$ids'"; fi
fi
sim search --gallery "$G" --model "$M" $BAGS $COATS -k 3 --threads 1
if expect_ok "search 10 enrolled images"; then
    good=0
    i=1
    for f in $BAGS $COATS; do
        grep -q "^$f: [a-z]* (item $i, similarity 1.0000)" "$T/out" && good=$((good + 1))
        i=$((i + 1))
    done
    if [ "$good" = 10 ]; then ok "each enrolled image finds itself first, similarity 1.0000"
    else bad "search finds itself" "$good of 10: $(head -c 400 "$T/out")"; fi
fi
sim search --gallery "$G" --model "$M" "$BAG1" -k 20 --json --threshold none
if expect_ok "search --json"; then
    nres=$(grep -o '"rank":' "$T/out" | wc -l)
    if json_ok "$T/out" && [ "$nres" = 10 ] && grep -q '"answer":"bag"' "$T/out" && grep -q '"threshold":null' "$T/out"; then
        ok "search --json: k 20 on 10 items gives 10 results"
    else bad "search --json" "$nres results: $(head -c 300 "$T/out")"; fi
fi
sim search --gallery "$G" --model "$M" "$BAG1" -k 2 --threshold 2
if expect_ok "search --threshold 2"; then
    grep -q "^$BAG1: unknown (best: bag, item 1" "$T/out" && ok "above every similarity: unknown" ||
        bad "threshold" "$(head -c 300 "$T/out")"
fi
# the service's thumbnail of item 1 (G.images/<content hash>.png) goes with it
h1=$("$SIMILE" items --gallery "$G" --json 2>/dev/null | python3 -c 'import json,sys; print([i["content_sha256"] for i in json.load(sys.stdin)["items"] if i["id"] == 1][0])' 2>/dev/null)
mkdir -p "$G.images" && [ -n "$h1" ] && : >"$G.images/$h1.png" && : >"$G.images/keep.png"
sim remove --gallery "$G" 1 3
if expect_ok "remove 1 3"; then
    [ -n "$h1" ] && [ ! -e "$G.images/$h1.png" ] && [ -e "$G.images/keep.png" ] &&
        ok "remove: item 1's thumbnail removed, other files kept" || bad "remove: thumbnail" "hash '$h1'; $(ls "$G.images" | head -n 3 | tr '\n' ' ')"
    rm -rf "$G.images"
    sim search --gallery "$G" --model "$M" "$BAG1" -k 10 --json --threshold none
    if [ "$(count "$G")" = 8 ] && ! grep -qE '"id":(1|3),' "$T/out"; then ok "remove: 8 items left, 1 and 3 not found"
    else bad "remove" "$(head -c 300 "$T/out")"; fi
fi

# ------------------------------------------------------------------ 3. HNSW file: built, reused, stale
sim search --gallery "$G" --model "$M" "$BAG5" --index hnsw -k 1
if expect_ok "search --index hnsw"; then
    if grep -q 'HNSW index built over 8 items.*no index file yet.*saved' "$T/err" && [ -s "$G.hnsw" ] &&
        grep -q "^$BAG5: bag (item 5, similarity 1.0000)" "$T/out"; then ok "HNSW: built and saved on first use"
    else bad "HNSW first use" "$(head -c 300 "$T/err")"; fi
fi
sim search --gallery "$G" --model "$M" "$BAG5" --index hnsw -k 1
expect_ok "search --index hnsw again" && { [ -s "$T/err" ] && bad "HNSW reuse" "$(first_err)" || ok "HNSW: the saved index is reused"; }
sim enroll --gallery "$G" --model "$M" "$BAG1" --label bag
sim search --gallery "$G" --model "$M" "$BAG1" --index hnsw -k 1
if expect_ok "search --index hnsw after enroll"; then
    if grep -q 'stale: built at generation 3, the gallery is at 4' "$T/err" && grep -q "^$BAG1: bag (item 11," "$T/out"; then
        ok "HNSW: stale after an enroll, rebuilt, finds the new item"
    else bad "HNSW stale" "$(head -c 300 "$T/err") / $(head -c 200 "$T/out")"; fi
fi

# ------------------------------------------------------------------ 4. calibrate, unknown
sim calibrate --gallery "$G" --model "$M" --data "$I:test" --classes 0-5 --far 0.05 --threads 1
if expect_ok "calibrate"; then
    if grep -qE '^threshold -?[0-9.]+: FAR 0\.0[0-5][0-9]* \(target 0\.0500\), TAR [0-9.]+ on' "$T/out"; then ok "calibrate: FAR <= target"
    else bad "calibrate" "$(head -c 300 "$T/out")"; fi
fi
t=$(sed -n 's/^threshold \(-*[0-9.]*\):.*/\1/p' "$T/out")
sim items --gallery "$G"
grep -q "threshold $(printf '%.4f' "$t")" "$T/out" && ok "items shows the stored threshold" || bad "threshold stored" "$(head -n 1 "$T/out")"
sim search --gallery "$G" --model "$M" "$BAG5" --json
if expect_ok "search uses the stored threshold"; then
    grep -q "\"threshold\":$(printf '%s' "$t" | cut -c1-6)" "$T/out" && ok "search: default threshold = calibrated" ||
        bad "stored threshold" "$(head -c 300 "$T/out")"
fi

# ------------------------------------------------------------------ 5. refusals leave the gallery untouched
before=$(sum "$G")
head -c 300 "$BAG5" >"$T/trunc.png"
sim enroll --gallery "$G" --model "$M" $COATS "$T/trunc.png" --label coat
expect_err "truncated PNG" 1 "trunc\.png" && untouched "truncated PNG" "$G" "$before"
printf 'not an image at all\n' >"$T/text.png"
sim enroll --gallery "$G" --model "$M" "$T/text.png" --label x
expect_err "text file as image" 1 "not a PNG or JPEG" && untouched "text file as image" "$G" "$before"
sim enroll --gallery "$G" --model "$M" "$BAG1" --label coat
expect_err "same image, other label" 1 "already enrolled as item 11 with label 'bag'" && untouched "same image, other label" "$G" "$before"
sim enroll --gallery "$G" --model "$T/m2.safetensors" "$BAG1" --label bag
expect_err "other model" 1 "was built with model [0-9a-f]{12} \(m\.safetensors, 16-d\); this is model [0-9a-f]{12} \(m2\.safetensors, 16-d\)" &&
    untouched "other model" "$G" "$before"
sim search --gallery "$G" --model "$T/m12.safetensors" "$BAG1"
expect_err "other dimension" 1 "16-d.*12-d" && untouched "other dimension" "$G" "$before"
sim search --gallery "$G" --model "$M" "$BAG1" -k 0
expect_err "k = 0" 2 "-k must be in 1\.\." && untouched "k = 0" "$G" "$before"
sim search --gallery "$G" --model "$M" "$BAG1" -k -2
expect_err "k < 0" 2 "-k must be" && untouched "k < 0" "$G" "$before"
sim remove --gallery "$G" 2 999
expect_err "remove unknown id" 1 "no item 999.*nothing was removed" && untouched "remove unknown id" "$G" "$before"
sim remove --gallery "$G" two
expect_err "remove non-number" 2 "not an item id" && untouched "remove non-number" "$G" "$before"
printf 'just text, no database here\n' >"$T/text.db"
tb=$(sum "$T/text.db")
sim enroll --gallery "$T/text.db" --model "$M" "$BAG1" --label bag
expect_err "gallery that is not a gallery" 1 "not a simile gallery" && untouched "gallery that is not a gallery" "$T/text.db" "$tb"
sim items --gallery "$T/nope.db"
expect_err "missing gallery" 1 "no such file" && { [ -e "$T/nope.db" ] && bad "missing gallery" "file created" || ok "missing gallery: not created"; }
cp "$G" "$T/bad.db"
sz=$(wc -c <"$T/bad.db")
dd if=/dev/urandom of="$T/bad.db" bs=1 seek=4096 count=$((sz - 4096)) conv=notrunc 2>/dev/null
bb=$(sum "$T/bad.db")
sim search --gallery "$T/bad.db" --model "$M" "$BAG1"
expect_err "damaged gallery" 1 "damaged|not a simile gallery" && untouched "damaged gallery" "$T/bad.db" "$bb"
sim enroll --gallery "$G" --model "$M" "$BAG1"
expect_err "enroll without a label" 2 "--label" && untouched "enroll without a label" "$G" "$before"

# ------------------------------------------------------------------ 6. kill -9 during an enroll
# 500 images committed 50 per transaction, killed at a random moment; three
# times. Afterwards: a multiple of 50 items, exactly the first ones in order,
# integrity_check ok, and the last committed image searches to itself.
head -n 500 "$T/all" >"$T/500"
NL='
'
OIFS=$IFS
IFS=$NL   # file names hold spaces ("Ankle boot/"): split $(cat ...) on newlines only
trial=1
while [ $trial -le 3 ]; do
    K=$T/kill$trial.db
    rm -f "$K" "$K-wal" "$K-shm"
    # a first transaction always commits, so the gallery exists; its time
    # (x 10) sizes the window in which the kill lands
    t0=$(date +%s%N)
    "$SIMILE" enroll --gallery "$K" --model "$M" $(head -n 50 "$T/500") --label-from-dir --threads 1 >/dev/null 2>&1
    t50=$((($(date +%s%N) - t0) / 1000000))
    win=$((t50 * 4))
    [ "$win" -gt 5 ] || win=5
    "$SIMILE" enroll --gallery "$K" --model "$M" $(cat "$T/500") --label-from-dir --commit-every 50 --threads 1 \
        >/dev/null 2>"$T/kill.err" &
    pid=$!
    ms=$(($(od -An -N2 -tu2 /dev/urandom | tr -d "$OIFS") % win + t50 / 2))
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    sim items --gallery "$K"
    if ! expect_ok "kill -9 trial $trial: the gallery opens"; then trial=$((trial + 1)); continue; fi
    grep -v '^#' "$T/out" | cut -f3 >"$T/have"
    c=$(wc -l <"$T/have")
    head -n "$c" "$T/500" | while read -r f; do realpath "$f"; done >"$T/want"
    if [ $((c % 50)) = 0 ] && [ "$c" -ge 50 ] && cmp -s "$T/have" "$T/want"; then
        ok "kill -9 trial $trial (after ${ms} ms): $c items = exactly the first $((c / 50)) committed batches"
    else
        bad "kill -9 trial $trial" "$c items; first differing: $(diff "$T/have" "$T/want" | head -n 3 | tr '\n' '|')"
    fi
    if command -v sqlite3 >/dev/null 2>&1; then
        ic=$(sqlite3 "$K" 'PRAGMA integrity_check' 2>&1)
        [ "$ic" = ok ] && ok "kill -9 trial $trial: integrity_check ok" || bad "kill -9 trial $trial: integrity" "$ic"
    fi
    last=$(sed -n "${c}p" "$T/500")
    sim search --gallery "$K" --model "$M" "$last" -k 1 --threshold none
    if expect_ok "kill -9 trial $trial: search"; then
        grep -qF "$last: $(basename "$(dirname "$last")") (item $c, similarity 1.0000)" "$T/out" && ok "kill -9 trial $trial: the last committed image finds itself (item $c)" ||
            bad "kill -9 trial $trial: search" "$(head -n 1 "$T/out")"
    fi
    trial=$((trial + 1))
done
# finishing the interrupted enroll: the committed images are no-ops
sim enroll --gallery "$T/kill1.db" --model "$M" $(cat "$T/500") --label-from-dir --threads 1
IFS=$OIFS
if expect_ok "re-run the interrupted enroll"; then
    [ "$(count "$T/kill1.db")" = 500 ] && ok "re-run: 500 items, committed ones not duplicated" || bad "re-run" "$(count "$T/kill1.db") items"
fi

finish
