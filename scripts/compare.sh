#!/bin/sh
# make compare: every head and pair loss on Fashion-MNIST, same epochs and seed,
# then the same on classes held out of training (train on 0-5, retrieval on 6-9).
# Writes its section of docs/results.md (between the compare:begin/end markers;
# other sections of the file are kept) and keeps the runs in runs/compare/.
# usage: sh scripts/compare.sh [epochs] [threads]      (defaults: 5, all cores)
# SIMILE=path/to/simile picks the binary (default ./build/simile).
# Models already trained in runs/compare (all epochs in their log) are reused,
# and so are their evaluations (runs/compare/LOSS.safetensors.eval.json).
set -e
cd "$(dirname "$0")/.."
EPOCHS=${1:-5}
T=${2:-0}
SPEED_STEPS=${SPEED_STEPS:-150}
S=${SIMILE:-./build/simile}   # SIMILE=path: another binary (e.g. a copy, while build/ is rebuilt)
OUT=runs/compare
mkdir -p "$OUT"
LOSSES="arcface softmax normface cosface combined sphereface sphereface-asoftmax adacos adacos-fixed subcenter-arcface l2-softmax contrastive triplet:all triplet:hard triplet:semihard multi-similarity"

flags() {   # the CLI flags of one loss name (triplet:MINER -> --loss triplet --miner MINER)
    case "$1" in
        triplet:*) echo "--loss triplet --miner ${1#triplet:} $PK" ;;
        contrastive|multi-similarity) echo "--loss $1 $PK" ;;
        *) echo "--head $1" ;;
    esac
}

row() {   # name json [ips] -> a markdown row; with ips also the head accuracy and the speed
    /usr/bin/env python3 - "$@" <<'PY'
import json, sys
name, js, ips = sys.argv[1], sys.argv[2], sys.argv[3:]
m = json.loads(js)
h = "-" if m["head_accuracy"] is None else f'{m["head_accuracy"]:.4f}'
print(f'| {name} | {m["precision_at_1"]:.4f} | {m["mean_average_precision_at_r"]:.4f} | '
      f'{m["knn_accuracy"]:.4f} |' + "".join(f" {v} |" for v in ([h] + ips if ips else [])))
PY
}

speed() {   # loss name -> training images/s: a short run of SPEED_STEPS steps at T threads, kept in runs/compare/NAME.speed
    sp="$OUT/$2.speed"
    if [ ! -s "$sp" ]; then
        # shellcheck disable=SC2046
        $S train --data fashion-mnist $(flags "$1") --epochs 1 --max-steps "$SPEED_STEPS" --threads "$T" \
            --seed 1 --out "$OUT/speed.safetensors" --log "$OUT/speed.log.jsonl" --quiet >&2
        sed 's/.*"images_per_s": \([0-9.]*\).*/\1/' "$OUT/speed.log.jsonl" >"$sp"
        rm -f "$OUT/speed.safetensors" "$OUT/speed.log.jsonl"
    fi
    cat "$sp"
}

run_set() {   # label train-classes eval-classes [speed]
    if [ -n "$4" ]; then
        echo "| loss | precision@1 | MAP@R | 1-NN acc | head acc | train img/s |"
        echo "|---|---|---|---|---|---|"
    else   # held-out classes: the head knows none of them, so no head accuracy
        echo "| loss | precision@1 | MAP@R | 1-NN acc |"
        echo "|---|---|---|---|"
    fi
    for l in $LOSSES; do
        name=$(echo "$l" | tr ':' '-')
        m="$OUT/$name$1.safetensors"
        # a model whose log holds all its epochs is kept (rerunning resumes a
        # comparison; delete runs/compare to start over)
        if [ ! -s "$m" ] || [ "$(wc -l <"$m.log.jsonl" 2>/dev/null || echo 0)" -lt "$EPOCHS" ]; then
            # shellcheck disable=SC2046
            $S train --data fashion-mnist $(flags "$l") --epochs "$EPOCHS" --threads "$T" --seed 1 $2 \
                --out "$m" --quiet >&2
        fi
        # the evaluation is kept beside the model (reused while newer than it)
        if [ -s "$m.eval.json" ] && [ "$m.eval.json" -nt "$m" ]; then
            js=$(cat "$m.eval.json")
        else
            js=$($S eval --model "$m" --data fashion-mnist --json --threads "$T" $3)
            printf '%s\n' "$js" >"$m.eval.json"
        fi
        if [ -n "$4" ]; then row "$l" "$js" "$(speed "$l" "$name")"; else row "$l" "$js"; fi
    done
}

{
    echo "<!-- compare:begin (scripts/compare.sh rewrites this section) -->"
    echo "## Every loss, compared"
    echo
    echo "Produced by \`sh scripts/compare.sh $EPOCHS${2:+ $2}\` (\`make compare\`) on $(nproc) cores, $(date -u +%Y-%m-%d)."
    echo "mnist-net (512-d), SGD lr 0.03 Nesterov momentum 0.9 wd 2e-3, batch 128 (pair losses: P x K = 8 x 16),"
    echo "cosine schedule, seed 1, $EPOCHS epochs, every loss with its defaults (\`simile train --help\`)."
    echo "train img/s: training throughput of each loss at $([ "$T" = 0 ] && nproc || echo "$T") threads, measured by a separate short run"
    echo "($SPEED_STEPS steps, runs/compare/LOSS.speed) so that every row is timed alike, one after the other."
    echo "Models and evaluations already in runs/compare are reused (delete the directory to start over). ${NOTE:-}"
    echo
    echo "### All ten classes (train split -> test split)"
    echo
    run_set "" "" "" speed
    echo
    echo "### Unseen classes: train on classes 0-5, retrieval on classes 6-9 of the test split"
    echo
    echo "1-NN accuracy is test -> train within classes 6-9 (images the model never saw); no head"
    echo "accuracy (the head knows classes 0-5 only). Pair losses sample P x K = 6 x 21 here"
    echo "(P cannot exceed the 6 training classes; 126 images a batch, about the 128 of the other runs)."
    echo
    PK="--pk 6x21"   # pair losses: P x K needs P <= the 6 training classes
    run_set "-heldout" "--classes 0-5" "--classes 6-9"
    PK=""
    echo "<!-- compare:end -->"
} > "$OUT/section.md"
/usr/bin/env python3 - "$OUT/section.md" docs/results.md <<'PY'
import os, re, sys
sec = open(sys.argv[1]).read().rstrip("\n") + "\n"
path = sys.argv[2]
old = open(path).read() if os.path.exists(path) else "# Results\n"
pat = re.compile(r"<!-- compare:begin.*?<!-- compare:end -->\n?", re.S)
new = pat.sub(lambda m: sec, old) if pat.search(old) else old.rstrip("\n") + "\n\n" + sec
open(path + ".tmp", "w").write(new)
os.replace(path + ".tmp", path)
PY
cat "$OUT/section.md"
