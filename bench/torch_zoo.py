#!/usr/bin/python3
"""torch_zoo.py - PyTorch's side of the zoo benchmark (bench/bench_zoo.c is simile's).

Measures one torchvision backbone (resnet18, resnet34, resnet50, mobilenet-v2;
torchvision 0.14, random initialisation) at S x S pixels, 3 channels, with its
classifier (fc / classifier) replaced by the embedding
nn.Sequential(nn.Linear(in, 512), nn.BatchNorm1d(512)), exactly as simile's
zoo builds it with dim 512. One process measures one phase (--phase), so that
each peak RSS is that phase's alone:

  train  ArcFace head (bench/torch_ref.py's: s=30, m=0.5) over 1000 classes,
         SGD lr 0.03, Nesterov momentum 0.9, weight decay 2e-3 (simile's
         defaults), batch 32: images/s over --steps timed steps (zero_grad,
         forward, head, backward, optimizer step) after 2 untimed ones;
  infer  the backbone alone in eval mode under torch.no_grad(): embedding
         images/s at batch 64 (L2-normalised, as sm_model_embed returns them)
         over --steps batches after 1, then batch-1 latency, median of up to
         50 after 5.

A timed loop also stops once it has run --seconds (and at least 2 steps); the
JSON says how many ran. Inputs are one fixed batch of uniform [-1, 1) values
and random labels, made before timing. Tensors are NCHW (contiguous), as a
plain torchvision model receives them. Peak RSS is VmHWM of /proc/self/status
(the interpreter and libtorch included), read at the end; base_rss_mib is
VmRSS once the model, optimizer and inputs exist, before the first step.
Prints one JSON line.

Run it with Debian's python (/usr/bin/python3: python3-torch 1.13 and
python3-torchvision 0.14); the python3 on PATH may be a pyenv without torch.

Example
  /usr/bin/python3 bench/torch_zoo.py --model resnet18 --size 64 --phase train --threads 2
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import ArcFace, train_step  # noqa: E402  (the mnist-net bench's head and step)

DIM, CLASSES, TRAIN_BATCH, EMBED_BATCH, MAX_LAT = 512, 1000, 32, 64, 50


def status_mib(key):
    """VmHWM / VmRSS of this process in MiB (-1 if unreadable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return -1.0


def backbone(name):
    """torchvision's model with simile's embedding in place of its classifier."""
    if name == "mobilenet-v2":
        net = torchvision.models.mobilenet_v2(num_classes=CLASSES)
        net.classifier = nn.Sequential(nn.Linear(net.last_channel, DIM), nn.BatchNorm1d(DIM))
    elif name in ("resnet18", "resnet34", "resnet50"):
        net = getattr(torchvision.models, name)(num_classes=CLASSES)
        net.fc = nn.Sequential(nn.Linear(net.fc.in_features, DIM), nn.BatchNorm1d(DIM))
    else:
        sys.exit(f"torch_zoo.py: unknown model '{name}' (resnet18 resnet34 resnet50 mobilenet-v2)")
    return net


def images(n, size, g):
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def bench_train(a, g):
    net, head = backbone(a.model), ArcFace(DIM, CLASSES)
    opt = torch.optim.SGD(list(net.parameters()) + list(head.parameters()), lr=0.03,
                          momentum=0.9, weight_decay=2e-3, nesterov=True)
    x = images(TRAIN_BATCH, a.size, g)
    y = torch.randint(0, CLASSES, (TRAIN_BATCH,), generator=g)
    base = status_mib("VmRSS")
    net.train()
    for _ in range(2):
        train_step(net, head, opt, x, y)
    done, t0, dt = 0, time.perf_counter(), 0.0
    while done < a.steps:
        train_step(net, head, opt, x, y)
        done += 1
        dt = time.perf_counter() - t0
        if done >= 2 and dt >= a.seconds:
            break
    return {"train_images_per_s": round(done * TRAIN_BATCH / dt, 2), "train_steps": done}, base


@torch.no_grad()
def bench_infer(a, g):
    net = backbone(a.model).eval()
    x = images(EMBED_BATCH, a.size, g)
    base = status_mib("VmRSS")
    F.normalize(net(x))
    done, t0, dt = 0, time.perf_counter(), 0.0
    while done < a.steps:
        F.normalize(net(x))
        done += 1
        dt = time.perf_counter() - t0
        if done >= 2 and dt >= a.seconds:
            break
    embed_ips = done * EMBED_BATCH / dt
    for i in range(5):
        F.normalize(net(x[i:i + 1]))
    lat, t0 = [], time.perf_counter()
    while len(lat) < MAX_LAT and (len(lat) < 5 or time.perf_counter() - t0 < a.seconds):
        i = len(lat) % EMBED_BATCH
        t = time.perf_counter()
        F.normalize(net(x[i:i + 1]))
        lat.append(time.perf_counter() - t)
    return {"embed_images_per_s": round(embed_ips, 2), "embed_batches": done,
            "latency_ms": round(statistics.median(lat) * 1e3, 3), "latency_runs": len(lat)}, base


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64, help="input height and width")
    p.add_argument("--phase", choices=("train", "infer"), default="train")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores of nproc)")
    p.add_argument("--steps", type=int, default=10, help="timed steps / batches")
    p.add_argument("--seconds", type=float, default=30.0, help="time cap of each timed loop")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    a.steps = max(a.steps, 2)
    torch.set_num_threads(a.threads if a.threads > 0 else len(os.sched_getaffinity(0)))
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    res, base = (bench_train if a.phase == "train" else bench_infer)(a, g)
    print(json.dumps({"side": "pytorch", "model": a.model, "size": a.size, "phase": a.phase, **res,
                      "base_rss_mib": round(base, 1), "peak_rss_mib": round(status_mib("VmHWM"), 1),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
