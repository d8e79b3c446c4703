#!/bin/sh
# test_cli.sh - end-to-end tests of the `simile` command (train, embed, eval).
#
#   SIMILE=build/simile sh tests/test_cli.sh        (make test runs it with the
#   SIMILE=build/asan/simile sh tests/test_cli.sh    plain and the ASan binary)
#
# Works on a tiny data set cut from Debian's dataset-fashion-mnist (256 train
# and 128 test images, the header counts rewritten) and a 16-d mnist-net run
# for a few steps, so the whole script takes seconds even under ASan. Checks:
# the files train/embed/eval write, that --resume continues a run bit for bit,
# that every bad input ends in one "simile ...:" line (+ an optional "hint:")
# with exit 1 (the job failed) or 2 (bad command line), never a crash or a
# sanitizer report, and the NaN guard. POSIX sh (dash); closes with
# "N passed, N failed" and exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
need_data train-images-idx3-ubyte.gz
make_tmp cli
# hdr_len FILE: a safetensors file's u64 little-endian header length (low 32 bits).
hdr_len() { n=$(od -An -tu4 -N4 "$1" 2>/dev/null | tr -d ' '); echo "${n:-0}"; }
# st_data FILE: the tensor bytes of a safetensors file (after the header).
st_data() { tail -c +$((9 + $(hdr_len "$1"))) "$1"; }
# fsize FILE: its size in bytes, 0 if missing (arithmetic on "" would end the script)
fsize() { if [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi; }

# ------------------------------------------------------------------ 1. tiny data set, train
D=$T/data   # train files gzipped, test files plain: both readers are exercised
mkdir "$D"
if cut_idx "$FMNIST/train-images-idx3-ubyte.gz" "$T/tri" 256 16 784 &&
    cut_idx "$FMNIST/train-labels-idx1-ubyte.gz" "$T/trl" 256 8 1 &&
    cut_idx "$FMNIST/t10k-images-idx3-ubyte.gz" "$D/t10k-images-idx3-ubyte" 128 16 784 &&
    cut_idx "$FMNIST/t10k-labels-idx1-ubyte.gz" "$D/t10k-labels-idx1-ubyte" 128 8 1 &&
    gzip -c "$T/tri" >"$D/train-images-idx3-ubyte.gz" && gzip -c "$T/trl" >"$D/train-labels-idx1-ubyte.gz" &&
    [ "$(fsize "$T/tri")" = $((16 + 256 * 784)) ] && [ "$(fsize "$D/t10k-labels-idx1-ubyte")" = $((8 + 128)) ] &&
    [ "$(od -An -tx1 -N8 "$T/tri" | tr -d ' ')" = 0000080300000100 ]; then
    ok "tiny data set (256 train gz / 128 test plain)"
else
    bad "tiny data set" "could not cut the IDX files from $FMNIST"
    finish
fi

TR="--batch 16 --dim 16 --threads 1 --quiet"
M=$T/m.safetensors
sim train --data "$D" --epochs 2 $TR --max-steps 4 --out "$M"
if expect_ok "train 2 epochs"; then
    if [ ! -s "$M" ]; then bad "train 2 epochs" "no checkpoint '$M'"
    elif [ ! -s "$M.log.jsonl" ]; then bad "train 2 epochs" "no log '$M.log.jsonl'"
    else ok "train 2 epochs"; fi
fi
n=$(wc -l 2>/dev/null <"$M.log.jsonl")
if [ "$n" != 2 ]; then
    bad "train log" "expected 2 lines in $M.log.jsonl, got ${n:-none}"
else
    why=""
    for k in epoch loss train_accuracy val_accuracy images_per_s lr; do
        c=$(grep -cE "^\{.*\"$k\": -?[0-9]" "$M.log.jsonl")
        [ "$c" = 2 ] || why="$why key '$k' with a number in $c of 2 lines;"
    done
    grep -q '"epoch": 1,' "$M.log.jsonl" && grep -q '"epoch": 2,' "$M.log.jsonl" || why="$why epochs are not 1 and 2;"
    if [ -z "$why" ]; then ok "train log: 2 JSON lines with epoch loss train_accuracy val_accuracy images_per_s lr"
    else bad "train log" "$why $(head -n 1 "$M.log.jsonl")"; fi
fi

# progress output (not --quiet, stderr not a terminal): plain lines
sim train --data "$D" --epochs 1 --batch 16 --dim 16 --threads 1 --max-steps 2 --out "$T/p.safetensors"
if expect_ok "train progress"; then
    if grep -q '256 train / 128 test images, 10 classes' "$T/err" && grep -q '^epoch 1/1 done' "$T/err" &&
        ! grep -q "$(printf '\r')" "$T/err"; then
        ok "train progress (plain lines: data summary, epoch done)"
    else
        bad "train progress" "unexpected stderr: $(head -c 300 "$T/err" | tr '\n' '|')"
    fi
fi

# ------------------------------------------------------------------ 2. eval
sim eval --model "$M" --data "$D" --json --threads 1
if expect_ok "eval --json"; then
    why=""
    for k in head_accuracy knn_accuracy precision_at_1 recall_at_1 recall_at_2 recall_at_4 recall_at_8 \
        r_precision mean_average_precision_at_r; do
        grep -qE "\"$k\": (0\.[0-9]+|1\.0+)[,}]" "$T/out" || why="$why $k"
    done
    grep -q '"n_test": 128' "$T/out" && grep -q '"n_train": 256' "$T/out" || why="$why n_test/n_train"
    [ "$(wc -l <"$T/out")" = 1 ] || why="$why (not one line)"
    if [ -z "$why" ]; then ok "eval --json: all metric keys in [0, 1], n_test 128, n_train 256"
    else bad "eval --json" "missing or out of [0, 1]:$why in $(head -c 400 "$T/out")"; fi
fi
sim eval --model "$M" --data "$D" --threads 1
if expect_ok "eval text"; then
    if grep -q '1-NN accuracy' "$T/out" && grep -q 'recall@1/2/4/8' "$T/out" && grep -q 'MAP@R' "$T/out" &&
        grep -q 'test 128 images, train 256' "$T/out"; then ok "eval text"
    else bad "eval text" "unexpected output: $(head -c 300 "$T/out" | tr '\n' '|')"; fi
fi

# ------------------------------------------------------------------ 3. embed
E=$T/e.npy
sim embed --model "$M" --data "$D:test" --out "$E" --labels "$T/l.npy" --threads 1
if expect_ok "embed"; then
    # .npy v1: \x93NUMPY, 2 version bytes, u16 LE header length, header (dict), data
    magic=$(od -An -c -N8 "$E" | tr -d ' ')
    hl=$(od -An -tu1 -j8 -N2 "$E" | awk '{print $1 + 256 * $2}')
    hdr=$(head -c $((10 + hl)) "$E" | tail -c +11)
    size=$(fsize "$E")
    if [ "$magic" != '223NUMPY001\0' ]; then bad "embed .npy" "bad magic '$magic'"
    elif ! printf '%s' "$hdr" | grep -q "'descr': '<f4'"; then bad "embed .npy" "descr is not '<f4': $hdr"
    elif ! printf '%s' "$hdr" | grep -q "'shape': (128, 16)"; then bad "embed .npy" "shape is not (128, 16): $hdr"
    elif [ "$size" != $((10 + hl + 128 * 16 * 4)) ]; then
        bad "embed .npy" "size $size, expected 10 + $hl + 128*16*4 = $((10 + hl + 8192))"
    else ok "embed .npy: '<f4', (128, 16), $size bytes"; fi
    # every row L2-normalised (od prints 16 floats a row with -w64)
    far=$(tail -c 8192 "$E" | od -An -v -w64 -tf4 |
        awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i * $i; if (NF != 16 || s < 0.999 || s > 1.001) n++ }
             END { print n + 0, NR }')
    if [ "$far" = "0 128" ]; then ok "embed rows have unit norm"
    else bad "embed rows have unit norm" "rows off (bad, total): $far"; fi
    if head -c 128 "$T/l.npy" | grep -q "'shape': (128, 1)"; then ok "embed --labels .npy (128, 1)"
    else bad "embed --labels" "header: $(head -c 128 "$T/l.npy")"; fi
fi

# ------------------------------------------------------------------ 4. resume is exact
# A: 2 epochs straight; B: 1 epoch, then --resume to 2. The schedule must not
# depend on --epochs (cosine spans all epochs, so a 1-epoch run has another
# schedule by design): constant, then step with augmentation.
resume_case() { # NAME OPTIONS...
    name=$1; shift
    RS="--data $D $TR --max-steps 3 $*"
    A=$T/ra.safetensors B=$T/rb.safetensors
    rm -f "$A" "$B" "$A.log.jsonl" "$B.log.jsonl"
    sim train $RS --epochs 2 --out "$A"; expect_ok "$name: 2 epochs" || return
    sim train $RS --epochs 1 --out "$B"; expect_ok "$name: 1 epoch" || return
    sim train $RS --resume "$B" --epochs 2 --out "$B"; expect_ok "$name: --resume to 2 epochs" || return
    if [ "$(wc -l 2>/dev/null <"$B.log.jsonl")" != 2 ]; then bad "$name" "the resumed log has $(wc -l 2>/dev/null <"$B.log.jsonl") lines, expected 2"; return; fi
    st_data "$A" >"$T/ra.bin"
    st_data "$B" >"$T/rb.bin"
    if ! cmp -s "$T/ra.bin" "$T/rb.bin"; then
        bad "$name" "tensors differ after resume: $(cmp "$T/ra.bin" "$T/rb.bin" 2>&1 | head -n 1); logs: $(tail -n 1 "$A.log.jsonl" | cut -c 1-60) vs $(tail -n 1 "$B.log.jsonl" | cut -c 1-60)"
    elif cmp -s "$A" "$B"; then ok "$name (whole checkpoints identical)"
    else ok "$name (tensors identical, metadata differs)"; fi
}
resume_case "resume exact, sgd constant lr" --sched constant
resume_case "resume exact, step lr, flip+shift augmentation" --sched step --step-size 2 --flip --shift 2

# ------------------------------------------------------------------ 5. errors
O="--out $T/x.safetensors"
TE="--epochs 1 $TR --max-steps 2 $O"
sim train --data /nonexistent $TE;                 expect_err "--data /nonexistent" 1 "/nonexistent"
mkdir "$T/trunc" "$T/garbage" "$T/missing"
cp "$D"/* "$T/trunc/"; cp "$D"/* "$T/garbage/"; cp "$D"/* "$T/missing/"
rm "$T/trunc/train-images-idx3-ubyte.gz" "$T/garbage/train-images-idx3-ubyte.gz" "$T/missing/t10k-labels-idx1-ubyte"
head -c 100000 "$T/tri" >"$T/trunc/train-images-idx3-ubyte"
printf 'this is not an IDX file, just some text\n' >"$T/garbage/train-images-idx3-ubyte"
sim train --data "$T/trunc" $TE;                   expect_err "--data DIR with a truncated IDX file" 1 "truncated"
mkdir "$T/truncgz"; cp "$D"/* "$T/truncgz/"
head -c 20000 "$D/train-images-idx3-ubyte.gz" >"$T/truncgz/train-images-idx3-ubyte.gz"
sim train --data "$T/truncgz" $TE;                 expect_err "--data DIR with a truncated .gz" 1 "truncated"
sim train --data "$T/garbage" $TE;                 expect_err "--data DIR with a garbage IDX file" 1 "not an IDX"
sim train --data "$T/missing" $TE;                 expect_err "--data DIR with a file missing" 1 "t10k-labels"
sim train --data "$D" $TE --epochs -1;             expect_err "--epochs -1" 2 "--epochs"
sim train --data "$D" $TE --epochs 0;              expect_err "--epochs 0" 2 "--epochs"
sim train --data "$D" $TE --epochs abc;            expect_err "--epochs abc" 2 "--epochs.*abc"
sim train --data "$D" $TE --batch 1;               expect_err "--batch 1" 2 "--batch"
sim train --data "$D" $TE --lr -1;                 expect_err "--lr -1" 2 "--lr"
# a bad --head is a bad command line (2); today it is found after loading the data and exits 1
sim train --data "$D" $TE --head nope;             expect_err "--head nope" "[12]" "nope.*softmax.*normface.*cosface.*arcface"
sim train --data "$D" $TE --sched nope;            expect_err "--sched nope" 2 "--sched"
sim train --data "$D" $TE --bogus;                 expect_err "unknown option" 2 "unknown option '--bogus'"
sim train --data "$D" $TE --epochs;                expect_err "missing value" 2 "--epochs needs a value"
sim train --data "$D" $TE --quiet=1;               expect_err "value for a flag" 2 "--quiet takes no value"
sim train --data "$D" $TE stray;                   expect_err "stray argument" 2 "stray"
sim train --data "$D" $TE --classes 3-1;           expect_err "--classes 3-1" 2 "3-1"
sim nope;                                          expect_err "simile nope" 2 "unknown command 'nope'"
sim eval --data "$D";                              expect_err "eval without --model" 2 "--model"
sim embed --model "$M" --data "$D:test";           expect_err "embed without --out" 2 "--out"
sim embed --model "$M" --data "$D:val" --out "$T/z.npy"; expect_err "embed --data DIR:val" "[12]" "val"
sim eval --model /nonexistent.safetensors --data "$D"; expect_err "--model /nonexistent" 1 "/nonexistent.safetensors"
head -c 4096 /dev/urandom >"$T/random.safetensors"
sim eval --model "$T/random.safetensors" --data "$D"; expect_err "model of random bytes" 1 "not a safetensors"
printf 'hello, I am not a model\n' >"$T/text.safetensors"
sim eval --model "$T/text.safetensors" --data "$D"; expect_err "model of text" 1 "not a safetensors"
: >"$T/empty.safetensors"
sim eval --model "$T/empty.safetensors" --data "$D"; expect_err "empty model file" 1 "not a safetensors"
head -c $(($(fsize "$M") / 2)) "$M" >"$T/half.safetensors"
sim eval --model "$T/half.safetensors" --data "$D"; expect_err "eval of a truncated checkpoint" 1 "truncated"
sim embed --model "$T/half.safetensors" --data "$D:test" --out "$T/z.npy"; expect_err "embed of a truncated checkpoint" 1 "truncated"
sim train --data "$D" $TE --resume "$T/half.safetensors" --epochs 3; expect_err "--resume a truncated checkpoint" 1 "truncated"
# a valid safetensors file with one F32 tensor and no simile metadata: u64 LE
# header length (56 = \070), the JSON header padded with spaces to 56 bytes, 1.0f
{ printf '\070\000\000\000\000\000\000\000'
    printf '%-56s' '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    printf '\000\000\200\077'; } >"$T/other.safetensors"
sim eval --model "$T/other.safetensors" --data "$D"; expect_err "safetensors file that is not a simile model" 1 "not a simile model"
sim train --data "$D" $TE --resume "$T/other.safetensors" --epochs 3; expect_err "--resume a non-simile safetensors" 1 "not a simile model"
sim train --data "$D" $TE --resume "$M" --epochs 2;  expect_err "--resume a finished run" 1 "already trained"
# another architecture: the spec in the metadata says linear 32, the tensors are 16
h=$(hdr_len "$M")
{ head -c 8 "$M"; head -c $((8 + h)) "$M" | tail -c +9 | sed 's/linear 16/linear 32/'; st_data "$M"; } >"$T/tampered.safetensors"
if cmp -s "$M" "$T/tampered.safetensors" || [ "$(fsize "$M")" != "$(fsize "$T/tampered.safetensors")" ]; then
    bad "tampered spec" "could not rewrite 'linear 16' in the metadata of $M"
else
    sim eval --model "$T/tampered.safetensors" --data "$D"
    expect_err "checkpoint whose spec does not fit its tensors" 1 "layers\.[0-9]+\.weight.*(32|16)"
fi
# resuming a 32-d run with --dim 16 must not silently ignore --dim
sim train --data "$D" --epochs 1 --batch 16 --dim 32 --threads 1 --quiet --max-steps 2 --out "$T/m32.safetensors"
if expect_ok "train a 32-d model"; then
    sim train --data "$D" $TE --dim 16 --resume "$T/m32.safetensors" --epochs 2
    if [ "$rc" = 0 ] && ! crash && grep -q 'note:.*dim' "$T/err"; then ok "--resume a 32-d run with --dim 16 (a note says --dim is ignored)"
    elif [ "$rc" = 0 ]; then bad "--resume a 32-d run with --dim 16" "succeeded, ignoring --dim 16 without a word"
    else expect_err "--resume a 32-d run with --dim 16" 1 "m32"; fi
fi
# an unwritable --out: a clear IO error naming the path (after the first epoch)
sim train --data "$D" --epochs 1 $TR --max-steps 2 --out /nonexistent/dir/m.safetensors
expect_err "--out in a missing directory" 1 "/nonexistent/dir/m\.safetensors"
sim train --data "$D" --epochs 1 $TR --max-steps 2 --log "$T/ok.log.jsonl" --out /nonexistent/dir/m.safetensors
expect_err "--out in a missing directory, --log elsewhere" 1 "/nonexistent/dir/m\.safetensors.*directory"
sim embed --model "$M" --data "$D:test" --out /nonexistent/dir/e.npy
expect_err "embed --out in a missing directory" 1 "/nonexistent/dir/e\.npy"
# a full disk, as a file-size limit (ulimit -f 8: 4 or 8 KiB, below the 8.3 KB
# of the embeddings): writes past it fail with EFBIG, which each command
# reports in one line instead of dying by SIGXFSZ; the file it was to replace
# keeps its contents and no partial file is left
limited() { run sh -c 'ulimit -f 8 && exec "$@"' limited "$SIMILE" "$@"; }
cp "$E" "$T/keep.npy"
limited embed --model "$M" --data "$D:test" --out "$E" --threads 1
expect_err "embed under a file-size limit" 1 "e\.npy.*(too large|size limit)" &&
    if cmp -s "$E" "$T/keep.npy" && [ -z "$(ls "$T" | grep -v '^e\.npy$' | grep '^e\.npy')" ]; then
        ok "embed under a file-size limit: the old e.npy is intact, no partial file"
    else bad "embed under a file-size limit" "e.npy changed or a partial file is left: $(ls "$T" | grep '^e\.npy')"; fi
limited train --data "$D" --epochs 1 $TR --max-steps 2 --out "$T/full.safetensors"
expect_err "train under a file-size limit" 1 "full\.safetensors.*(too large|size limit)" &&
    if [ -z "$(ls "$T" | grep '^full\.')" ]; then ok "train under a file-size limit: no partial checkpoint"
    else bad "train under a file-size limit" "left: $(ls "$T" | grep '^full\.')"; fi
# a spec file with an unknown layer, and one with an unknown key
printf 'input 1 28 28\nconv 8 k=3\nfrobnicate 3\nflatten\nlinear 16\n' >"$T/bad.spec"
TS="--epochs 1 --batch 16 --threads 1 --quiet --max-steps 2 $O"   # $TE without --dim
sim train --data "$D" $TS --spec "$T/bad.spec";      expect_err "--spec with an unknown layer" 1 "line 3.*frobnicate"
printf 'input 1 28 28\nconv 8 k=3 q=2\nflatten\nlinear 16\n' >"$T/bad2.spec"
sim train --data "$D" $TS --spec "$T/bad2.spec";     expect_err "--spec with an unknown key" 1 "line 2.*'q'"
sim train --data "$D" $TS --spec "$T/bad2.spec" --dim 64; expect_err "--spec with --dim" 2 "--spec describes the whole network: no --arch, --dim"
sim train --data "$D" $TS --spec "$T/bad2.spec" --arch resnet18; expect_err "--spec with --arch" 2 "--spec describes the whole network"
sim train --data "$D" $TS --spec "$T/none.spec";     expect_err "--spec missing file" 1 "none\.spec"

# help: exit 0, on stdout, listing the options
help_case() { # NAME WORDS... -- ARGS...
    name=$1; shift
    words=""
    while [ "$1" != -- ]; do words="$words $1"; shift; done
    shift
    sim "$@"
    expect_ok "$name" || return
    miss=""
    for w in $words; do grep -qe "$w" "$T/out" || miss="$miss $w"; done
    if [ -n "$miss" ]; then bad "$name" "does not list:$miss"
    elif [ -s "$T/err" ]; then bad "$name" "wrote to stderr: $(first_err)"
    else ok "$name"; fi
}
help_case "simile --help" train embed eval -- --help
help_case "simile train --help" --data --arch --spec --dim --head --epochs --batch --lr --optim --sched \
    --out --log --resume --max-steps --threads --quiet -- train --help
help_case "simile eval --help" --model --data --classes --json --threads -- eval --help
help_case "simile embed --help" --model --data --out --labels --threads -- embed --help
sim
if ! crash && [ "$rc" = 2 ] && grep -q 'usage: simile' "$T/out" "$T/err"; then ok "simile without a command: usage, exit 2"
else bad "simile without a command" "exit $rc, expected 2 with the usage"; fi

# ------------------------------------------------------------------ 6. NaN guard
# SGD at lr 1000 with the (unnormalised) softmax head overflows within two
# epochs of 4 steps; the margin heads stay finite (normalised weights and
# embeddings), and --lr above 1000 is refused by the command line.
sim train --data "$D" --epochs 3 $TR --max-steps 4 --sched constant --head softmax --lr 1000 --out "$T/nan.safetensors"
expect_err "NaN guard (softmax, sgd, lr 1000)" 1 "(nan|inf).*epoch [0-9]+, step [0-9]+"
sim train --data "$D" $TE --lr 1e30;                 expect_err "--lr 1e30 refused" 2 "--lr"

finish
