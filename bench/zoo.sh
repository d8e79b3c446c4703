#!/bin/sh
# bench/zoo.sh - simile vs PyTorch on torchvision's ResNet-18 and MobileNetV2
# (the zoo's resnet18 / mobilenet-v2) at 64 and 112 px, 3 channels, embedding
# 512, same thread count on both sides (issue 13, point 8).
#
#   sh bench/zoo.sh [threads: nproc] [steps: 10] [seconds: 15]
#   MODELS="resnet18 resnet50" SIZES="224" REPS=1 sh bench/zoo.sh 2
#
# For each (model, size) and each side two processes, so that each peak RSS
# is one phase's: `train` (ArcFace over 1000 classes + SGD, batch 32) and
# `infer` (embedding at batch 64, then batch-1 latency; backbone only, eval
# mode). bench/bench_zoo.c and bench/torch_zoo.py say what each times; a
# timed loop runs `steps` steps or `seconds`, whichever ends first (at least
# 2 steps). Each measurement runs REPS times (default 3), the two sides
# interleaved, and the tables take each side's best run (highest rate,
# lowest latency and RSS): this machine's noise only ever slows a run down.
# With the defaults the whole bench takes about 8 minutes on 2 idle cores.
# Prints every raw JSON line, then a table per (model, size) with the
# ratios simile / PyTorch. PyTorch is
# measured only when Debian's python3-torch and python3-torchvision are
# installed.
set -e
cd "$(dirname "$0")/.."
T=${1:-$(nproc)}
S=${2:-10}
SEC=${3:-15}
B=${B:-build}
MODELS=${MODELS:-resnet18 mobilenet-v2}
SIZES=${SIZES:-64 112}
REPS=${REPS:-3}
PY=/usr/bin/python3
make -s "$B/bench/bench_zoo"
TORCH=1
$PY -c 'import torch, torchvision' 2>/dev/null || TORCH=0
J=$(mktemp "${TMPDIR:-/tmp}/simile-zoo.XXXXXX")
trap 'rm -f "$J"' EXIT
echo "simile vs PyTorch: zoo models, 3 channels, embedding 512, $T threads, up to $S timed steps / ${SEC} s per loop,"
echo "  $REPS runs of each side, interleaved; the tables show each side's best run"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)   (the bench itself brings it to about $T;"
echo "  more than that means other work on the cores, which skews every number)"
for m in $MODELS; do
    for s in $SIZES; do
        for ph in train infer; do
          r=0
          while [ $r -lt "$REPS" ]; do
            r=$((r + 1))
            echo "# $m $s $ph, run $r of $REPS: load average $(cut -d' ' -f1 /proc/loadavg)"
            if line=$("$B/bench/bench_zoo" "$m" "$s" "$ph" "$T" "$S" "$SEC"); then
                echo "simile  $line"
                echo "$line" >>"$J"
            else
                echo "simile  $m $s $ph: failed (see above)"
            fi
            [ $TORCH = 1 ] || continue
            if line=$($PY bench/torch_zoo.py --model "$m" --size "$s" --phase "$ph" --threads "$T" \
                      --steps "$S" --seconds "$SEC"); then
                echo "pytorch $line"
                echo "$line" >>"$J"
            else
                echo "pytorch $m $s $ph: failed (see above)"
            fi
          done
        done
    done
done
[ $TORCH = 1 ] || echo "pytorch: not installed (apt-get install python3-torch python3-torchvision) - no ratios"
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
# the tables (python3 for the JSON: Debian's if present, else the one on PATH)
[ -x $PY ] || PY=python3
$PY - "$J" <<'PY'
import json, sys
res = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    ph = res.setdefault((r["model"], r["size"]), {}).setdefault(r["side"], {})
    old = ph.setdefault(r["phase"], r)
    for k, v in r.items():   # the best of the runs: the one least disturbed by other work
        if k.endswith("_per_s"): old[k] = max(old[k], v)
        elif k in ("latency_ms", "peak_rss_mib"): old[k] = min(old[k], v)
rows = [("training images/s (batch 32)", "train", "train_images_per_s", "higher", 1),
        ("embedding images/s (batch 64)", "infer", "embed_images_per_s", "higher", 1),
        ("batch-1 latency ms", "infer", "latency_ms", "lower", 2),
        ("peak RSS MiB, training", "train", "peak_rss_mib", "lower", 1),
        ("peak RSS MiB, embedding", "infer", "peak_rss_mib", "lower", 1)]
for (model, size), sides in res.items():
    s, r = sides.get("simile", {}), sides.get("pytorch")
    threads = next(iter((s or r).values()))["threads"]
    print(f"\n{model} {size}x{size}, {threads} threads")
    print(f"{'':32} {'simile':>10} {'pytorch':>10} {'simile/pytorch':>15}")
    for name, ph, k, better, p in rows:
        a = s.get(ph, {}).get(k)
        b = r.get(ph, {}).get(k) if r else None
        fa = f"{a:10.{p}f}" if a is not None else f"{'-':>10}"
        fb = f"{b:10.{p}f}" if b is not None else f"{'-':>10}"
        ratio = f"{a / b:14.2f}x  ({better} is better)" if a and b else ""
        print(f"{name:32} {fa} {fb} {ratio}")
PY
