# lib.sh - sourced by the CLI shell tests (POSIX sh): the binary under test,
# the data, counting, a scratch directory, and running simile with checks.
#
#   . "$(dirname "$0")/lib.sh"
#   need_data t10k-images-idx3-ubyte.gz     # a failed check + finish when missing
#   make_tmp cli                            # $T, removed on exit
#   sim train ...; expect_ok "train" && ok "train"
#   sim eval --model nope; expect_err "missing model" 1 "nope"
#
# SIMILE (default build/simile, made absolute) and FMNIST (default
# /usr/share/datasets/fashion-mnist) come from the environment; a test closes
# with finish: "N passed, N failed", exit status 1 on any failure.

SIMILE=${SIMILE:-build/simile}
case $SIMILE in /*) ;; *) SIMILE=$PWD/$SIMILE ;; esac
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1: $2"; }
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit
}

# need_data FILE: the simile binary and FMNIST/FILE must exist.
need_data() {
    if [ ! -x "$SIMILE" ]; then
        bad "setup" "no executable '$SIMILE' (make build/simile, or set SIMILE)"
        finish
    fi
    if [ ! -r "$FMNIST/$1" ]; then
        bad "setup" "no Fashion-MNIST in '$FMNIST' (apt-get install dataset-fashion-mnist)"
        finish
    fi
}

# make_tmp NAME: a fresh scratch directory in $T, removed when the test exits.
make_tmp() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/simile-$1.XXXXXX") || { bad "setup" "mktemp -d failed"; finish; }
    trap 'rm -rf "$T"' EXIT
    trap 'exit 130' INT TERM
}

# run PROGRAM ARGS...: stdout in $T/out, stderr in $T/err, status in $rc;
# sim ARGS...: run simile.
run() { "$@" >"$T/out" 2>"$T/err"; rc=$?; }
sim() { run "$SIMILE" "$@"; }
first_err() { head -n 1 "$T/err"; }
# crash: sets $why and succeeds when the last run died or a sanitizer spoke.
crash() {
    if [ "$rc" -ge 128 ]; then why="exit $rc (killed by a signal); stderr: $(head -c 300 "$T/err")"; return 0; fi
    if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/err"; then
        why="sanitizer report: $(grep -m 1 -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/err")"
        return 0
    fi
    return 1
}
# expect_ok NAME: the last run succeeded cleanly (a failed check otherwise;
# the caller counts the success).
expect_ok() {
    if crash; then bad "$1" "$why"; return 1; fi
    if [ "$rc" != 0 ]; then bad "$1" "exit $rc: $(first_err)"; return 1; fi
    return 0
}
# expect_err NAME CODES REGEX: the last run failed with an exit status matching
# the case pattern CODES, printed nothing on stdout, and on stderr exactly one
# line "$PROG..." (PROG: the program's name, default simile), matching the extended regex REGEX (case-insensitive), then
# at most one line starting with "hint:". Counts the check either way; returns
# 0 when it passed.
expect_err() {
    if crash; then bad "$1" "$why"; return 1; fi
    case $rc in
        $2) ;;
        *) bad "$1" "exit $rc, expected $2 (stderr: $(first_err))"; return 1 ;;
    esac
    _lines=$(wc -l <"$T/err")
    _l1=$(first_err)
    _l2=$(sed -n 2p "$T/err")
    case $_l1 in
        "${PROG:-simile}"*) ;;
        *) bad "$1" "stderr does not start with '${PROG:-simile}': '$_l1'"; return 1 ;;
    esac
    if [ "$_lines" -gt 2 ] || { [ "$_lines" = 2 ] && case $_l2 in hint:*) false ;; *) true ;; esac; }; then
        bad "$1" "stderr has $_lines lines, expected one '${PROG:-simile}' line and at most one 'hint:' line: $(head -n 3 "$T/err" | tr '\n' '|')"
        return 1
    fi
    if ! printf '%s\n' "$_l1" | grep -qiE -- "$3"; then bad "$1" "message '$_l1' does not match /$3/"; return 1; fi
    if [ -s "$T/out" ]; then bad "$1" "wrote to stdout on failure: $(head -c 200 "$T/out")"; return 1; fi
    ok "$1"
}

# u8 N: the byte N (0..255) as a printf escape.
u8() { printf '\\%03o' "$1"; }
# cut_idx SRC.gz DST N HEADER ITEM: the first N items of a gzipped IDX file,
# with the big-endian count at offset 4 rewritten to N (N < 65536).
cut_idx() {
    gunzip -c "$1" | head -c 4 >"$2" &&
        printf "\\000\\000$(u8 $(($3 / 256)))$(u8 $(($3 % 256)))" >>"$2" &&
        gunzip -c "$1" | head -c $(($4 + $3 * $5)) | tail -c +9 >>"$2"
}
