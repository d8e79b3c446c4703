#!/bin/sh
# test_import.sh - `simile import` (torchvision weights), `simile embed --input`,
# and the zoo's flags of `simile train`.
#
#   SIMILE=build/simile sh tests/test_import.sh      (make test runs it with the
#   SIMILE=build/asan/simile sh tests/test_import.sh  plain and the ASan binary)
#
# Always (python3's standard library writes the files): a resnet18 state_dict
# with torchvision's names, zero convolutions and a patterned fc.bias, whose
# logits must then be fc.bias exactly; the same file with one tensor
# mis-shaped, one missing, one extra, one of another dtype; wrong flags; a
# missing file; --input of another shape. With Fashion-MNIST: resnet18 trained
# on 1x28x28 images resized to --size 32. With Debian's python3-torchvision:
# resnet18, resnet34, resnet50 and mobilenet-v2 with random weights and batch-norm statistics
# (tools/pth2safetensors.py --random), imported with --head none and run on a
# random 2x3x64x64 batch, compared with PyTorch's eval-mode logits (rows
# L2-normalised: max |diff| <= 1e-4; the raw relative error is printed), and a
# .pth checkpoint converted by the tool. POSIX sh; closes with
# "N passed, N failed" and exits 1 on any failure.

. "$(dirname "$0")/lib.sh"
TOOL=$(cd "$(dirname "$0")/.." && pwd)/tools/pth2safetensors.py
if [ ! -x "$SIMILE" ]; then bad "setup" "no executable '$SIMILE' (make build/simile, or set SIMILE)"; finish; fi
PY=$(command -v python3 || echo /usr/bin/python3)
if ! "$PY" -c 'import json, struct' 2>/dev/null; then bad "setup" "no python3 to write the test files"; finish; fi
make_tmp import

# ------------------------------------------------------------------ files, python3 stdlib only
cat >"$T/mk.py" <<'EOF'
"""mk.py resnet18 OUT [drop=NAME] [shape=NAME:a,b] [add=NAME:a,b] [f16=NAME]  |  mk.py npy OUT n,c,h,w
A resnet18 state_dict with torchvision's names as safetensors: convolutions 0,
batch norms weight 1, bias 0, mean 0, var 1 (num_batches_tracked I64), fc.weight 0,
fc.bias[k] = (k % 7 - 3) / 4; or a float32 .npy of zeros."""
import json, struct, sys

def resnet18():
    t = [("conv1.weight", [64, 3, 7, 7])]
    def bn(p, c):
        t.extend([(p + ".weight", [c]), (p + ".bias", [c]), (p + ".running_mean", [c]),
                  (p + ".running_var", [c]), (p + ".num_batches_tracked", [])])
    bn("bn1", 64)
    inp = 64
    for L in range(4):
        planes = 64 << L
        for b in range(2):
            p = "layer%d.%d" % (L + 1, b)
            t.append((p + ".conv1.weight", [planes, inp, 3, 3])); bn(p + ".bn1", planes)
            t.append((p + ".conv2.weight", [planes, planes, 3, 3])); bn(p + ".bn2", planes)
            if b == 0 and L > 0:
                t.append((p + ".downsample.0.weight", [planes, inp, 1, 1])); bn(p + ".downsample.1", planes)
            inp = planes
    return t + [("fc.weight", [1000, 512]), ("fc.bias", [1000])]

def numel(s):
    n = 1
    for d in s: n *= d
    return n

def data(name, shape, dtype):
    n = numel(shape)
    if name.endswith("num_batches_tracked"): return struct.pack("<q", 7)
    if dtype == "F16": return bytes(2 * n)
    if name.endswith(".running_var") or (name.endswith(".weight") and len(shape) == 1):
        return struct.pack("<f", 1.0) * n
    if name == "fc.bias": return struct.pack("<%df" % n, *[(k % 7 - 3) / 4 for k in range(n)])
    return bytes(4 * n)

def write_st(path, tensors):   # (name, dtype, shape); 8-byte elements first
    tensors.sort(key=lambda x: x[1] != "I64")
    hdr, blobs, off = {}, [], 0
    for name, dt, shape in tensors:
        b = data(name, shape, dt)
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

if sys.argv[1] == "npy":
    shape = [int(x) for x in sys.argv[3].split(",")]
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % ", ".join(map(str, shape))
    d += " " * (-(10 + len(d) + 1) % 64) + "\n"
    with open(sys.argv[2], "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode() + bytes(4 * numel(shape)))
    sys.exit(0)
t = [(n, "I64" if n.endswith("tracked") else "F32", s) for n, s in resnet18()]
for a in sys.argv[3:]:
    k, v = a.split("=", 1)
    name, _, dims = v.partition(":")
    shape = [int(x) for x in dims.split(",")] if dims else []
    if k == "drop": t = [x for x in t if x[0] != name]
    elif k == "shape": t = [(n, d, shape if n == name else s) for n, d, s in t]
    elif k == "add": t.append((name, "F32", shape))
    elif k == "f16": t = [(n, "F16" if n == name else d, s) for n, d, s in t]
write_st(sys.argv[2], t)
EOF
# npy_check FILE ROWS COLS MODE: "bias" rows equal (k % 7 - 3) / 4, "unit" rows of norm 1
npy_check() {
    "$PY" - "$@" <<'EOF'
import ast, math, struct, sys
path, n, d, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
b = open(path, "rb").read()
hl = struct.unpack("<H", b[8:10])[0]
hdr = ast.literal_eval(b[10:10 + hl].decode())
if hdr["descr"] != "<f4" or hdr["shape"] != (n, d):
    sys.exit("header %s, expected '<f4' (%d, %d)" % (hdr, n, d))
x = struct.unpack("<%df" % (n * d), b[10 + hl:])
worst = 0.0
for i in range(n):
    row = x[i * d:(i + 1) * d]
    if mode == "bias": worst = max(worst, max(abs(v - (k % 7 - 3) / 4) for k, v in enumerate(row)))
    else: worst = max(worst, abs(math.sqrt(sum(v * v for v in row)) - 1))
print("%.3g" % worst)
sys.exit(0 if worst <= 1e-6 else 1)
EOF
}

R=$T/r18.safetensors
"$PY" "$T/mk.py" resnet18 "$R" && "$PY" "$T/mk.py" npy "$T/x64.npy" 2,3,64,64 && "$PY" "$T/mk.py" npy "$T/x32.npy" 2,3,32,32 ||
    { bad "setup" "mk.py could not write the test files"; finish; }

# ------------------------------------------------------------------ 1. import, the stdlib resnet18
sim import --arch resnet18 --from "$R" --out "$T/m.safetensors" --size 64
if expect_ok "import resnet18 --head none"; then
    if grep -q 'copied 102 tensors (11699112 values)' "$T/err" && grep -q 'classifier of 1000 classes' "$T/err" &&
        [ -s "$T/m.safetensors" ]; then ok "import resnet18: $(first_err | cut -c 1-110)..."
    else bad "import resnet18" "unexpected summary: $(first_err)"; fi
fi
sim embed --model "$T/m.safetensors" --input "$T/x64.npy" --raw 1 --out "$T/raw.npy" --threads 1
if expect_ok "embed --input --raw 1"; then
    if w=$(npy_check "$T/raw.npy" 2 1000 bias 2>&1); then ok "embed --input --raw 1: (2, 1000) logits are fc.bias (max diff $w)"
    else bad "embed --input --raw 1" "$w"; fi
fi
sim import --arch resnet18 --from "$R" --out "$T/h.safetensors" --size 32 --head arcface --classes 10 --dim 16
if expect_ok "import --head arcface"; then
    if grep -q 'copied 100 tensors' "$T/err" && grep -q 'fresh 16-d embedding and arcface head for 10 classes' "$T/err"; then
        ok "import --head arcface: classifier left out, fresh embedding and head"
    else bad "import --head arcface" "unexpected summary: $(first_err)"; fi
fi
sim embed --model "$T/h.safetensors" --input "$T/x32.npy" --out "$T/eh.npy" --threads 1
if expect_ok "embed --input, arcface import"; then
    if w=$(npy_check "$T/eh.npy" 2 16 unit 2>&1); then ok "embed --input of the arcface import: (2, 16) unit rows"
    else bad "embed --input, arcface import" "$w"; fi
fi

# ------------------------------------------------------------------ 2. import errors
sim import --arch resnet18 --from "$T/nope.safetensors" --out "$T/x.safetensors"
expect_err "import: missing file" 1 "nope\.safetensors"
printf 'not a safetensors file\n' >"$T/text.safetensors"
sim import --arch resnet18 --from "$T/text.safetensors" --out "$T/x.safetensors"
expect_err "import: not safetensors" 1 "text\.safetensors"
sim import --arch vgg16 --from "$R" --out "$T/x.safetensors";   expect_err "import: unknown --arch" 2 "--arch.*vgg16"
sim import --arch mnist-net --from "$R" --out "$T/x.safetensors"; expect_err "import: mnist-net has no torchvision weights" 2 "--arch"
sim import --from "$R" --out "$T/x.safetensors";                 expect_err "import: no --arch" 2 "required"
sim import --arch mobilenet-v2 --from "$R" --out "$T/x.safetensors"
expect_err "import: a resnet18 file as mobilenet-v2" 1 "classifier\.1\.weight"
sim import --arch resnet18 --from "$R" --out "$T/x.safetensors" --dim 64; expect_err "import: --dim without a head" 2 "--dim"
sim import --arch resnet18 --from "$R" --out "$T/x.safetensors" --head arcface; expect_err "import: a head without --classes" 2 "--classes"
sim import --arch resnet18 --from "$R" --out "$T/x.safetensors" --head bogus; expect_err "import: unknown head" 2 "bogus"
sim import --arch resnet18 --from "$R" --out "$T/x.safetensors" --classes 10; expect_err "import: --classes against fc.weight" 1 "1000"
sim import --arch resnet18 --from "$R" --out "$T/x.safetensors" --size 16; expect_err "import: --size 16" 1 "16"
# bad_file NAME REGEX MK-ARGS...: a variant of the resnet18 file, refused with REGEX
bad_file() {
    name=$1 re=$2; shift 2
    if "$PY" "$T/mk.py" resnet18 "$T/bad.safetensors" "$@"; then
        sim import --arch resnet18 --from "$T/bad.safetensors" --out "$T/x.safetensors"
        expect_err "$name" 1 "$re"
    else bad "$name" "mk.py failed"; fi
}
bad_file "import: a mis-shaped tensor" "layer2\.0\.downsample\.0\.weight.*\[128, 64, 3, 3\].*\[128, 64, 1, 1\]" \
    shape=layer2.0.downsample.0.weight:128,64,3,3
bad_file "import: a missing tensor" "no tensor 'layer3\.1\.bn2\.running_var'.*\[256\]" drop=layer3.1.bn2.running_var
bad_file "import: an F16 tensor" "fc\.bias.*F16" f16=fc.bias
bad_file "import: an extra tensor" "'layer5\.0\.conv1\.weight' is not part of resnet18" add=layer5.0.conv1.weight:8,8
sim import --arch resnet18 --from "$T/bad.safetensors" --out "$T/x.safetensors" --strict 0
if expect_ok "import --strict 0"; then
    if grep -q 'left out 1' "$T/err"; then ok "import --strict 0 leaves the extra tensor out"
    else bad "import --strict 0" "no 'left out 1': $(first_err)"; fi
fi
left=$(ls "$T" | grep '\.tmp\.' | head -n 1)
if [ -n "$left" ]; then bad "import: no temp files left" "found $left"; else ok "import: no temp files left"; fi

# ------------------------------------------------------------------ 3. embed --input errors
sim embed --model "$T/m.safetensors" --input "$T/x32.npy" --out "$T/x.npy"
expect_err "embed --input of another size" 1 "\(2, 3, 32, 32\).*\(N, 3, 64, 64\)"
sim embed --model "$T/m.safetensors" --input "$T/raw.npy" --out "$T/x.npy"
expect_err "embed --input of a 2-D array" 1 "\(2, 1000\).*not \(N, C, H, W\)"
sim embed --model "$T/m.safetensors" --input "$T/none.npy" --out "$T/x.npy"; expect_err "embed --input missing" 1 "none\.npy"
sim embed --model "$T/m.safetensors" --input "$R" --out "$T/x.npy";         expect_err "embed --input not .npy" 1 "not a \.npy"
head -c 2000 "$T/x64.npy" >"$T/cut.npy"
sim embed --model "$T/m.safetensors" --input "$T/cut.npy" --out "$T/x.npy";  expect_err "embed --input truncated" 1 "truncated"
sim embed --model "$T/m.safetensors" --raw 1 --out "$T/x.npy";              expect_err "embed --raw without --input" 2 "--raw"
sim embed --model "$T/m.safetensors" --input "$T/x64.npy" --data fashion-mnist --out "$T/x.npy"
expect_err "embed --input with --data" 2 "--input"

# ------------------------------------------------------------------ 4. train a zoo model on resized Fashion-MNIST
if [ -r "$FMNIST/train-images-idx3-ubyte.gz" ]; then
    D=$T/data
    mkdir "$D"
    cut_idx "$FMNIST/train-images-idx3-ubyte.gz" "$D/train-images-idx3-ubyte" 64 16 784 &&
        cut_idx "$FMNIST/train-labels-idx1-ubyte.gz" "$D/train-labels-idx1-ubyte" 64 8 1 &&
        cut_idx "$FMNIST/t10k-images-idx3-ubyte.gz" "$D/t10k-images-idx3-ubyte" 16 16 784 &&
        cut_idx "$FMNIST/t10k-labels-idx1-ubyte.gz" "$D/t10k-labels-idx1-ubyte" 16 8 1 || bad "tiny data set" "cut_idx failed"
    TR="--data $D --batch 8 --dim 16 --threads 1 --max-steps 2"
    sim train $TR --arch resnet18 --channels 1 --size 32 --epochs 1 --out "$T/z.safetensors"
    if expect_ok "train --arch resnet18 --channels 1 --size 32"; then
        if grep -q 'images resized to 1x32x32' "$T/err"; then ok "train --arch resnet18 --channels 1 --size 32: images resized to 1x32x32"
        else bad "train --arch resnet18 --size 32" "no 'images resized' in: $(first_err)"; fi
    fi
    sim train $TR --arch resnet18 --epochs 2 --resume "$T/z.safetensors" --out "$T/z.safetensors" --quiet
    expect_ok "train --arch resnet18 --resume (sizes from the checkpoint)" && ok "train --arch resnet18 --resume (sizes from the checkpoint)"
    sim embed --model "$T/z.safetensors" --data "$D:test" --out "$T/z.npy" --threads 1
    if expect_ok "embed --data, a 32-px resnet18"; then
        if w=$(npy_check "$T/z.npy" 16 16 unit 2>&1); then ok "embed --data of a 32-px resnet18: (16, 16) unit rows"
        else bad "embed --data, a 32-px resnet18" "$w"; fi
    fi
    # fine-tuning: stem and layer1 frozen, the rest at lr x 0.1
    TF="--data $D --batch 8 --threads 1 --max-steps 2 --epochs 1"
    # (z.safetensors, trained above: the import's convolutions are 0 and would get no gradient)
    sim train $TF --init "$T/z.safetensors" --freeze 2 --backbone-lr 0.1 --bn-eval --out "$T/f.safetensors"
    if expect_ok "train --init --freeze 2 --backbone-lr 0.1 --bn-eval"; then
        if grep -q '2 of 5 stages frozen, backbone lr x0.1, batch norms in eval mode' "$T/err"; then ok "train --init: the fine-tuning line"
        else bad "train --init" "no fine-tuning line in: $(first_err)"; fi
        # TENSOR=same|changed ...: compared between the start and the fine-tuned model
        run "$PY" - "$T/z.safetensors" "$T/f.safetensors" conv1.weight=same bn1.running_mean=same \
            layer1.1.conv2.weight=same layer2.0.conv1.weight=changed layer4.1.bn2.running_var=same \
            embedding.0.weight=changed head.weight=changed <<'EOF2'
import json, struct, sys
def tensor(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        a, b = h[name]["data_offsets"]
        f.seek(8 + n + a)
        return f.read(b - a)
bad = [arg for arg in sys.argv[3:] for name, want in [arg.split("=")]
       if (tensor(sys.argv[1], name) == tensor(sys.argv[2], name)) != (want == "same")]
sys.exit("not as expected: " + " ".join(bad) if bad else 0)
EOF2
        if [ "$rc" = 0 ]; then ok "train --init --freeze 2 --bn-eval: stem, layer1, running statistics kept; layer2, embedding, head trained"
        else bad "train --init --freeze 2" "$(cat "$T/err")"; fi
    fi
    sim train $TF --init "$T/z.safetensors" --winograd --quiet --out "$T/w.safetensors"
    if expect_ok "train --init --winograd"; then
        if head -c 8192 "$T/w.safetensors" | grep -aq 'winograd[\\"]*:true'; then ok "train --winograd: recorded in the checkpoint's train.config"
        else bad "train --winograd" "no winograd:true in the checkpoint's train.config"; fi
    fi
    sim train $TF --init "$T/h.safetensors" --arch resnet18 --out "$T/y.safetensors"
    expect_err "train --init with --arch" 2 "--init trains the model it names as it is"
    sim train $TF --init "$T/h.safetensors" --resume "$T/z.safetensors" --out "$T/y.safetensors"
    expect_err "train --init with --resume" 2 "give one of them"
    sim train $TF --init "$T/h.safetensors" --freeze 6 --quiet --out "$T/y.safetensors"
    expect_err "train --freeze 6" 1 "--freeze 6: cannot freeze 6 stages: the model has 5 \(0 to 5 can be frozen\)$"
    sim train $TF --init "$T/h.safetensors" --backbone-lr 0 --out "$T/y.safetensors"
    expect_err "train --backbone-lr 0" 2 "--freeze"
    sim train $TF --init "$T/m.safetensors" --out "$T/y.safetensors"
    expect_err "train --init of a model without a head" 1 "has no head to train"
    sim train $TR --arch resnet18 --epochs 1 --out "$T/y.safetensors"
    expect_err "train --arch resnet18 on 28-px images" 1 "32\.\.4096.*3x28x28"
    sim train $TR --arch mnist-net --size 32 --epochs 1 --out "$T/y.safetensors"
    expect_err "train --arch mnist-net --size 32" 1 "mnist-net.*28"
    sim train $TR --size 32 --height 32 --width 32 --arch resnet18 --out "$T/y.safetensors"
    expect_err "train --size with --height" 2 "--size"
else
    echo "skip zoo training: no Fashion-MNIST in '$FMNIST'"
fi

# ------------------------------------------------------------------ 5. against PyTorch
TPY=${TORCH_PYTHON:-/usr/bin/python3}   # Debian's, with python3-torchvision
if "$TPY" -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("torch", "torchvision", "numpy")))' 2>/dev/null; then
    for arch in resnet18 resnet34 resnet50 mobilenet-v2; do
        W=$T/$arch.safetensors
        run "$TPY" "$TOOL" --random --arch "$arch" "$W" --input "$T/$arch.x.npy" --reference "$T/$arch.y.npy" \
            --size 64 --batch 2 --seed 5
        if [ "$rc" != 0 ]; then
            bad "$arch vs PyTorch" "pth2safetensors.py --random failed: $(tail -n 1 "$T/err")"; continue
        fi
        sim import --arch "$arch" --from "$W" --out "$T/$arch.m" --size 64
        expect_ok "import $arch (random torchvision weights)" || continue
        sim embed --model "$T/$arch.m" --input "$T/$arch.x.npy" --raw 1 --out "$T/$arch.raw.npy" --threads 2
        expect_ok "embed --raw 1 $arch" || continue
        # the normalised output too, for the small network (each resnet18 load is seconds under ASan)
        E=
        if [ "$arch" = mobilenet-v2 ]; then
            E=$T/$arch.e.npy
            sim embed --model "$T/$arch.m" --input "$T/$arch.x.npy" --out "$E" --threads 2
            expect_ok "embed $arch" || continue
        fi
        # REF RAW [EMB]: rows L2-normalised within 1e-4 of PyTorch's; raw error relative to each row's max
        run "$TPY" - "$T/$arch.y.npy" "$T/$arch.raw.npy" $E <<'EOF'
import sys
import numpy as np
ref, raw, *emb = (np.load(p).astype(np.float64) for p in sys.argv[1:])
unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
if any(a.shape != ref.shape for a in [raw] + emb):
    sys.exit("shapes %s, PyTorch %s" % ([a.shape for a in [raw] + emb], ref.shape))
d_norm = np.abs(unit(raw) - unit(ref)).max()
d_emb = np.abs(emb[0] - unit(ref)).max() if emb else 0.0
rel = (np.abs(raw - ref).max(axis=1) / np.abs(ref).max(axis=1)).max()
print("%s: L2-normalised max |diff| %.2e%s, raw max rel err %.2e" % (raw.shape, d_norm,
      " (embed %.2e)" % d_emb if emb else "", rel))
sys.exit(0 if d_norm <= 1e-4 and d_emb <= 1e-4 else 1)
EOF
        if [ "$rc" = 0 ]; then ok "$arch = PyTorch $(cat "$T/out")"
        else bad "$arch vs PyTorch" "$(cat "$T/out" "$T/err" | tr '\n' ' ')"; fi
    done
    # a .pth checkpoint dict, converted by the tool
    run "$TPY" -c "import sys, torch, torchvision; torch.manual_seed(2)
torch.save({'epoch': 3, 'state_dict': torchvision.models.mobilenet_v2().state_dict()}, sys.argv[1])" "$T/mn.pth"
    if [ "$rc" = 0 ] && run "$TPY" "$TOOL" "$T/mn.pth" "$T/mn.safetensors" && [ "$rc" = 0 ]; then
        sim import --arch mobilenet-v2 --from "$T/mn.safetensors" --out "$T/mn.m" --size 32
        if expect_ok "import a converted .pth"; then
            if grep -q 'copied 262 tensors' "$T/err"; then ok "pth2safetensors.py IN.pth OUT + import mobilenet-v2 (262 tensors)"
            else bad "import a converted .pth" "$(first_err)"; fi
        fi
    else
        bad "pth2safetensors.py IN.pth OUT" "$(tail -n 2 "$T/err" | tr '\n' ' ')"
    fi
else
    echo "skip the PyTorch comparison: $TPY cannot import torch, torchvision and numpy (apt-get install python3-torchvision)"
fi

finish
