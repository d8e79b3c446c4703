#!/usr/bin/python3
"""torch_ref.py - the PyTorch reference simile is measured against.

Trains the reference network ("mnist-net" + ArcFace) on Fashion-MNIST with
PyTorch and measures it, so that simile's training, embedding speed and
retrieval quality have a number to beat. Run it with Debian's python
(`/usr/bin/python3`, python3-torch 1.13 with oneDNN); the `python3` on PATH may
be a pyenv without torch.

Data: the IDX files of the Debian package dataset-fashion-mnist,
/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz,
read with gzip + numpy (no torchvision). Inputs are (x/255 - 0.2860) / 0.3530
(Fashion-MNIST's training mean and standard deviation).

Network (embedding size D, --dim, default 512), one nn.Sequential named
`layers` so that state_dict keys read layers.0.weight, layers.1.weight, ...:
    3 blocks of [Conv2d 3x3 pad 1 (bias) -> BatchNorm2d -> ReLU] x 2 -> MaxPool2d(2),
    channels 16, 32, 64 (28 -> 14 -> 7 -> 3), then BatchNorm2d(64), Dropout2d(0.5),
    Flatten, Linear(576, D), BatchNorm1d(D).
Head: ArcFace (Deng et al. 2019), s = 30, m = 0.5, class weights `head.weight`
(C, D), xavier-uniform init. cos = <x/|x|, w/|w|>; the target logit is
cos(theta + m) while theta + m <= pi, else the fallback cos - m*sin(m) (insightface's
`th`/`mm`: phi = where(cos > cos(pi - m), cos(theta + m), cos - sin(pi - m)*m));
logits = s * (phi for the target class, cos otherwise); cross-entropy.
sin(theta) = sqrt(clamp(1 - cos^2, 0, 1)) as in insightface.

Training: SGD with simile's defaults, lr 0.03, Nesterov momentum 0.9, weight
decay 2e-3 on every parameter (--lr/--momentum/--wd/--no-nesterov: the common
recipe lr 0.1, momentum 0.9, wd 5e-4 is `--lr 0.1 --wd 5e-4 --no-nesterov`),
batch 128, shuffled each epoch (the last, smaller batch is kept), cosine
annealing stepped per step with T_max = all steps of the run.
"Train acc" is argmax of the margin-free cosines (what prediction uses).

Modes
  --mode train --epochs N [--eval]
      per epoch: loss, train acc, images/s; at the end the head's test
      accuracy; with --eval the retrieval metrics on L2-normalised embeddings:
      precision@1, MAP@R, R-precision, Recall@1/2/4/8 leave-one-out on the test
      split, and 1-NN accuracy test -> train. Definitions as simile's
      include/simile.h, "evaluation" (pytorch-metric-learning's, Recall@K in the deep metric
      learning sense; ranking by similarity descending, then index ascending;
      queries with no other same-label item are left out of the retrieval means).
  --mode bench
      (a) training images/s over --bench-steps timed steps after --warmup steps,
      (b) embedding images/s at batch 256, eval mode, torch.no_grad(),
      (c) batch-1 embedding latency, median of 200,
      (d) peak RSS (getrusage ru_maxrss),
      printed as one JSON line: train_images_per_s, embed_images_per_s,
      latency_ms, peak_rss_mib, threads.

Examples
  /usr/bin/python3 bench/torch_ref.py --mode bench --threads 2
  /usr/bin/python3 bench/torch_ref.py --mode train --epochs 1 --threads 2 --eval
"""
import argparse
import gzip
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530


# ------------------------------------------------------------------ data
def read_idx(path):
    """An IDX file (gzipped or not) as a numpy array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(root, split):
    x = read_idx(os.path.join(root, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(root, f"{split}-labels-idx1-ubyte.gz"))
    x = (torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD
    return x.unsqueeze(1).contiguous(), torch.from_numpy(y.astype(np.int64))


# ----------------------------------------------------------------- model
def conv_block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.MaxPool2d(2)]


class MnistNet(nn.Module):
    def __init__(self, dim=512):
        super().__init__()
        self.layers = nn.Sequential(
            *conv_block(1, 16), *conv_block(16, 32), *conv_block(32, 64),   # 28 -> 14 -> 7 -> 3
            nn.BatchNorm2d(64), nn.Dropout2d(0.5), nn.Flatten(),
            nn.Linear(64 * 3 * 3, dim), nn.BatchNorm1d(dim))

    def forward(self, x):
        return self.layers(x)


class ArcFace(nn.Module):
    def __init__(self, dim, classes, s=30.0, m=0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.s, self.m = s, m
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th = math.cos(math.pi - m)        # theta + m > pi  <=>  cos < th
        self.mm = math.sin(math.pi - m) * m    # = m * sin(m): the fallback's offset

    def cosine(self, emb):
        return F.linear(F.normalize(emb), F.normalize(self.weight))

    def forward(self, emb, labels):
        """Returns (loss, margin-free cosines)."""
        cos = self.cosine(emb)
        sin = (1.0 - cos * cos).clamp(0, 1).sqrt()
        phi = cos * self.cos_m - sin * self.sin_m              # cos(theta + m)
        phi = torch.where(cos > self.th, phi, cos - self.mm)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        logits = self.s * torch.where(onehot, phi, cos)
        return F.cross_entropy(logits, labels), cos


def make(a, classes):
    torch.manual_seed(a.seed)
    net, head = MnistNet(a.dim), ArcFace(a.dim, classes)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=a.lr, momentum=a.momentum, weight_decay=a.wd,
                          nesterov=not a.no_nesterov)
    return net, head, opt


def train_step(net, head, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss, cos = head(net(x), y)
    loss.backward()
    opt.step()
    return loss.detach(), cos.detach()


@torch.no_grad()
def embed(net, x, batch=256):
    net.eval()
    return torch.cat([net(x[i:i + batch]) for i in range(0, len(x), batch)])


# ------------------------------------------------------------- metrics
def retrieval_loo(emb, lab, chunk=256):
    """Leave-one-out retrieval metrics on one split (see the module doc)."""
    e = F.normalize(emb).float()
    lab = lab.long()
    n = len(e)
    counts = torch.bincount(lab)
    R_all = counts[lab] - 1
    kmax = int(max(int(R_all.max()), 8))
    tot = dict(p1=0.0, rp=0.0, map=0.0, r1=0.0, r2=0.0, r4=0.0, r8=0.0)
    nv = 0
    for q0 in range(0, n, chunk):
        q1 = min(n, q0 + chunk)
        sims = e[q0:q1] @ e.T
        sims[torch.arange(q1 - q0), torch.arange(q0, q1)] = -float("inf")    # drop self
        order = torch.sort(-sims, dim=1, stable=True).indices[:, :kmax]       # ties: index asc
        rel = (lab[order] == lab[q0:q1, None]).double()
        R = R_all[q0:q1]
        valid = R > 0
        nv += int(valid.sum())
        rank = torch.arange(1, kmax + 1, dtype=torch.float64)
        inR = (rank[None, :] <= R[:, None]).double()
        relR = rel * inR
        Rd = R.clamp(min=1).double()
        prec = torch.cumsum(relR, 1) / rank
        v = valid.double()
        tot["p1"] += float((rel[:, 0] * v).sum())
        tot["rp"] += float((relR.sum(1) / Rd * v).sum())
        tot["map"] += float(((prec * relR).sum(1) / Rd * v).sum())
        for k in (1, 2, 4, 8):
            tot[f"r{k}"] += float((rel[:, :k].amax(1) * v).sum())
    return {k: v / max(nv, 1) for k, v in tot.items()} | {"n_valid": nv}


def knn_accuracy(q, ql, r, rl, chunk=512):
    """1-NN accuracy of queries against references (first max on ties)."""
    q, r = F.normalize(q).numpy(), F.normalize(r).numpy()
    ql, rl = ql.numpy(), rl.numpy()
    hit = 0
    for i in range(0, len(q), chunk):
        nn1 = np.argmax(q[i:i + chunk] @ r.T, axis=1)
        hit += int((rl[nn1] == ql[i:i + chunk]).sum())
    return hit / len(q)


# ---------------------------------------------------------------- modes
def mode_train(a, xtr, ytr, xte, yte):
    classes = int(ytr.max()) + 1
    net, head, opt = make(a, classes)
    steps_per_epoch = math.ceil(len(xtr) / a.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(a.seed)
    for ep in range(a.epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        t0, loss_sum, hit, seen = time.perf_counter(), 0.0, 0, 0
        for i in range(0, len(xtr), a.batch):
            idx = perm[i:i + a.batch]
            x, y = xtr[idx], ytr[idx]
            loss, cos = train_step(net, head, opt, x, y)
            sched.step()
            loss_sum += float(loss) * len(idx)
            hit += int((cos.argmax(1) == y).sum())
            seen += len(idx)
        dt = time.perf_counter() - t0
        print(f"epoch {ep + 1}/{a.epochs}  loss {loss_sum / seen:.4f}  train acc {hit / seen:.4f}  "
              f"{seen / dt:.0f} images/s  lr {sched.get_last_lr()[0]:.4g}", flush=True)
    ete = embed(net, xte)
    acc = float((head.cosine(ete).argmax(1) == yte).float().mean())
    print(f"test head accuracy {acc:.4f}")
    if a.eval:
        t0 = time.perf_counter()
        m = retrieval_loo(ete, yte)
        knn = knn_accuracy(ete, yte, embed(net, xtr), ytr)
        print(f"test leave-one-out: precision@1 {m['p1']:.4f}  MAP@R {m['map']:.4f}  "
              f"R-precision {m['rp']:.4f}  recall@1/2/4/8 {m['r1']:.4f} {m['r2']:.4f} "
              f"{m['r4']:.4f} {m['r8']:.4f}  ({m['n_valid']} queries)")
        print(f"1-NN accuracy test -> train {knn:.4f}  (evaluation {time.perf_counter() - t0:.1f} s)")


def mode_bench(a, xtr, ytr, xte):
    classes = int(ytr.max()) + 1
    net, head, opt = make(a, classes)
    g = torch.Generator().manual_seed(a.seed)
    batches = [torch.randint(0, len(xtr), (a.batch,), generator=g)
               for _ in range(a.warmup + a.bench_steps)]
    net.train()
    for idx in batches[:a.warmup]:
        train_step(net, head, opt, xtr[idx], ytr[idx])
    t0 = time.perf_counter()
    for idx in batches[a.warmup:]:
        train_step(net, head, opt, xtr[idx], ytr[idx])
    train_ips = a.bench_steps * a.batch / (time.perf_counter() - t0)

    net.eval()
    with torch.no_grad():
        eb = 256
        nb = min(40, len(xte) // eb)
        for i in range(3):
            net(xte[i * eb:(i + 1) * eb])
        t0 = time.perf_counter()
        for i in range(nb):
            net(xte[i * eb:(i + 1) * eb])
        embed_ips = nb * eb / (time.perf_counter() - t0)
        for i in range(20):
            net(xte[i:i + 1])
        lat = []
        for i in range(200):
            x = xte[i:i + 1]
            t0 = time.perf_counter()
            net(x)
            lat.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux
    print(json.dumps({"train_images_per_s": round(train_ips, 1),
                      "embed_images_per_s": round(embed_ips, 1),
                      "latency_ms": round(statistics.median(lat) * 1e3, 3),
                      "peak_rss_mib": round(rss, 1),
                      "threads": torch.get_num_threads()}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("train", "bench"), default="bench")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--eval", action="store_true", help="retrieval metrics after training")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--dim", type=int, default=512, help="embedding size D")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=2e-3)
    p.add_argument("--no-nesterov", action="store_true", help="classical momentum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=20, help="bench: untimed training steps")
    p.add_argument("--bench-steps", type=int, default=100, help="bench: timed training steps")
    p.add_argument("--data", default=DATA, help="folder of the Fashion-MNIST IDX .gz files")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    xtr, ytr = load_split(a.data, "train")
    xte, yte = load_split(a.data, "t10k")
    if a.mode == "train":
        mode_train(a, xtr, ytr, xte, yte)
    else:
        mode_bench(a, xtr, ytr, xte)


if __name__ == "__main__":
    main()
