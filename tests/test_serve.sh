#!/bin/sh
# test_serve.sh - the HTTP service against a real server on 127.0.0.1.
#
#   SIMILE=build/simile sh tests/test_serve.sh        (make test runs it with the
#   SIMILE=build/asan/simile sh tests/test_serve.sh    plain and the ASan binary)
#
# Starts 'simile serve' on an ephemeral port (--port 0, read back from its
# first line) with a token, a 2 s idle timeout and a 1 MB body limit, and
# kills it at the end whatever happens (trap). Checks every success path
# (page, healthz, metrics, enroll raw and multipart, idempotent enroll,
# search raw / multipart / by JSON embedding, embed, items paged by offset and
# after, one item, its thumbnail, delete), enrolls racing searches, then every
# refusal with its status and JSON error: malformed JSON and parameters,
# empty, non-image, truncated and forged 30000x30000 PNG bodies, a 1 GB
# Content-Length sent without its body (413 at once), a streamed body over the
# limit (413 received 20 times out of 20 with curl, and for an endless
# stream), missing and wrong tokens, unknown paths and ids, wrong methods, the
# same image under another label, and stalled connections (the server keeps
# answering others and closes them at the idle timeout); thumbnails live as
# long as their items. Afterwards the server still answers and the gallery
# holds what it held; SIGTERM stops it with exit 0 and (ASan build) no
# sanitizer report. A second server with --request-timeout 2 and
# --max-conns-per-ip 40 then checks the per-address limit and slow-loris:
# 20 clients trickling headers and one trickling a body all get 408 within
# 3 s while /healthz answers at once. Needs curl; the checks that hand-craft
# connections need python3 (skipped, with a message, without it).
# POSIX sh; closes with "N passed, N failed" and exits 1 on any failure.

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/lib.sh"
. "$ROOT/tests/serve_lib.sh"
need_data t10k-images-idx3-ubyte.gz
command -v curl >/dev/null 2>&1 || { bad "setup" "curl not found (apt-get install curl; scripts/deps.sh installs it)"; finish; }
T=$(mktemp -d "${TMPDIR:-/tmp}/simile-serve.XXXXXX") || { bad "setup" "mktemp -d failed"; finish; }
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ data, model, server
"$SIMILE" export-images --data "$FMNIST:test" --out "$T/img" --limit 100 --threads 1 >/dev/null 2>"$T/err" ||
    { bad "export images" "$(head -c 300 "$T/err")"; finish; }
"$SIMILE" train --data "$T/img" --epochs 1 --max-steps 3 --batch 16 --threads 1 --quiet --dim 16 \
    --out "$T/m.safetensors" >/dev/null 2>"$T/err" || { bad "train" "$(head -c 300 "$T/err")"; finish; }
set -- $(ls "$T"/img/Bag/*.png | head -n 3)
BAG1=$1 BAG2=$2 BAG3=$3
set -- $(ls "$T"/img/Coat/*.png | head -n 2)
COAT1=$1 COAT2=$2
SHOE=$(ls "$T"/img/Sneaker/*.png | head -n 1)
echo "s3cret-token" >"$T/tok"
G=$T/g.db

start_server "$T/server.out" "$T/server.err" --model "$T/m.safetensors" --gallery "$G" --port 0 \
    --token-file "$T/tok" --timeout 2 --threads 4 --max-body 1000000
[ -n "$PORT" ] && ok "server started on port $PORT" ||
    { bad "server start" "$(head -c 400 "$T/server.out" "$T/server.err")"; finish; }
U=http://127.0.0.1:$PORT
AUTH="Authorization: Bearer s3cret-token"

# req NAME EXPECTED_CODE curl-args...: runs curl, body in $T/body, code in $code
req() {
    name=$1 want=$2
    shift 2
    code=$(curl -s -m 20 -o "$T/body" -w '%{http_code}' "$@")
    if [ "$code" = "$want" ]; then return 0; fi
    bad "$name" "HTTP $code, expected $want: $(head -c 300 "$T/body")"
    return 1
}
has() { grep -q -- "$1" "$T/body"; }
json_ok() { if command -v python3 >/dev/null 2>&1; then python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/body" 2>/dev/null; else true; fi; }
# err_is NAME CODE ERROR: the body is {"error": ERROR, "detail": ...}
err_is() {
    if json_ok && has "\"error\":\"$3\"" && has '"detail":"'; then ok "$1: $2 $3"; else bad "$1" "body $(head -c 300 "$T/body")"; fi
}
items() { curl -s -m 10 "$U/healthz" | sed -n 's/.*"items":\([0-9]*\).*/\1/p'; }

# ------------------------------------------------------------------ success paths
req "healthz" 200 "$U/healthz" && has '"status":"ok"' && has '"items":0' && ok "GET /healthz: ok, 0 items"
req "page" 200 "$U/" && has '<title>simile' && has '/v1/search' && ok "GET /: the web page"
tmpw=$T/webpage.h
if sh "$ROOT/tools/embed_web.sh" "$ROOT/src/web/index.html" "$tmpw" && cmp -s "$tmpw" "$ROOT/src/webpage.h"; then
    ok "src/webpage.h is up to date with src/web/index.html"
else bad "webpage.h" "stale: run sh tools/embed_web.sh and commit src/webpage.h"; fi

req "enroll raw" 201 -X POST -H "$AUTH" -H 'Content-Type: image/png' --data-binary "@$BAG1" "$U/v1/items?label=bag" &&
    has '"id":1' && has '"added":true' && has '"count":1' && ok "POST /v1/items (raw body, ?label=): 201, id 1"
req "enroll multipart" 201 -X POST -H "$AUTH" -F "image=@$COAT1" -F label=coat "$U/v1/items" &&
    has '"id":2' && has '"label":"coat"' && ok "POST /v1/items (multipart image + label): 201, id 2"
req "enroll again" 200 -X POST -H "$AUTH" --data-binary "@$BAG1" "$U/v1/items?label=bag" &&
    has '"id":1' && has '"added":false' && ok "enrolling the same image again: 200, same id, not added"
req "enroll bag2" 201 -X POST -H "$AUTH" --data-binary "@$BAG2" "$U/v1/items?label=bag" &&
    req "enroll shoe" 201 -X POST -H "$AUTH" -F "image=@$SHOE" -F "label=sneaker" "$U/v1/items" && ok "two more items"
[ "$(items)" = 4 ] && ok "healthz counts 4 items" || bad "count" "healthz says $(items)"

req "search raw" 200 -X POST --data-binary "@$BAG1" "$U/v1/search?k=3" && json_ok &&
    has '"results":\[{"id":1,"label":"bag"' && has '"answer":"bag"' && has '"unknown":false' &&
    [ "$(grep -o '"rank"' "$T/body" | wc -l)" = 3 ] && ok "POST /v1/search raw, k=3: the image finds itself first"
req "search multipart" 200 -X POST -F "image=@$COAT1" -F k=1 "$U/v1/search" &&
    has '"results":\[{"id":2,' && [ "$(grep -o '"rank"' "$T/body" | wc -l)" = 1 ] && ok "POST /v1/search multipart, k=1"
req "search threshold" 200 -X POST --data-binary "@$BAG1" "$U/v1/search?threshold=1.5" &&
    has '"unknown":true' && has '"answer":null' && ok "search with threshold 1.5: unknown"
req "embed" 200 -X POST --data-binary "@$BAG1" "$U/v1/embed" && has '"dim":16' &&
    EMB=$(sed -n 's/.*"embedding":\(\[[^]]*\]\).*/\1/p' "$T/body") && [ -n "$EMB" ] && ok "POST /v1/embed: 16 numbers"
req "search by embedding" 200 -X POST -H 'Content-Type: application/json' -d "{\"embedding\":$EMB}" "$U/v1/search?k=2" &&
    has '"results":\[{"id":1,' && ok "POST /v1/search with a JSON embedding"
req "items page" 200 "$U/v1/items?offset=1&limit=2" &&
    [ "$(grep -o '"id":[0-9]*' "$T/body" | tr -d '"id:' | tr '\n' ' ')" = "2 3 " ] && has '"count":4' &&
    has '"next_after":3' && ok "GET /v1/items?offset=1&limit=2: ids 2 3"
req "items after" 200 "$U/v1/items?after=3" && [ "$(grep -o '"id":[0-9]*' "$T/body" | tr -d '"id:')" = 4 ] &&
    ok "GET /v1/items?after=3: id 4"
req "item" 200 "$U/v1/items/2" && has '"label":"coat"' && ok "GET /v1/items/2"
req "item image" 200 "$U/v1/items/2/image" && [ "$(head -c 4 "$T/body" | od -An -tx1 | tr -d ' ')" = 89504e47 ] &&
    ok "GET /v1/items/2/image: a PNG"
req "delete" 200 -X DELETE -H "$AUTH" "$U/v1/items/4" && has '"removed":true' && has '"count":3' && ok "DELETE /v1/items/4"
req "delete again" 404 -X DELETE -H "$AUTH" "$U/v1/items/4" && err_is "delete again" 404 not_found
thumbs() { ls "$G.images" | wc -l | tr -d ' '; }
SHOE_SHA=$(sha256sum "$SHOE" | cut -c1-64)
[ ! -e "$G.images/$SHOE_SHA.png" ] && [ "$(thumbs)" = 3 ] && ok "DELETE removed the item's thumbnail (3 left for 3 items)" ||
    bad "thumbnail of a deleted item" "$(ls "$G.images")"

# enrolls racing searches: every answer complete, nothing lost
cpids=""
for f in "$T"/img/Dress/*.png; do
    b=$(basename "$f" .png)
    curl -s -m 20 -o /dev/null -w '%{http_code}\n' -X POST -H "$AUTH" --data-binary "@$f" "$U/v1/items?label=dress" >"$T/race.add.$b" &
    cpids="$cpids $!"
    curl -s -m 20 -o "$T/race.res.$b" -w '%{http_code}\n' -X POST --data-binary "@$f" "$U/v1/search?k=50" >"$T/race.search.$b" &
    cpids="$cpids $!"
done
for p in $cpids; do wait "$p"; done
cat "$T"/race.add.* >"$T/race.add"
cat "$T"/race.search.* >"$T/race.search"
nd=$(ls "$T"/img/Dress/*.png | wc -l)
if [ "$(grep -c '^201$' "$T/race.add")" = "$nd" ] && [ "$(grep -c '^200$' "$T/race.search")" = "$nd" ] &&
    ! grep -L '"results":\[' "$T"/race.res.* | grep -q . && [ "$(items)" = $((3 + nd)) ]; then
    ok "$nd enrolls racing $nd searches: all answered, $((3 + nd)) items"
else bad "race" "adds $(sort "$T/race.add" | uniq -c | tr '\n' ' '), searches $(sort "$T/race.search" | uniq -c | tr '\n' ' '), items $(items)"; fi

req "metrics" 200 "$U/metrics" && has '^simile_http_requests_total{endpoint="search",code="200"} ' &&
    has '^simile_http_request_duration_seconds_bucket{endpoint="search",le="+Inf"} ' &&
    has "^simile_gallery_items $((3 + nd))\$" && ok "GET /metrics: counts, latency histogram, gallery size"

# ------------------------------------------------------------------ refusals
N0=$(items)
req "bad json" 400 -X POST -H 'Content-Type: application/json' -d '{"embedding": [1, 2' "$U/v1/search" && err_is "malformed JSON" 400 bad_json
req "json shape" 400 -X POST -H 'Content-Type: application/json' -d '{"embedding": [1, 2]}' "$U/v1/search" && err_is "JSON embedding of the wrong length" 400 bad_request
req "bad k" 400 -X POST --data-binary "@$BAG1" "$U/v1/search?k=abc" && err_is "k=abc" 400 bad_request
req "k=0" 400 -X POST --data-binary "@$BAG1" "$U/v1/search?k=0" && err_is "k=0" 400 bad_request
req "bad threshold" 400 -X POST --data-binary "@$BAG1" "$U/v1/search?threshold=high" && err_is "threshold=high" 400 bad_request
req "bad limit" 400 "$U/v1/items?limit=0" && err_is "limit=0" 400 bad_request
req "empty body" 400 -X POST "$U/v1/search" && err_is "empty body" 400 bad_request
printf 'this is not an image' >"$T/text.png"
req "non-image" 415 -X POST --data-binary "@$T/text.png" "$U/v1/search" && err_is "non-image body" 415 unsupported_media_type
head -c 200 "$BAG3" >"$T/trunc.png"
req "truncated" 400 -X POST --data-binary "@$T/trunc.png" "$U/v1/search" && err_is "truncated PNG" 400 bad_image
# a PNG signature and an IHDR chunk (valid CRC) claiming 30000 x 30000 RGB
printf '\211\120\116\107\015\012\032\012\000\000\000\015\111\110\104\122\000\000\165\060\000\000\165\060\010\002\000\000\000\351\105\157\355' >"$T/bomb.png"
req "bomb" 422 -X POST --data-binary "@$T/bomb.png" "$U/v1/search" && err_is "forged 30000x30000 PNG header" 422 image_too_large
req "bomb enroll" 422 -X POST -H "$AUTH" --data-binary "@$T/bomb.png" "$U/v1/items?label=bomb" && err_is "forged PNG enrolled" 422 image_too_large
t0=$(date +%s)
req "1 GB" 413 -X POST -H 'Content-Length: 1000000000' -H 'Content-Type: image/png' "$U/v1/search" &&
    [ $(($(date +%s) - t0)) -le 2 ] && err_is "Content-Length 1 GB without the body: 413 at once" 413 too_large
# a 3 MB body streamed in chunks (no Content-Length) against the 1 MB limit:
# answered 413 with its JSON as it passes the limit, every time (the server
# writes the answer on the socket and drains the rest before closing, so the
# client reads it instead of a reset)
head -c 3000000 /dev/zero >"$T/3mb"
t0=$(date +%s)
nf=0
i=0
while [ $i -lt 20 ]; do
    code=$(curl -s -m 20 -o "$T/body" -w '%{http_code}' -X POST -H 'Transfer-Encoding: chunked' -H 'Content-Type: image/png' \
        --data-binary "@$T/3mb" "$U/v1/search")
    if [ "$code" != 413 ] || ! json_ok || ! has '"error":"too_large"'; then
        nf=$((nf + 1))
        last="HTTP $code: $(head -c 200 "$T/body")"
    fi
    i=$((i + 1))
done
dt=$(($(date +%s) - t0))
[ "$nf" = 0 ] && [ "$dt" -le 10 ] && ok "3 MB chunked body over the 1 MB limit: 413 too_large received 20/20 times (${dt} s)" ||
    bad "chunked" "$nf/20 failed ($last), ${dt} s"
# an endless chunked body (up to 1 GB, sent while watching for an answer):
# 413 after about the limit, the rest never read
if command -v python3 >/dev/null 2>&1; then
    if python3 - "$PORT" >"$T/endless" 2>&1 <<'EOF'; then
import json, select, socket, sys, time
port = int(sys.argv[1])
chunk = b"%x\r\n" % 65536 + b"\0" * 65536 + b"\r\n"
worst_sent = worst_t = 0
for attempt in range(5):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: image/png\r\n\r\n")
    s.setblocking(False)
    sent, t = 0, time.time()
    while sent < 1 << 30 and time.time() - t < 10:
        r, w, _ = select.select([s], [s], [], 1)
        if r:
            break
        if w:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                pass
    s.setblocking(True)
    s.settimeout(5)
    resp = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        resp += d
    s.close()
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), resp[:100]
    assert json.loads(body)["error"] == "too_large", body
    worst_sent, worst_t = max(worst_sent, sent), max(worst_t, time.time() - t)
assert worst_sent < 64 << 20, "%d bytes sent before the answer" % worst_sent
print("5/5 answered 413 after at most %.1f MB sent, in at most %.0f ms" % (worst_sent / 1e6, 1e3 * worst_t))
EOF
        ok "endless chunked body: $(cat "$T/endless")"
    else bad "endless chunked" "$(tail -n 3 "$T/endless")"; fi
fi
req "healthz after 413s" 200 "$U/healthz" && ok "the server answers after the refused streams"
req "no token" 401 -X POST --data-binary "@$BAG3" "$U/v1/items?label=bag" && err_is "enroll without a token" 401 unauthorized
req "wrong token" 401 -X POST -H 'Authorization: Bearer nope' --data-binary "@$BAG3" "$U/v1/items?label=bag" && err_is "enroll with a wrong token" 401 unauthorized
req "token prefix" 401 -X POST -H 'Authorization: Bearer s3cret' --data-binary "@$BAG3" "$U/v1/items?label=bag" && err_is "enroll with a prefix of the token" 401 unauthorized
req "delete no token" 401 -X DELETE "$U/v1/items/1" && err_is "delete without a token" 401 unauthorized
req "conflict" 409 -X POST -H "$AUTH" --data-binary "@$BAG1" "$U/v1/items?label=coat" && err_is "the same image under another label" 409 conflict
req "thumbnail after conflict" 200 "$U/v1/items/1/image" && [ "$(thumbs)" = "$N0" ] &&
    ok "after the 409 item 1 keeps its thumbnail, and there is one thumbnail per item ($N0)"
req "no label" 400 -X POST -H "$AUTH" --data-binary "@$BAG3" "$U/v1/items" && err_is "enroll without a label" 400 bad_request
req "form without image" 400 -X POST -H "$AUTH" -F label=x "$U/v1/items" && err_is "form without an image" 400 bad_request
req "unknown path" 404 "$U/etc/passwd" && err_is "GET /etc/passwd" 404 not_found
req "traversal" 404 --path-as-is "$U/v1/items/../../../etc/passwd" && err_is "GET /v1/items/../../../etc/passwd" 404 not_found
req "unknown id" 404 "$U/v1/items/999999" && err_is "unknown item" 404 not_found
req "bad id" 404 "$U/v1/items/abc" && err_is "non-numeric id" 404 not_found
req "unknown image" 404 "$U/v1/items/999999/image" && err_is "image of an unknown item" 404 not_found
req "method" 405 -X PUT "$U/v1/items" && grep -qi '"error":"method_not_allowed"' "$T/body" && ok "PUT /v1/items: 405"
req "method search" 405 "$U/v1/search" && ok "GET /v1/search: 405"

# slow-loris: 20 connections that send half a request and stall, and one
# that drips a byte every 0.5 s; others are served meanwhile, and the stalled
# ones are closed by the server at the 2 s idle timeout
if command -v python3 >/dev/null 2>&1; then
    if python3 - "$PORT" >"$T/loris" 2>&1 <<'EOF'; then
import socket, sys, time, urllib.request
port = int(sys.argv[1])
socks = []
for i in range(20):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n" if i % 2 else b"GET /healthz HTTP/1.1\r\nHo")
    socks.append(s)
t = time.time()
for _ in range(5):
    r = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2)
    assert r.status == 200, r.status
served = time.time() - t
assert served < 2, "healthz took %.2f s while slow clients hang" % served
deadline = time.time() + 8
closed = 0
for s in socks:
    s.settimeout(max(0.1, deadline - time.time()))
    try:
        if s.recv(100) == b"":
            closed += 1
    except OSError:
        closed += 1
waited = time.time() - t
print("others served in %.2f s; %d/20 slow connections closed after %.1f s" % (served, closed, waited))
assert closed == 20
EOF
        ok "slow-loris: $(cat "$T/loris")"
    else bad "slow-loris" "$(tail -n 3 "$T/loris")"; fi
else
    echo "skip slow-loris: python3 not installed"
fi

# ------------------------------------------------------------------ afterwards
req "healthz after" 200 "$U/healthz" && ok "the server still answers /healthz"
[ "$(items)" = "$N0" ] && ok "the gallery still holds $N0 items after the refusals" || bad "unchanged" "$N0 -> $(items)"
req "search after" 200 -X POST --data-binary "@$BAG1" "$U/v1/search?k=1" && has '"results":\[{"id":1,' && ok "search still finds item 1"

stop_server "$T/server.err" "server"
# the gallery on disk agrees (the CLI reads it after the server stopped)
n=$("$SIMILE" items --gallery "$G" --json 2>/dev/null | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
[ "$n" = "$N0" ] && ok "simile items reads $N0 items from the gallery file" || bad "gallery file" "count '$n'"

# ------------------------------------------------------------------ a second server: deadlines and limits
# --request-timeout 2 (a request must be in within 2 s), a 10 s idle timeout
# (so that only the request deadline acts), at most 40 connections per address.
# First an item enrolled by the CLI (it has no stored thumbnail): enrolling
# its image over HTTP under another label is a 409 that leaves no thumbnail.
"$SIMILE" enroll --gallery "$G" --model "$T/m.safetensors" --label coat --threads 1 "$COAT2" >/dev/null 2>"$T/err" ||
    bad "CLI enroll" "$(head -c 300 "$T/err")"
N1=$((N0 + 1))
start_server "$T/server2.out" "$T/server2.err" --model "$T/m.safetensors" --gallery "$G" --port 0 \
    --token-file "$T/tok" --timeout 10 --request-timeout 2 --max-conns-per-ip 40 --threads 4 --max-body 1000000
[ -n "$PORT" ] && ok "second server (--request-timeout 2 --max-conns-per-ip 40) on port $PORT" ||
    { bad "server 2 start" "$(head -c 400 "$T/server2.out" "$T/server2.err")"; finish; }
U=http://127.0.0.1:$PORT
# another 'simile serve' on the port of the running one: refused in one line
# (the port is not shared), exit 1, while the running server keeps it
"$SIMILE" serve --model "$T/m.safetensors" --gallery "$G" --port "$PORT" --threads 1 >"$T/dup.out" 2>"$T/dup.err" &
DPID=$!
i=0
while kill -0 "$DPID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$DPID" 2>/dev/null; then
    kill "$DPID"; wait "$DPID"
    bad "serve on a port in use" "it started too: $(head -c 200 "$T/dup.out")"
else
    wait "$DPID"; drc=$?
    if [ "$drc" = 1 ] && [ "$(wc -l <"$T/dup.err")" = 1 ] && grep -q "cannot listen on 127.0.0.1 port $PORT" "$T/dup.err" &&
        [ ! -s "$T/dup.out" ]; then ok "serve on a port in use: exit 1, $(cat "$T/dup.err")"
    else bad "serve on a port in use" "exit $drc: $(head -c 300 "$T/dup.err")"; fi
fi
COAT2_SHA=$(sha256sum "$COAT2" | cut -c1-64)
req "conflict with a CLI item" 409 -X POST -H "$AUTH" --data-binary "@$COAT2" "$U/v1/items?label=dress" &&
    [ ! -e "$G.images/$COAT2_SHA.png" ] && [ "$(thumbs)" = "$N0" ] &&
    ok "409 for the image of a CLI-enrolled item: the thumbnail written for it was removed"

if command -v python3 >/dev/null 2>&1; then
    # 40 keep-alive connections from 127.0.0.1 are held; the 41st is closed unanswered
    if python3 - "$PORT" >"$T/perip" 2>&1 <<'EOF'; then
import socket, sys, time, urllib.request
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
# each held connection is served once (kept alive) so the server has accepted
# and counted all 40 before the 41st arrives: with a thread pool, connections
# still queued in the kernel would race the 41st
for s in held:
    s.settimeout(10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
for s in held:
    got = b""
    while b"\r\n\r\n" not in got:
        d = s.recv(4096)
        assert d, "a held connection was closed before its answer"
        got += d
x = socket.create_connection(("127.0.0.1", port))
x.settimeout(3)
try:
    x.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    got = x.recv(100)
except OSError:
    got = b""
x.close()
assert got == b"", "the 41st connection was answered: %r" % got[:60]
for s in held:
    s.close()
time.sleep(0.2)
assert urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5).status == 200
print("the 41st connection was closed unanswered; served again once the 40 closed")
EOF
        ok "per-address limit: $(cat "$T/perip")"
    else bad "per-address limit" "$(tail -n 3 "$T/perip")"; fi

    # slow-loris: 20 clients trickle a request's headers (a byte every 0.5 s),
    # one its body; each gets 408 {"error":"timeout"} within the 2 s deadline
    # + 1 s and is closed, while /healthz keeps answering at once
    if python3 - "$PORT" >"$T/trickle" 2>&1 <<'EOF'; then
import json, socket, sys, threading, time, urllib.request
port, deadline = int(sys.argv[1]), 2.0
head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: trickle\r\nX-Pad: " + b"a" * 64 + b"\r\n\r\n"
post = b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n"
out = {}
def trickle(i, body):
    s = socket.create_connection(("127.0.0.1", port))
    t = time.time()
    if body:
        s.sendall(post)
    s.settimeout(0.5)
    resp, first = b"", None
    for b in (b"\0" * 100 if body else head):
        try:
            s.send(bytes([b]))
            d = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            break
        if d:
            first = first or time.time() - t
            resp += d
        break
    s.settimeout(3)
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            first = first or time.time() - t
            resp += d
    except OSError:
        pass
    s.close()
    out[i] = (first, resp)
th = [threading.Thread(target=trickle, args=(i, i == 20)) for i in range(21)]
for x in th:
    x.start()
time.sleep(0.2)
worst = 0
for _ in range(10):
    t = time.time()
    r = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5)
    assert r.status == 200
    r.read()
    worst = max(worst, time.time() - t)
    time.sleep(0.1)
for x in th:
    x.join()
late = []
for i, (first, resp) in sorted(out.items()):
    h, _, body = resp.partition(b"\r\n\r\n")
    assert h.startswith(b"HTTP/1.1 408 "), "client %d got %r" % (i, resp[:80])
    assert json.loads(body)["error"] == "timeout", body
    late.append(first)
assert max(late) <= deadline + 1, "408 after %.2f s" % max(late)
assert worst < 1, "/healthz took %.2f s meanwhile" % worst
print("21/21 answered 408 after %.2f-%.2f s (20 slow headers, 1 slow body); /healthz meanwhile in at most %.3f s" % (min(late), max(late), worst))
EOF
        ok "slow requests: $(cat "$T/trickle")"
    else bad "slow requests" "$(tail -n 3 "$T/trickle")"; fi
    req "metrics 408" 200 "$U/metrics" && has '^simile_http_requests_total{endpoint="other",code="408"} 20$' &&
        has '^simile_http_requests_total{endpoint="search",code="408"} 1$' && ok "/metrics counts the 408s by endpoint"
else
    echo "skip per-address limit and slow requests: python3 not installed"
fi
req "healthz 2" 200 "$U/healthz" && has "\"items\":$N1," && ok "the second server answers, the gallery still holds $N1 items"
stop_server "$T/server2.err" "second server"

# ------------------------------------------------------------------ a full disk
# A third server on a fresh gallery. Once it holds two items, its file-size
# limit is lowered (prlimit) to the size of the gallery's largest file, so the
# next enroll's write fails with EFBIG, as on a full disk: 503
# {"error":"unavailable"} naming the gallery, not a server killed by SIGXFSZ;
# the count stays 2, search still answers, no thumbnail is left for the
# refused image. With the limit lifted the same enroll succeeds, and after
# SIGTERM the gallery holds exactly the three items.
if command -v prlimit >/dev/null 2>&1; then
    G3=$T/g3.db
    start_server "$T/server3.out" "$T/server3.err" --model "$T/m.safetensors" --gallery "$G3" --port 0 --threads 2
    [ -n "$PORT" ] || { bad "third server start" "$(head -c 400 "$T/server3.out" "$T/server3.err")"; finish; }
    U=http://127.0.0.1:$PORT
    req "full disk: enroll 1" 201 --data-binary "@$BAG1" "$U/v1/items?label=bag" &&
        req "full disk: enroll 2" 201 --data-binary "@$COAT1" "$U/v1/items?label=coat" && ok "third server: two items"
    lim=0
    for f in "$G3" "$G3-wal" "$G3-shm"; do
        [ -f "$f" ] && n=$(wc -c <"$f") && [ "$n" -gt "$lim" ] && lim=$n
    done
    if prlimit --pid "$SPID" --fsize="$lim:"; then
        req "enroll on a full disk" 503 --data-binary "@$SHOE" "$U/v1/items?label=sneaker" &&
            err_is "enroll on a full disk" 503 unavailable && has 'g3\.db' && ok "the 503 names the gallery: $(head -c 200 "$T/body")"
        [ "$(items)" = 2 ] && ok "after the 503 healthz still counts 2 items" || bad "count after 503" "healthz says $(items)"
        req "search on a full disk" 200 -X POST --data-binary "@$COAT1" "$U/v1/search?k=1" &&
            has '"results":\[{"id":2,"label":"coat"' && ok "search still answers (the coat finds itself)"
        [ ! -e "$G3.images/$SHOE_SHA.png" ] && ok "no thumbnail left for the refused image" ||
            bad "thumbnail after 503" "$(ls "$G3.images")"
        prlimit --pid "$SPID" --fsize=unlimited:   # the soft limit only: the hard one stays
        req "enroll after the disk has room" 201 --data-binary "@$SHOE" "$U/v1/items?label=sneaker" &&
            has '"id":3' && has '"count":3' && ok "with the limit lifted the same enroll succeeds: id 3, count 3"
    else bad "prlimit" "cannot lower the server's file-size limit to $lim bytes"; fi
    stop_server "$T/server3.err" "third server"
    n=$("$SIMILE" items --gallery "$G3" 2>/dev/null | grep -vc "^#")
    [ "$n" = 3 ] && ok "after SIGTERM the gallery file holds the 3 items" || bad "gallery after the full disk" "simile items lists $n"
else
    echo "skip full disk: prlimit (util-linux) not installed"
fi
finish
