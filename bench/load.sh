#!/bin/sh
# load.sh - 'simile serve' under load: wrk against POST /v1/search on a
# 10 000-item gallery (all of Fashion-MNIST's test split, enrolled by the
# CLI) for 30 s with 32 connections. Reports throughput, p50/p99 latency,
# failed requests (non-2xx and socket errors) and the server's RSS before and
# after. Not part of 'make test'. Needs wrk (apt-get install wrk, or
# SIMILE_E2E=1 sh scripts/deps.sh).
#
#   sh bench/load.sh [SECONDS] [CONNECTIONS]      (SIMILE=build/simile by default)
set -e
SIMILE=${SIMILE:-build/simile}
case $SIMILE in /*) ;; *) SIMILE=$PWD/$SIMILE ;; esac
DUR=${1:-30}
CONNS=${2:-32}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
command -v wrk >/dev/null 2>&1 || { echo "load.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/simile-load.XXXXXX")
SPID=""
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; rm -rf "$T"' EXIT
echo "# exporting 10000 images, training a small model, enrolling them"
"$SIMILE" export-images --data "$FMNIST:test" --out "$T/img" --limit 10000 >/dev/null
for d in "$T"/img/*\ *; do mv "$d" "$(printf '%s' "$d" | tr ' ' '_')"; done   # "Ankle boot": no spaces in argv
"$SIMILE" train --data fashion-mnist --epochs 1 --max-steps 50 --batch 64 --quiet --out "$T/m.safetensors" >/dev/null
"$SIMILE" enroll --gallery "$T/g.db" --model "$T/m.safetensors" --label-from-dir $(find "$T/img" -name '*.png') \
    >/dev/null 2>"$T/enroll.err" || { cat "$T/enroll.err" >&2; exit 1; }
tail -n 1 "$T/enroll.err"
Q=$(find "$T/img/Bag" -name '*.png' | head -n 1)
"$SIMILE" serve --model "$T/m.safetensors" --gallery "$T/g.db" --port 0 ${THREADS:+--threads $THREADS} \
    >"$T/server.out" 2>"$T/server.err" &
SPID=$!
i=0
while [ $i -lt 300 ] && ! grep -q 'listening on' "$T/server.out"; do sleep 0.1; i=$((i + 1)); done
cat "$T/server.out"
PORT=$(sed -n 's/.*:\([0-9]*\)\/ .*/\1/p' "$T/server.out")
rss() { sed -n 's/^VmRSS:[[:space:]]*//p' /proc/$SPID/status; }
cat >"$T/post.lua" <<LUA
local f = assert(io.open("$Q", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
LUA
curl -s -o /dev/null -w 'one search: HTTP %{http_code} in %{time_total} s\n' -X POST --data-binary "@$Q" "http://127.0.0.1:$PORT/v1/search?k=5"
echo "server RSS before: $(rss)"
wrk -t 4 -c "$CONNS" -d "${DUR}s" --latency -s "$T/post.lua" "http://127.0.0.1:$PORT/v1/search?k=5" | tee "$T/wrk.out"
echo "server RSS after:  $(rss)"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^simile_http_requests_total\{endpoint="search"|^simile_gallery_items'
echo "summary: $(grep 'Requests/sec' "$T/wrk.out" | tr -s ' '), p50 $(awk '$1=="50%"{print $2}' "$T/wrk.out"), p99 $(awk '$1=="99%"{print $2}' "$T/wrk.out"), non-2xx: $(sed -n 's/.*Non-2xx or 3xx responses: *//p' "$T/wrk.out" | grep . || echo 0), socket errors: $(sed -n 's/.*Socket errors: *//p' "$T/wrk.out" | grep . || echo none)"
