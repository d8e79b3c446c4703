# serve_lib.sh - sourced by the service's shell tests (POSIX sh).
#
# start_server OUT ERR ARGS...: starts "$SIMILE serve ARGS..." in the
# background, stdout to OUT and stderr to ERR; sets SPID, and PORT once the
# server says it listens on 127.0.0.1 (PORT is empty when it died first or
# did not listen within 30 s).
start_server() {
    _out=$1 _err=$2
    shift 2
    "$SIMILE" serve "$@" >"$_out" 2>"$_err" &
    SPID=$!
    _i=0
    while [ $_i -lt 300 ] && ! grep -q 'listening on' "$_out" 2>/dev/null; do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
        _i=$((_i + 1))
    done
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$_out")
}

# stop_server ERR NAME: SIGTERM to $SPID; passes (the test's ok/bad) when it
# exits 0 and ERR holds no sanitizer report.
stop_server() {
    kill -TERM "$SPID"
    wait "$SPID"
    _rc=$?
    SPID=""
    if [ "$_rc" = 0 ] && ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$1"; then
        ok "$2: SIGTERM, exit 0, no sanitizer report"
    else bad "$2: shutdown" "exit $_rc: $(grep -m 3 -E 'ERROR|runtime error|SUMMARY' "$1")"; fi
}
