#!/bin/sh
# bench/index.sh - simile's exact / int8 / HNSW search side by side with
# hnswlib on the same random clustered unit vectors, in one run.
#
#   sh bench/index.sh [N 100000] [threads: all cores] [extra bench_index options...]
#   e.g. sh bench/index.sh 1000000 2 --nq 200 --efc 100
#
# Builds build/bench/bench_index (make) and build/bench/bench_hnswlib
# (g++ -O3 -march=native against Debian's libhnswlib-dev header; the C++ file
# is a bench only, never part of libsimile). bench_index generates the data,
# measures simile and writes the vectors and ground truth to a temp dir;
# bench_hnswlib then measures hnswlib on the same files. Both use M 16 and the
# same efConstruction and ef values. Needs ~3x the base's bytes of memory.
set -e
cd "$(dirname "$0")/.."
N=${1:-100000}
T=${2:-$(nproc)}
[ $# -ge 1 ] && shift
[ $# -ge 1 ] && shift
B=${B:-build}
EFC=${EFC:-200}
EF=${EF:-16,24,32,64}
make -s "$B/bench/bench_index"
if [ ! -r /usr/include/hnswlib/hnswlib.h ]; then
    echo "bench/index.sh: hnswlib not installed (apt-get install libhnswlib-dev)" >&2
    exit 1
fi
if [ ! -x "$B/bench/bench_hnswlib" ] || [ bench/bench_hnswlib.cpp -nt "$B/bench/bench_hnswlib" ]; then
    g++ -O3 -march=native -std=c++17 -w bench/bench_hnswlib.cpp -o "$B/bench/bench_hnswlib" -pthread
fi
D=$(mktemp -d "${TMPDIR:-/tmp}/simile-bench-index.XXXXXX")
trap 'rm -rf "$D"' EXIT
"$B/bench/bench_index" --n "$N" --threads "$T" --efc "$EFC" --ef "$EF" --dir "$D" "$@"
"$B/bench/bench_hnswlib" "$D" 16 "$EFC" "$EF" "$T"
