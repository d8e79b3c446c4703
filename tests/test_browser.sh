#!/bin/sh
# test_browser.sh - the web page end to end in headless Chromium
# (tests/e2e/page.mjs: Debian's chromium driven by the npm package
# playwright-core): upload an image, see its matches, enroll a new item, find
# it, delete it from the gallery view (a wrong token refused, then the right
# one); a screenshot (before the delete) is saved as an artifact in
# ${SIMILE_ARTIFACTS:-build/artifacts}.
#
#   SIMILE=build/simile sh tests/test_browser.sh
#
# Skips with "skipped: chromium not installed" (or playwright-core, or node)
# where they are missing: chromium is not in the default 'make deps'
# (a ~80 MB download, ~300 MB installed); 'SIMILE_E2E=1 sh scripts/deps.sh'
# installs it. POSIX sh; closes with "N passed, N failed".

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/serve_lib.sh"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM
export NODE_PATH="${NODE_PATH:+$NODE_PATH:}$ROOT/tests/e2e/node_modules:/usr/local/share/simile/node_modules"

skip() {
    echo "skipped: $1"
    finish
}

[ -x "$CHROMIUM" ] || skip "chromium not installed ($CHROMIUM; SIMILE_E2E=1 sh scripts/deps.sh installs it)"
command -v node >/dev/null 2>&1 || skip "node not installed"
# ES modules ignore NODE_PATH: find playwright-core's directory ourselves
PW=""
for d in "$ROOT/tests/e2e/node_modules" /usr/local/share/simile/node_modules; do
    [ -r "$d/playwright-core/package.json" ] && PW=$d && break
done
[ -n "$PW" ] || skip "playwright-core not installed (npm install --prefix /usr/local/share/simile playwright-core@1.65.1)"
[ -x "$SIMILE" ] || { bad "setup" "no executable '$SIMILE'"; finish; }
T=$(mktemp -d "${TMPDIR:-/tmp}/simile-browser.XXXXXX") || { bad "setup" "mktemp -d failed"; finish; }
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$SIMILE" export-images --data "$FMNIST:test" --out "$T/img" --limit 100 --threads 1 >/dev/null 2>"$T/err" &&
    "$SIMILE" train --data "$T/img" --epochs 1 --max-steps 3 --batch 16 --threads 1 --quiet --dim 16 \
        --out "$T/m.safetensors" >/dev/null 2>>"$T/err" || { bad "setup" "$(head -c 300 "$T/err")"; finish; }
G=$T/g.db
# a gallery enrolled by the CLI (thumbnails come from the stored source paths)
for c in Bag Coat Dress Trouser; do
    lab=$(echo "$c" | tr 'A-Z' 'a-z')
    "$SIMILE" enroll --gallery "$G" --model "$T/m.safetensors" --label "$lab" --threads 1 \
        $(ls "$T/img/$c"/*.png | head -n 3) >/dev/null 2>>"$T/err" || { bad "enroll" "$(tail -c 300 "$T/err")"; finish; }
done
QUERY=$(ls "$T"/img/Bag/*.png | head -n 1)
NEW=$(ls "$T"/img/Sneaker/*.png | head -n 1)
echo "e2e-token" >"$T/tok"
start_server "$T/server.out" "$T/server.err" --model "$T/m.safetensors" --gallery "$G" --port 0 \
    --token-file "$T/tok" --threads 2
[ -n "$PORT" ] || { bad "server start" "$(head -c 400 "$T/server.err")"; finish; }
ART=${SIMILE_ARTIFACTS:-$ROOT/build/artifacts}
mkdir -p "$ART"
SHOT=$ART/serve-page$(case $SIMILE in *asan*) echo -asan ;; esac).png
mkdir -p "$T/e2e/node_modules"
ln -s "$PW/playwright-core" "$T/e2e/node_modules/playwright-core"
cp "$ROOT/tests/e2e/page.mjs" "$T/e2e/page.mjs"
timeout 120 node "$T/e2e/page.mjs" "http://127.0.0.1:$PORT/" e2e-token "$QUERY" "$NEW" "$SHOT" >"$T/node.out" 2>&1
rc=$?
cat "$T/node.out" | sed -n 's/^ok   /ok   browser: /p'
pass=$((pass + $(grep -c '^ok ' "$T/node.out")))
[ "$rc" = 0 ] || bad "browser" "exit $rc: $(grep -v '^ok ' "$T/node.out" | head -c 600)"
stop_server "$T/server.err" "server"
finish
