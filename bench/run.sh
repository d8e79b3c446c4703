#!/bin/sh
# bench/run.sh - simile vs PyTorch on the same model and thread count, in one run.
# usage: sh bench/run.sh [threads] [steps] [zoo]   (make bench: all cores, 100 steps)
# With a third argument `zoo` (or ZOO=1 in the environment) bench/zoo.sh runs
# afterwards on the same thread count: ResNet-18 and MobileNetV2 at 64/112 px.
# Prints both JSON lines and the ratios simile / PyTorch. PyTorch is measured
# only when Debian's python3-torch is installed (/usr/bin/python3 -c 'import torch').
set -e
cd "$(dirname "$0")/.."
T=${1:-$(nproc)}
S=${2:-100}
B=${B:-build}
echo "simile vs PyTorch: mnist-net + ArcFace, batch 128, $T threads, $S timed steps"
sim=$("$B/bench/bench_simile" "$T" "$S")
echo "simile  $sim"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    ref=$(/usr/bin/python3 bench/torch_ref.py --mode bench --threads "$T" --bench-steps "$S" | tail -n 1)
    echo "pytorch $ref"
    /usr/bin/python3 - "$sim" "$ref" <<'PY'
import json, sys
s, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rows = [("training images/s", "train_images_per_s", "higher"),
        ("embedding images/s (batch 256)", "embed_images_per_s", "higher"),
        ("batch-1 latency ms", "latency_ms", "lower"),
        ("peak RSS MiB", "peak_rss_mib", "lower")]
print(f"{'':32} {'simile':>10} {'pytorch':>10} {'simile/pytorch':>15}")
for name, k, better in rows:
    print(f"{name:32} {s[k]:10.1f} {r[k]:10.1f} {s[k] / r[k]:14.2f}x  ({better} is better)")
PY
else
    echo "pytorch: not installed (apt-get install python3-torch) - no ratios"
fi
if [ "${3:-}" = zoo ] || [ "${ZOO:-0}" = 1 ]; then
    echo
    B="$B" sh bench/zoo.sh "$T"
fi
