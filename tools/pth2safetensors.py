#!/usr/bin/python3
"""pth2safetensors.py - a PyTorch state_dict as a safetensors file, for `simile import`.

Run with Debian's interpreter, which has python3-torch and python3-torchvision
(torch 1.13, torchvision 0.14):

    /usr/bin/python3 tools/pth2safetensors.py IN.pth OUT.safetensors
    /usr/bin/python3 tools/pth2safetensors.py --random --arch resnet18 OUT.safetensors [--seed S]
        [--input X.npy --reference Y.npy --size 64 --batch 2 [--classes K]]

The first form converts a saved state_dict (torch.save(model.state_dict()), or
a checkpoint dict holding it under 'state_dict' or 'model'); tensors keep
their dtype (simile imports F32; num_batches_tracked, I64, is skipped there).
The second writes torchvision's model (resnet18 resnet34 resnet50
mobilenet-v2) with random weights and non-trivial batch-norm statistics
(running_mean ~ N(0, 0.1), running_var ~ U(0.5, 2), weight ~ U(0.5, 1.5),
bias ~ N(0, 0.1)), so that a test sees every tensor land in its place; with
--input and --reference also a random float32 input (N, 3, S, S) and
PyTorch's eval-mode output (N, K) for it, both as .npy, for
tests/test_import.sh to compare with `simile embed --input X --raw 1`.

safetensors (https://github.com/huggingface/safetensors, "Format") is written
by hand, the safetensors package not being in Debian 12: a u64 little-endian
header length N, N bytes of JSON ({"name": {"dtype", "shape",
"data_offsets": [begin, end]}, "__metadata__": {...}}, padded with spaces so
the data starts at a multiple of 8), then the tensors' bytes back to back,
largest element type first.
"""
import argparse
import json
import struct
import sys

import torch

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
          torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
          torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
ARCHS = {"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
         "mobilenet-v2": "mobilenet_v2"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> torch.Tensor (any device/layout; written contiguous, little-endian)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    # largest element first, as the reference writer does, so every tensor is aligned for its type
    for name, t in sorted(tensors.items(), key=lambda kv: -kv[1].element_size()):
        if t.dtype not in DTYPES:
            sys.exit(f"pth2safetensors: tensor '{name}' has dtype {t.dtype}, which safetensors cannot hold here")
        # bfloat16 has no numpy dtype: its bytes go through int16
        t = t.detach().cpu().contiguous()
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_state_dict(path):
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        sys.exit(f"pth2safetensors: '{path}' holds no state_dict (a dict of tensors, or one under "
                 "'state_dict' or 'model')")
    return obj


def random_model(arch, seed, classes):
    import torchvision
    torch.manual_seed(seed)
    model = getattr(torchvision.models, ARCHS[arch])(weights=None, num_classes=classes)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                mod.running_mean.normal_(0.0, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0.0, 0.1)
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="IN.pth OUT.safetensors, or OUT.safetensors with --random")
    ap.add_argument("--random", action="store_true", help="torchvision's --arch with random weights")
    ap.add_argument("--arch", choices=sorted(ARCHS), help="architecture for --random")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--input", help="--random: write a random float32 input (N, 3, S, S) here (.npy)")
    ap.add_argument("--reference", help="--random: write PyTorch's eval-mode output (N, K) here (.npy)")
    ap.add_argument("--classes", type=int, default=1000, help="--random: classifier outputs K (default 1000)")
    ap.add_argument("--size", type=int, default=64, help="input size S (default 64)")
    ap.add_argument("--batch", type=int, default=2, help="input images N (default 2)")
    a = ap.parse_args()
    if a.random:
        if len(a.paths) != 1 or not a.arch:
            ap.error("--random takes --arch and one output path")
        if bool(a.input) != bool(a.reference):
            ap.error("--input and --reference go together")
        model = random_model(a.arch, a.seed, a.classes)
        write_safetensors(a.paths[0], model.state_dict(), {"format": "pt", "arch": a.arch})
        if a.input:
            import numpy as np
            g = torch.Generator().manual_seed(a.seed + 1)
            x = torch.randn(a.batch, 3, a.size, a.size, generator=g)
            with torch.no_grad():
                y = model(x)
            np.save(a.input, x.numpy().astype("<f4"))
            np.save(a.reference, y.numpy().astype("<f4"))
    else:
        if len(a.paths) != 2 or a.input or a.reference:
            ap.error("give IN.pth OUT.safetensors (or --random)")
        write_safetensors(a.paths[1], load_state_dict(a.paths[0]), {"format": "pt"})


if __name__ == "__main__":
    main()
