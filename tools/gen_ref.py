#!/usr/bin/python3
"""gen_ref.py - golden test fixtures for simile, computed by PyTorch.

Run with Debian's interpreter, which has python3-torch and numpy:
    /usr/bin/python3 tools/gen_ref.py tests/fixtures        (or: make fixtures)
    /usr/bin/python3 tools/gen_ref.py tests/fixtures zoo    (one section)

Each section is a function gen_<section>(outdir) writing one fixture file;
main() calls them all: gen_kernels -> kernels_ref.bin (tests/test_kernels.c),
gen_heads -> heads_ref.bin (the loss heads, optimizers and schedules; tests/test_heads.c),
gen_heads2 -> heads2_ref.bin (the other heads and the pair losses; tests/test_heads2.c),
gen_zoo -> zoo_ref.bin (whole zoo networks, needs python3-torchvision; tests/test_zoo.c).
Cases are small random problems computed in double
precision from float32-representable inputs, then stored as float32: inputs,
parameters, outputs and every gradient (autograd with a random upstream
gradient `dout`). Activations are stored in simile's layouts: spatial tensors
(C, N, H, W) (torch's NCHW permuted by (1, 0, 2, 3)), dense ones (N, F).

Fixture file format (version 1), all fields little-endian:
    magic     4 bytes   b"SMFX"
    version   u32       1
    count     u32       number of tensors
    count times:
        name_len  u32       bytes of name (no terminating NUL)
        name      bytes     UTF-8, e.g. "conv2/dw"
        ndim      u32
        dims      i64[ndim]
        data      f32[prod(dims)]   row-major
Integer data (argmax indices, shape configurations) is stored as float32,
exact below 2^24. By convention a case "<op><i>" holds "<op><i>/cfg" with its
scalar parameters; a reader walks i = 0, 1, ... until cfg is missing.
tests/fixture.h is the C reader.
"""
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

MAGIC = b"SMFX"
VERSION = 1


class Fixture:
    """Collects named tensors and writes them in the SMFX format."""

    def __init__(self):
        self.tensors = []

    def add(self, name, t):
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy()
        a = np.ascontiguousarray(np.asarray(t, dtype=np.float32))
        if a.ndim == 0:
            a = a.reshape(1)
        self.tensors.append((name, a))

    def write(self, path):
        with open(path + ".tmp", "wb") as f:
            f.write(MAGIC + struct.pack("<II", VERSION, len(self.tensors)))
            for name, a in self.tensors:
                nb = name.encode()
                f.write(struct.pack("<I", len(nb)) + nb)
                f.write(struct.pack("<I", a.ndim) + struct.pack("<%dq" % a.ndim, *a.shape))
                f.write(a.astype("<f4").tobytes())
        os.replace(path + ".tmp", path)
        print("wrote %s (%d tensors, %d bytes)" % (path, len(self.tensors), os.path.getsize(path)))


def rand(g, *shape, scale=1.0):
    """Float32-representable normal values, as a double tensor."""
    return (torch.randn(*shape, generator=g) * scale).float().double()


def f32(t):
    """Rounds to float32 (kept as double), so the stored inputs are exactly the ones used."""
    return t.float().double()


def leaf(t):
    return t.clone().requires_grad_(True)


def cnhw(t):
    """torch NCHW -> simile (C, N, H, W)."""
    return t.permute(1, 0, 2, 3).contiguous()


def grad_of(out, dout, *leaves):
    gs = torch.autograd.grad(out, leaves, dout, allow_unused=True)
    return [torch.zeros_like(l) if gr is None else gr for l, gr in zip(leaves, gs)]


def gen_conv(fx, g):
    # (n, cin, h, w, cout, kh, kw, stride, pad, bias)
    cases = [
        (2, 3, 6, 6, 4, 3, 3, 1, 1, 1),
        (2, 5, 5, 5, 3, 1, 1, 1, 0, 1),
        (3, 2, 9, 9, 4, 5, 5, 2, 2, 0),
        (2, 3, 7, 5, 2, 3, 3, 1, 0, 1),
        (2, 2, 6, 8, 3, 3, 2, 2, 1, 1),
        (1, 1, 7, 7, 2, 3, 3, 2, 0, 0),
    ]
    for i, (n, cin, h, w, cout, kh, kw, st, pad, hb) in enumerate(cases):
        p = "conv%d/" % i
        x = leaf(rand(g, n, cin, h, w))
        wt = leaf(rand(g, cout, cin, kh, kw, scale=0.5))
        b = leaf(rand(g, cout)) if hb else None
        out = F.conv2d(x, wt, b, stride=st, padding=pad)
        dout = rand(g, *out.shape)
        leaves = (x, wt) + ((b,) if hb else ())
        grads = grad_of(out, dout, *leaves)
        fx.add(p + "cfg", [n, cin, h, w, cout, kh, kw, st, pad, hb])
        fx.add(p + "x", cnhw(x))
        fx.add(p + "w", wt)
        if hb:
            fx.add(p + "b", b)
            fx.add(p + "db", grads[2])
        fx.add(p + "out", cnhw(out))
        fx.add(p + "dout", cnhw(dout))
        fx.add(p + "dx", cnhw(grads[0]))
        fx.add(p + "dw", grads[1])


def gen_bn(fx, g):
    # torch input shape, momentum, eps; stored as (outer, C, inner)
    cases = [((4, 3, 5, 5), 0.1, 1e-5), ((8, 6), 0.1, 1e-5), ((3, 4, 5), 0.3, 1e-3),
             ((2, 2, 3, 4), 0.1, 1e-5)]
    for i, (shape, mom, eps) in enumerate(cases):
        p = "bn%d/" % i
        c = shape[1]
        x = leaf(f32(rand(g, *shape) * 2.0 + 0.5))
        gamma = leaf(f32(rand(g, c) * 0.5 + 1.0))
        beta = leaf(rand(g, c))
        rm0 = rand(g, c, scale=0.1)
        rv0 = f32(rand(g, c, scale=0.1).abs() + 0.5)
        rm, rv = rm0.clone(), rv0.clone()
        out = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=mom, eps=eps)
        dout = rand(g, *shape)
        dx, dgamma, dbeta = grad_of(out, dout, x, gamma, beta)
        dims = [0] + list(range(2, len(shape)))
        mean = x.detach().mean(dim=dims)
        var = x.detach().var(dim=dims, unbiased=False)
        invstd = 1.0 / torch.sqrt(var + eps)
        ev = F.batch_norm(x.detach(), rm0, rv0, gamma.detach(), beta.detach(), training=False,
                          eps=eps)
        if len(shape) == 4:   # spatial: simile stores (C, N, H, W) = (outer 1, C, N*H*W)
            outer, inner = 1, shape[0] * shape[2] * shape[3]
            conv = cnhw
        else:                 # (N, C) or (N, C, L): already (outer, C, inner)
            outer, inner = shape[0], int(np.prod(shape[2:])) if len(shape) > 2 else 1
            conv = lambda t: t
        fx.add(p + "cfg", [outer, c, inner, mom, eps])
        fx.add(p + "x", conv(x))
        fx.add(p + "gamma", gamma)
        fx.add(p + "beta", beta)
        fx.add(p + "rm0", rm0)
        fx.add(p + "rv0", rv0)
        fx.add(p + "out", conv(out))
        fx.add(p + "rm", rm)
        fx.add(p + "rv", rv)
        fx.add(p + "mean", mean)
        fx.add(p + "invstd", invstd)
        fx.add(p + "dout", conv(dout))
        fx.add(p + "dx", conv(dx))
        fx.add(p + "dgamma", dgamma)
        fx.add(p + "dbeta", dbeta)
        fx.add(p + "eval_out", conv(ev))


def gen_act(fx, g):
    x = rand(g, 2, 3, 4, 5)
    x[0, 0, 0, :2] = 0.0   # ReLU's subgradient at 0 is 0
    x = leaf(x)
    out = F.relu(x)
    dout = rand(g, *x.shape)
    (dx,) = grad_of(out, dout, x)
    fx.add("relu0/cfg", [x.numel()])
    fx.add("relu0/x", cnhw(x))
    fx.add("relu0/out", cnhw(out))
    fx.add("relu0/dout", cnhw(dout))
    fx.add("relu0/dx", cnhw(dx))
    for i, shape in enumerate([(3, 4, 3, 5), (6, 5)]):
        p = "prelu%d/" % i
        c = shape[1]
        x = leaf(rand(g, *shape))
        a = leaf(f32(rand(g, c, scale=0.3) + 0.25))
        out = F.prelu(x, a)
        dout = rand(g, *shape)
        dx, da = grad_of(out, dout, x, a)
        if len(shape) == 4:
            outer, inner, conv = 1, shape[0] * shape[2] * shape[3], cnhw
        else:
            outer, inner, conv = shape[0], 1, (lambda t: t)
        fx.add(p + "cfg", [outer, c, inner])
        fx.add(p + "x", conv(x))
        fx.add(p + "a", a)
        fx.add(p + "out", conv(out))
        fx.add(p + "dout", conv(dout))
        fx.add(p + "dx", conv(dx))
        fx.add(p + "da", da)


def gen_pool(fx, g):
    # (n, c, h, w, k, stride, pad)
    maxc = [(2, 3, 6, 6, 2, 2, 0), (2, 2, 7, 7, 3, 2, 1), (1, 3, 7, 7, 2, 2, 0),
            (2, 2, 8, 5, 3, 3, 1)]
    for i, (n, c, h, w, k, st, pad) in enumerate(maxc):
        p = "maxpool%d/" % i
        x = leaf(rand(g, n, c, h, w))
        out, idx = F.max_pool2d(x, k, st, pad, return_indices=True)
        dout = rand(g, *out.shape)
        (dx,) = grad_of(out, dout, x)
        fx.add(p + "cfg", [n, c, h, w, k, st, pad, out.shape[2], out.shape[3]])
        fx.add(p + "x", cnhw(x))
        fx.add(p + "out", cnhw(out))
        fx.add(p + "argmax", cnhw(idx.double()))
        fx.add(p + "dout", cnhw(dout))
        fx.add(p + "dx", cnhw(dx))
    avgc = [(2, 3, 6, 6, 2, 2, 0), (2, 2, 7, 7, 3, 2, 1), (1, 2, 5, 6, 3, 1, 1)]
    for i, (n, c, h, w, k, st, pad) in enumerate(avgc):
        p = "avgpool%d/" % i
        x = leaf(rand(g, n, c, h, w))
        out = F.avg_pool2d(x, k, st, pad)   # count_include_pad=True by default
        dout = rand(g, *out.shape)
        (dx,) = grad_of(out, dout, x)
        fx.add(p + "cfg", [n, c, h, w, k, st, pad, out.shape[2], out.shape[3]])
        fx.add(p + "x", cnhw(x))
        fx.add(p + "out", cnhw(out))
        fx.add(p + "dout", cnhw(dout))
        fx.add(p + "dx", cnhw(dx))
    n, c, h, w = 3, 4, 3, 5
    x = leaf(rand(g, n, c, h, w))
    out = x.mean(dim=(2, 3))
    dout = rand(g, *out.shape)
    (dx,) = grad_of(out, dout, x)
    fx.add("gap0/cfg", [c, n, h * w])
    fx.add("gap0/x", cnhw(x))
    fx.add("gap0/out", out)
    fx.add("gap0/dout", dout)
    fx.add("gap0/dx", cnhw(dx))
    x = leaf(rand(g, n, c, h, w))
    out = torch.flatten(x, 1)
    dout = rand(g, *out.shape)
    (dx,) = grad_of(out, dout, x)
    fx.add("flatten0/cfg", [c, n, h * w])
    fx.add("flatten0/x", cnhw(x))
    fx.add("flatten0/out", out)
    fx.add("flatten0/dout", dout)
    fx.add("flatten0/dx", cnhw(dx))


def gen_linear(fx, g):
    for i, (n, fin, fout, hb) in enumerate([(5, 7, 4, 1), (3, 16, 10, 0), (1, 4, 3, 1)]):
        p = "linear%d/" % i
        x = leaf(rand(g, n, fin))
        wt = leaf(rand(g, fout, fin, scale=0.5))
        b = leaf(rand(g, fout)) if hb else None
        out = F.linear(x, wt, b)
        dout = rand(g, *out.shape)
        grads = grad_of(out, dout, *((x, wt) + ((b,) if hb else ())))
        fx.add(p + "cfg", [n, fin, fout, hb])
        fx.add(p + "x", x)
        fx.add(p + "w", wt)
        fx.add(p + "out", out)
        fx.add(p + "dout", dout)
        fx.add(p + "dx", grads[0])
        fx.add(p + "dw", grads[1])
        if hb:
            fx.add(p + "b", b)
            fx.add(p + "db", grads[2])


def gen_norm(fx, g):
    # (n, d, eps); the second case has a row whose norm is below eps
    for i, (n, d, eps) in enumerate([(4, 6, 1e-12), (3, 5, 0.5)]):
        p = "l2norm%d/" % i
        x = rand(g, n, d)
        if i == 1:
            x[1] *= 0.05
        x = leaf(f32(x))
        out = F.normalize(x, p=2.0, dim=1, eps=eps)
        dout = rand(g, n, d)
        (dx,) = grad_of(out, dout, x)
        fx.add(p + "cfg", [n, d, eps])
        fx.add(p + "x", x)
        fx.add(p + "out", out)
        fx.add(p + "norm", x.detach().norm(dim=1))
        fx.add(p + "dout", dout)
        fx.add(p + "dx", dx)


def gen_layers2(fx):
    """Grouped/depthwise convolutions, the bounded and smooth activations and
    adaptive average pooling, from a generator of their own, so that adding
    them left the earlier cases' values as they were."""
    g = torch.Generator().manual_seed(2026)
    # (n, cin, h, w, cout, kh, kw, stride, pad, bias, groups): conv6.. continue conv0..5
    cases = [
        (2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 2),    # grouped
        (2, 6, 7, 7, 6, 3, 3, 2, 1, 0, 6),    # depthwise, strided (MobileNetV2's)
        (2, 4, 5, 5, 4, 3, 3, 1, 1, 1, 4),    # depthwise, "same"
        (2, 3, 6, 6, 6, 3, 3, 1, 1, 0, 3),    # depth multiplier 2 (cin/g = 1, cout/g = 2)
        (2, 8, 4, 4, 4, 1, 1, 1, 0, 1, 4),    # grouped pointwise
        (1, 4, 9, 8, 4, 5, 5, 2, 2, 1, 4),    # depthwise 5x5 (MobileNetV3's)
        (2, 6, 5, 7, 9, 3, 1, 1, 1, 1, 3),    # grouped, non-square kernel
    ]
    for i, (n, cin, h, w, cout, kh, kw, st, pad, hb, gr) in enumerate(cases):
        p = "conv%d/" % (6 + i)
        x = leaf(rand(g, n, cin, h, w))
        wt = leaf(rand(g, cout, cin // gr, kh, kw, scale=0.5))
        b = leaf(rand(g, cout)) if hb else None
        out = F.conv2d(x, wt, b, stride=st, padding=pad, groups=gr)
        dout = rand(g, *out.shape)
        leaves = (x, wt) + ((b,) if hb else ())
        grads = grad_of(out, dout, *leaves)
        fx.add(p + "cfg", [n, cin, h, w, cout, kh, kw, st, pad, hb, gr])
        fx.add(p + "x", cnhw(x))
        fx.add(p + "w", wt)
        if hb:
            fx.add(p + "b", b)
            fx.add(p + "db", grads[2])
        fx.add(p + "out", cnhw(out))
        fx.add(p + "dout", cnhw(dout))
        fx.add(p + "dx", cnhw(grads[0]))
        fx.add(p + "dw", grads[1])
    # element-wise: values on every kink and far out, where exp overflows
    special = torch.tensor([-3.0, 0.0, 3.0, 6.0, -6.0, 30.0, -30.0, 100.0, -100.0, 1e-7,
                            -1e-7, 2.5, -2.5, 5.999, 6.001], dtype=torch.double)
    for name, fn in [("relu6", F.relu6), ("hardswish", F.hardswish),
                     ("hardsigmoid", F.hardsigmoid), ("sigmoid", torch.sigmoid)]:
        x = leaf(torch.cat([f32(rand(g, 105) * 4.0), special]))
        out = fn(x)
        dout = rand(g, *x.shape)
        (dx,) = grad_of(out, dout, x)
        fx.add(name + "0/cfg", [x.numel()])
        fx.add(name + "0/x", x)
        fx.add(name + "0/out", out)
        fx.add(name + "0/dout", dout)
        fx.add(name + "0/dx", dx)
    # (n, c, h, w, oh, ow): overlapping cells, exact division, global, more cells than rows
    for i, (n, c, h, w, oh, ow) in enumerate([(2, 3, 7, 5, 3, 2), (1, 2, 6, 6, 4, 4),
                                               (2, 2, 5, 7, 1, 1), (1, 1, 3, 3, 5, 4),
                                               (2, 2, 8, 8, 2, 2)]):
        p = "adaptive%d/" % i
        x = leaf(rand(g, n, c, h, w))
        out = F.adaptive_avg_pool2d(x, (oh, ow))
        dout = rand(g, *out.shape)
        (dx,) = grad_of(out, dout, x)
        fx.add(p + "cfg", [n, c, h, w, oh, ow])
        fx.add(p + "x", cnhw(x))
        fx.add(p + "out", cnhw(out))
        fx.add(p + "dout", cnhw(dout))
        fx.add(p + "dx", cnhw(dx))


def gen_kernels(outdir):
    """The backbone kernels of src/kernels.h -> kernels_ref.bin."""
    g = torch.Generator().manual_seed(20240601)
    fx = Fixture()
    gen_conv(fx, g)
    gen_bn(fx, g)
    gen_act(fx, g)
    gen_pool(fx, g)
    gen_linear(fx, g)
    gen_norm(fx, g)
    gen_layers2(fx)
    fx.write(os.path.join(outdir, "kernels_ref.bin"))


# sm_head_kind values of include/simile.h (append-only there)
HEAD_SOFTMAX, HEAD_NORMFACE, HEAD_COSFACE, HEAD_ARCFACE = 1, 2, 3, 4


def fl(x):
    """A Python float rounded to float32: the value simile's float config fields hold."""
    return float(np.float32(x))


def arcface_switch(m, easy):
    """cos θ at or below which ArcFace leaves cos(θ + m): cos(π - m) (th/mm), 0 (easy margin)."""
    return 0.0 if easy else float(np.cos(np.pi - m))


def head_batch(g, n, d, c, targets):
    """emb (N,D), W (C,D), labels (N) with cos(emb_i, W_{y_i}) = targets[i] (before float32
    rounding): emb_i = ‖x‖ (t ŵ_y + sqrt(1 - t²) u), u a random unit vector ⟂ ŵ_y.
    Row norms of both vary (0.5 to 3), so the L2 normalisations are exercised."""
    w = f32(rand(g, c, d) * (0.5 + 2.5 * torch.rand(c, 1, generator=g)))
    labels = torch.randperm(n, generator=g) % c
    emb = torch.empty(n, d)
    for i in range(n):
        wh = w[labels[i]] / w[labels[i]].norm()
        u = rand(g, d)
        u = u - (u @ wh) * wh
        u = u / u.norm()
        t = targets[i]
        emb[i] = (t * wh + np.sqrt(1.0 - t * t) * u) * (0.5 + 2.5 * torch.rand(1, generator=g))
    return f32(emb), w, labels


def head_loss(kind, emb, w, b, labels, s, m, easy):
    """(cos or logits (N,C), mean cross-entropy) of one head, differentiably (float64)."""
    if kind == HEAD_SOFTMAX:
        z = F.linear(emb, w, b)
        return z, F.cross_entropy(z, labels)
    cos = F.normalize(emb, dim=1, eps=1e-12) @ F.normalize(w, dim=1, eps=1e-12).t()
    ct = cos.gather(1, labels[:, None])[:, 0]
    if kind == HEAD_NORMFACE:
        phi = ct
    elif kind == HEAD_COSFACE:
        phi = ct - m
    else:
        # cos(θ + m) = c cos m - sin θ sin m; autograd gives cos m + c sin m / sin θ, the true
        # derivative (the targets stay away from c = ±1)
        arc = ct * np.cos(m) - torch.sqrt(1.0 - ct * ct) * np.sin(m)
        th = arcface_switch(m, easy)
        fallback = ct if easy else ct - m * np.sin(m)
        phi = torch.where(ct > th, arc, fallback)
    onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    z = s * (cos * (1 - onehot) + phi[:, None] * onehot)
    return cos, F.cross_entropy(z, labels)


def gen_head_cases(fx, g):
    n, d, c = 12, 8, 5
    # (kind, s, m, easy); the first of each kind has simile's defaults (src/head.c)
    cases = [(HEAD_SOFTMAX, 0.0, 0.0, 0), (HEAD_NORMFACE, 30.0, 0.0, 0),
             (HEAD_COSFACE, 30.0, 0.35, 0), (HEAD_ARCFACE, 30.0, 0.5, 0),
             (HEAD_ARCFACE, 30.0, 0.5, 1), (HEAD_NORMFACE, 10.0, 0.0, 0),
             (HEAD_COSFACE, 16.0, 0.2, 0), (HEAD_ARCFACE, 64.0, 0.2, 0)]
    for i, (kind, s, m, easy) in enumerate(cases):
        p = "head%d/" % i
        s, m = fl(s), fl(m)
        # target cosines on both sides of both ArcFace switch points (0 and cos(π - m)),
        # near +1 and near -1, each at least 0.007 away from a switch
        th = arcface_switch(m if kind == HEAD_ARCFACE else 0.5, False)
        targets = [0.99, 0.9, 0.6, 0.2, 0.02, -0.02, -0.4, th + 0.008, th - 0.008,
                   (th - 1.0) / 2, -0.99, 0.45]
        if kind == HEAD_SOFTMAX:
            emb, w = rand(g, n, d), rand(g, c, d, scale=0.5)
            labels = torch.randperm(n, generator=g) % c
            b = leaf(rand(g, c))
        else:
            emb, w, labels = head_batch(g, n, d, c, targets)
            b = None
        emb, w = leaf(emb), leaf(w)
        cos, loss = head_loss(kind, emb, w, b, labels, s, m, easy)
        grads = grad_of(loss, None, *((emb, w) + ((b,) if b is not None else ())))
        if kind == HEAD_ARCFACE:
            ct = cos.detach().gather(1, labels[:, None])[:, 0]
            gaps = [abs(float(x) - t) for x in ct for t in (0.0, th)]
            assert min(gaps) > 5e-3 and float(ct.abs().max()) < 0.995, "a target sits on a switch"
            sides = [int((ct > t).sum()) for t in (0.0, th)]
            assert all(0 < k < n for k in sides), "a switch point has targets on one side only"
        fx.add(p + "cfg", [kind, n, d, c, s, m, easy])
        fx.add(p + "emb", emb)
        fx.add(p + "w", w)
        fx.add(p + "labels", labels.double())
        fx.add(p + "cos", cos)
        fx.add(p + "loss", loss)
        fx.add(p + "demb", grads[0])
        fx.add(p + "dw", grads[1])
        if b is not None:
            fx.add(p + "b", b)
            fx.add(p + "db", grads[2])


def gen_optim_cases(fx, g):
    """torch.optim.SGD / AdamW on one parameter vector, p.grad set by hand each step."""
    n, steps = 10, 4
    # (kind 1 SGD / 2 AdamW, lr, momentum, nesterov, weight_decay, beta1, beta2, eps)
    cases = [(1, 0.1, 0.9, 0, 5e-4, 0, 0, 0), (1, 0.1, 0.9, 1, 5e-4, 0, 0, 0),
             (1, 0.1, 0.0, 0, 5e-4, 0, 0, 0), (2, 1e-3, 0, 0, 1e-2, 0.9, 0.999, 1e-8)]
    for i, cfg in enumerate(cases):
        kind, lr, mom, nest, wd, b1, b2, eps = [fl(v) for v in cfg]
        p = "optim%d/" % i
        p0 = rand(g, n)
        grads = rand(g, steps, n)
        grads[:, :2] *= 1e-8   # gradients near eps: Adam's eps placement is visible there
        grads = f32(grads)
        param = torch.nn.Parameter(p0.clone())
        if kind == 1:
            opt = torch.optim.SGD([param], lr=lr, momentum=mom, nesterov=bool(nest), weight_decay=wd)
        else:
            opt = torch.optim.AdamW([param], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
        after = []
        for k in range(steps):
            param.grad = grads[k].clone()
            opt.step()
            after.append(param.detach().clone())
        fx.add(p + "cfg", [kind, n, steps, lr, mom, nest, wd, b1, b2, eps])
        fx.add(p + "p0", p0)
        fx.add(p + "grads", grads)
        fx.add(p + "params", torch.stack(after))


def gen_sched_cases(fx):
    """Learning rates of torch's schedulers stepped once per step, read before each step."""
    # (kind 2 cosine / 1 step, base, T, eta_min or step_size, gamma)
    # the long cosine run ends where 1 + cos(πt/T) ~ 5e-6: a float-only formula loses it there
    cases = [(2, 0.1, 10, 0.0, 0), (2, 0.05, 7, 1e-3, 0), (2, 0.1, 1000, 0.0, 0),
             (1, 0.1, 10, 3, 0.5)]
    for i, (kind, base, total, a, gamma) in enumerate(cases):
        base, a, gamma = fl(base), fl(a), fl(gamma)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
        if kind == 2:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=a)
        else:
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(a), gamma=gamma)
        lrs = []
        for _ in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        fx.add("sched%d/cfg" % i, [kind, base, total, a, gamma])
        fx.add("sched%d/lr" % i, lrs)


def gen_heads(outdir):
    """The loss heads of src/head.c, the optimizers and schedules of src/optim.c
    -> heads_ref.bin."""
    g = torch.Generator().manual_seed(20240602)
    fx = Fixture()
    gen_head_cases(fx, g)
    gen_optim_cases(fx, g)
    gen_sched_cases(fx)
    fx.write(os.path.join(outdir, "heads_ref.bin"))


# ---------------------------------------------------------------- heads2: the other heads
# and the pair losses, each written from its documented formula (include/simile.h, the
# comments of src/head.c and src/pairloss.c, the papers), not from the C code.

HEAD_CONTRASTIVE, HEAD_TRIPLET, HEAD_MULTISIM = 5, 6, 7
HEAD_COMBINED, HEAD_SPHEREFACE, HEAD_ASOFTMAX = 8, 9, 10
HEAD_ADACOS, HEAD_ADACOS_FIXED, HEAD_SUBCENTER, HEAD_L2SOFTMAX = 11, 12, 13, 14
MINER_ALL, MINER_HARD, MINER_SEMIHARD = 0, 1, 2


def normed_cos(emb, w):
    """cos θ_ij = x̂_i·ŵ_j (F.normalize's eps 1e-12), (N, rows of w)."""
    return F.normalize(emb, dim=1, eps=1e-12) @ F.normalize(w, dim=1, eps=1e-12).t()


def margin_ce(cos, phi, labels, s):
    """Cross-entropy of logits s·cos θ_ij (j ≠ y_i) and s·phi_i (j = y_i), mean over the batch."""
    onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    return F.cross_entropy(s * (cos * (1 - onehot) + phi[:, None] * onehot), labels)


def combined_switch(m1, m2):
    """cos θs with m1·θs + m2 = π: where cos(m1·θ + m2) would turn back up."""
    return float(np.cos((np.pi - m2) / m1))


def combined_phi(ct, m1, m2, m3):
    """cos(m1·θ + m2) - m3 while m1·θ + m2 <= π; past it the straight line in cos θ of slope 1
    through the switch point (cos θs, cos π - m3): cos θ - (cos θs - (-1 - m3)) (src/head.c)."""
    t = m1 * torch.acos(ct) + m2
    line = ct - (combined_switch(m1, m2) + 1.0 + m3)
    return torch.where(t <= np.pi, torch.cos(t) - m3, line)


def arcface_phi(ct, m):
    """ArcFace's target with insightface's th/mm fallback below cos(π - m)."""
    arc = ct * np.cos(m) - torch.sqrt(1.0 - ct * ct) * np.sin(m)
    return torch.where(ct > arcface_switch(m, False), arc, ct - m * np.sin(m))


def asoftmax_psi(ct, m):
    """ψ(θ) = (-1)^k cos(mθ) - 2k on θ ∈ [kπ/m, (k+1)π/m] (Liu et al. 2017), through acos."""
    th = torch.acos(ct)
    k = torch.clamp(torch.floor(m * th.detach() / np.pi), max=m - 1)
    return (1.0 - 2.0 * torch.remainder(k, 2)) * torch.cos(m * th) - 2.0 * k


def asoftmax_lambda(lb, lmin, gamma, power, it):
    return max(lmin, lb * (1.0 + gamma * it) ** -power)


def adacos_scale(cos, labels, s_old):
    """AdaCos (Zhang et al. 2019): B_avg = 1/N Σ_i Σ_{j≠y_i} exp(s_old·cos θ_ij), θ_med the lower
    median of the target angles, s = ln(B_avg) / cos(min(π/4, θ_med)). No gradient."""
    cos = cos.detach()
    n = cos.shape[0]
    onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    b_avg = (torch.exp(s_old * cos) * (1 - onehot)).sum() / n
    th = torch.sort(torch.acos(cos.gather(1, labels[:, None])[:, 0])).values
    th_med = float(th[(n - 1) // 2])
    return float(torch.log(b_avg)) / np.cos(min(np.pi / 4, th_med)), th_med


def unit(v):
    return v / v.norm()


def place(g, wrows, t, radius):
    """A row x with max_q cos(x, w_q) = t over the rows wrows (K, D) (one row: exactly, else by
    bisection along x(τ) = τ ŵ_0 + √(1-τ²) u), norm `radius`; u random ⟂ ŵ_0."""
    w0 = unit(wrows[0])
    u = rand(g, wrows.shape[1])
    u = unit(u - (u @ w0) * w0)
    wn = F.normalize(wrows, dim=1)
    f = lambda tau: float((wn @ (tau * w0 + np.sqrt(1.0 - tau * tau) * u)).max())
    lo, hi = -1.0, 1.0
    assert f(lo) < t < f(hi) + 1e-15, "no point of the path reaches %g (%g..%g)" % (t, f(lo), f(hi))
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < t else (lo, mid)
    tau = (lo + hi) / 2
    return (tau * w0 + np.sqrt(1.0 - tau * tau) * u) * radius


def head2_batch(g, n, d, c, k, targets, labels=None):
    """emb (N,D), W (C·K, D), labels with max over the K rows of class y_i of cos(emb_i, ·) =
    targets[i] (before float32 rounding). Row norms 0.5..3. With K > 1 the K sub-centres of a
    class lie within 12° of each other, so that a sample can be far from all of them (down to a
    cosine of -0.98)."""
    base = rand(g, c, d)
    if k == 1:
        w = base
    else:
        w = torch.stack([unit(base[j]) + 0.1 * unit(rand(g, d)) for j in range(c) for _ in range(k)])
    w = f32(w * (0.5 + 2.5 * torch.rand(c * k, 1, generator=g)))
    if labels is None:
        labels = torch.randperm(n, generator=g) % c
    emb = torch.stack([place(g, w[labels[i] * k:(labels[i] + 1) * k], targets[i],
                             0.5 + 2.5 * float(torch.rand(1, generator=g))) for i in range(n)])
    return f32(emb), w, labels


def head2_targets(sw):
    """Target cosines on both sides of the switch sw, near ±1, around 0, 0.007 from sw."""
    return [0.99, 0.9, 0.6, 0.2, 0.02, -0.02, -0.4, sw + 0.008, sw - 0.008, (sw - 1.0) / 2,
            -0.99, 0.45]


def gen_head2_cases(fx, g):
    n, d, c = 12, 8, 5
    sq = np.cos(np.pi / 4)
    asoft_t = [0.97, 0.85, sq + 0.012, sq - 0.012, 0.4, 0.03, -0.03, -0.4, -sq + 0.012,
               -sq - 0.012, -0.9, -0.97]
    # (kind, C, K, s, m, (m1, m2, m3), (λ_base, λ_min), targets); s = 0: the head's own scale
    cases = [
        (HEAD_COMBINED, c, 1, 30.0, 0.0, (1.0, 0.3, 0.2), None, None),
        (HEAD_COMBINED, c, 1, 16.0, 0.0, (1.2, 0.2, 0.1), None, None),
        (HEAD_SPHEREFACE, c, 1, 30.0, 1.35, None, None, None),
        (HEAD_ASOFTMAX, c, 1, 0.0, 4.0, None, (1000.0, 5.0), asoft_t),
        (HEAD_ASOFTMAX, c, 1, 0.0, 4.0, None, (0.0, 0.0), asoft_t),
        (HEAD_ASOFTMAX, c, 1, 0.0, 4.0, None, (2.0, 0.5), asoft_t),
        (HEAD_ADACOS_FIXED, 8, 1, 0.0, 0.0, None, None, None),
        # dynamic: the lower median of the target angles below π/4 (acos 0.75 vs the upper
        # median acos 0.74), then above π/4
        (HEAD_ADACOS, 8, 1, 0.0, 0.0, None, None,
         [0.95, 0.9, 0.85, 0.8, 0.78, 0.75, 0.74, 0.6, 0.3, 0.1, -0.2, -0.5]),
        (HEAD_ADACOS, 8, 1, 0.0, 0.0, None, None,
         [0.9, 0.75, 0.6, 0.45, 0.3, 0.15, 0.0, -0.15, -0.3, -0.5, -0.7, -0.9]),
        (HEAD_SUBCENTER, c, 3, 30.0, 0.5, None, None, None),
        (HEAD_SUBCENTER, c, 2, 16.0, 0.4, None, None, None),
        (HEAD_L2SOFTMAX, c, 1, 16.0, 0.0, None, None, None),
        (HEAD_L2SOFTMAX, c, 1, 4.0, 0.0, None, None, None),
    ]
    for i, (kind, c, k, s, m, mm, lam, targets) in enumerate(cases):
        p = "hd%d/" % i
        s, m = fl(s), fl(m)
        m1, m2, m3 = [fl(v) for v in (mm or (1.0, 0.3, 0.2))]
        lb, lmin = [fl(v) for v in (lam or (1000.0, 5.0))]
        gamma, power = fl(0.12), 1.0
        if kind == HEAD_COMBINED:
            sw = combined_switch(m1, m2)
        elif kind == HEAD_SPHEREFACE:
            sw = combined_switch(m, 0.0)
        elif kind == HEAD_SUBCENTER:
            sw = arcface_switch(m, False)
        else:
            sw = None
        if kind == HEAD_SUBCENTER:   # the max over clustered sub-centres stays above -0.98
            targets = [0.99, 0.9, 0.6, 0.2, 0.02, -0.02, -0.4, sw + 0.008, sw - 0.008, sw - 0.02,
                       -0.965, 0.45]
        elif targets is None:
            targets = head2_targets(sw if sw is not None else -0.5)
        b = None
        if kind == HEAD_L2SOFTMAX:
            emb = rand(g, n, d) * (0.5 + 2.5 * torch.rand(n, 1, generator=g))
            emb, w = f32(emb), rand(g, c, d, scale=0.5)
            labels = torch.randperm(n, generator=g) % c
            b = leaf(rand(g, c))
        elif k == 1:
            emb, w, labels = head2_batch(g, n, d, c, k, targets)
        else:   # sub-centres: redraw until no two of a class are within 1e-3 for any sample,
            # so that float32 picks the same one
            for attempt in range(100):
                emb, w, labels = head2_batch(g, n, d, c, k, targets)
                top = normed_cos(emb, w).view(n, c, k).topk(2, dim=2).values
                if float((top[:, :, 0] - top[:, :, 1]).min()) > 1e-3:
                    break
            else:
                raise AssertionError("hd%d: sub-centres always tie" % i)
        emb, w = leaf(emb), leaf(w)
        extra = {}
        if kind == HEAD_L2SOFTMAX:
            out = F.linear(s * F.normalize(emb, dim=1, eps=1e-12), w, b)   # α x̂ W^T + b
            loss = F.cross_entropy(out, labels)
        else:
            cosk = normed_cos(emb, w)
            cos = cosk.view(n, c, k).max(dim=2).values if k > 1 else cosk
            ct = cos.gather(1, labels[:, None])[:, 0]
            if kind == HEAD_COMBINED:
                phi = combined_phi(ct, m1, m2, m3)
            elif kind == HEAD_SPHEREFACE:
                phi = combined_phi(ct, m, 0.0, 0.0)
            elif kind == HEAD_SUBCENTER:
                phi = arcface_phi(ct, m)
            if kind in (HEAD_COMBINED, HEAD_SPHEREFACE, HEAD_SUBCENTER):
                loss = margin_ce(cos, phi, labels, s)
                extra["phi"] = phi
            elif kind == HEAD_ASOFTMAX:
                lamv = asoftmax_lambda(lb, lmin, gamma, power, 0)
                gy = (lamv * ct + asoftmax_psi(ct, int(m))) / (1.0 + lamv)
                r = emb.norm(dim=1)   # logits ‖x‖ cos θ, target ‖x‖ (λ cos θ + ψ)/(1 + λ)
                onehot = F.one_hot(labels, c).to(cos.dtype)
                loss = F.cross_entropy(r[:, None] * (cos * (1 - onehot) + gy[:, None] * onehot),
                                       labels)
                kk = torch.floor(4 * torch.acos(ct.detach()) / np.pi)
                assert all(int((kk == q).sum()) > 0 for q in range(4)), "an interval k is empty"
                gaps = (ct.detach()[:, None] - torch.tensor([sq, 0.0, -sq])[None, :]).abs()
                assert float(gaps.min()) > 5e-3, "a target sits on a boundary kπ/m"
                extra["gy"] = gy
                extra["lambda"] = [lamv]
                its = [0, 1, 10, 100, 1000, 100000]
                extra["lambda_iters"] = its
                extra["lambda_vals"] = [asoftmax_lambda(lb, lmin, gamma, power, t) for t in its]
            else:   # AdaCos
                s0 = fl(np.sqrt(2.0) * np.log(c - 1.0))   # the fixed scale, as a float field
                extra["s0"] = [s0]
                st = s0
                if kind == HEAD_ADACOS:
                    st, th_med = adacos_scale(cos, labels, s0)
                    extra["snew"] = [st]
                    extra["th_med"] = [th_med]
                loss = margin_ce(cos, ct, labels, st)
            out = cos
            if sw is not None:
                ctd = ct.detach()
                assert float((ctd - sw).abs().min()) > 5e-3 and float(ctd.abs().max()) < 0.995
                assert 0 < int((ctd > sw).sum()) < n, "targets on one side of the switch only"
        grads = grad_of(loss, None, *((emb, w) + ((b,) if b is not None else ())))
        fx.add(p + "cfg", [kind, n, d, c, k, s, m, m1, m2, m3, lb, lmin])
        fx.add(p + "emb", emb)
        fx.add(p + "w", w)
        fx.add(p + "labels", labels.double())
        fx.add(p + "cos", out)
        fx.add(p + "loss", loss)
        fx.add(p + "demb", grads[0])
        fx.add(p + "dw", grads[1])
        if b is not None:
            fx.add(p + "b", b)
            fx.add(p + "db", grads[2])
        for key, v in extra.items():
            fx.add(p + key, v)
    return len(cases)


def pair_dist(x):
    """(N,N) Euclidean distances, differentiable off the diagonal (which stays 0)."""
    n = x.shape[0]
    iu = torch.triu_indices(n, n, 1)
    dd = (x[iu[0]] - x[iu[1]]).norm(dim=1)
    z = torch.zeros(n, n)
    return z.index_put((iu[0], iu[1]), dd).index_put((iu[1], iu[0]), dd)


def pair_loss(kind, x, y, cfg):
    """(the matrix the loss is computed on, loss, hinges, gaps) of a pair loss on features x:
    distances (contrastive, triplet) or cosine similarities (multi-similarity). hinges: groups
    of signed distances of each hinge / pair-selection test from its switch; gaps: distances
    between the candidates of each argmax/argmin choice. They keep the batch clear of kinks."""
    n = x.shape[0]
    same = y[:, None] == y[None, :]
    eye = torch.eye(n, dtype=torch.bool)
    pos, neg = same & ~eye, ~same
    hinges, gaps = [], []
    if kind == HEAD_MULTISIM:
        S = x @ x.t()
        al, be, la, eps = cfg["alpha"], cfg["beta"], cfg["base"], cfg["eps"]
        Sd = S.detach()
        total, hp, hn = 0.0, [], []
        for i in range(n):
            P, N = pos[i].nonzero()[:, 0].tolist(), neg[i].nonzero()[:, 0].tolist()
            maxn = float(Sd[i, N].max()) if N else -np.inf
            minp = float(Sd[i, P].min()) if P else np.inf
            # positives with S_ip - ε < max_n S_in, negatives with S_in + ε > min_p S_ip
            kp = [j for j in P if float(Sd[i, j]) - eps < maxn]
            kn = [j for j in N if float(Sd[i, j]) + eps > minp]
            hp += [maxn - (float(Sd[i, j]) - eps) for j in P if N]
            hn += [float(Sd[i, j]) + eps - minp for j in N if P]
            lp = torch.log1p(torch.exp(-al * (S[i, kp] - la)).sum()) / al if kp else 0.0
            ln = torch.log1p(torch.exp(be * (S[i, kn] - la)).sum()) / be if kn else 0.0
            total = total + lp + ln
        return S, total / n, [hp, hn], gaps
    D = pair_dist(x)
    Dd = D.detach()
    if kind == HEAD_CONTRASTIVE:
        iu = torch.triu_indices(n, n, 1)
        d, s = D[iu[0], iu[1]], same[iu[0], iu[1]]
        lp = (F.relu(d[s] - cfg["margin"]) ** 2).mean() if s.any() else 0.0
        ln = (F.relu(cfg["margin_neg"] - d[~s]) ** 2).mean() if (~s).any() else 0.0
        if cfg["margin"] > 0:
            hinges.append([float(v) for v in (d[s] - cfg["margin"])])
        hinges.append([float(v) for v in (cfg["margin_neg"] - d[~s])])
        return D, lp + ln, hinges, gaps
    m, miner = cfg["margin"], cfg["miner"]
    terms = []
    for a in range(n):
        P, N = pos[a].nonzero()[:, 0].tolist(), neg[a].nonzero()[:, 0].tolist()
        dist = lambda j: float(Dd[a, j])
        if miner == MINER_ALL:
            terms += [D[a, p] - D[a, q] + m for p in P for q in N]
        elif miner == MINER_HARD and P and N:
            dp, dn = sorted(map(dist, P)), sorted(map(dist, N))
            gaps += [dp[-1] - dp[-2]] if len(dp) > 1 else []
            gaps += [dn[1] - dn[0]] if len(dn) > 1 else []
            terms.append(D[a, max(P, key=dist)] - D[a, min(N, key=dist)] + m)
        elif miner == MINER_SEMIHARD and N:
            for p in P:
                gaps += [abs(dist(q) - dist(p)) for q in N]
                out = [q for q in N if dist(q) > dist(p)]
                # the closest negative farther than the positive; none: the farthest negative
                cand = sorted(map(dist, out)) if out else sorted(map(dist, N))[::-1]
                gaps += [abs(cand[1] - cand[0])] if len(cand) > 1 else []
                q = min(out, key=dist) if out else max(N, key=dist)
                terms.append(D[a, p] - D[a, q] + m)
    hinges.append([float(t) for t in terms])
    loss = sum(F.relu(t) for t in terms) / len(terms) if terms else torch.zeros(())
    return D, loss, hinges, gaps


def pair_batch(g, labels, d, spread, raw):
    """Class centres on the unit sphere plus noise of size |spread| per class (a list); a class
    with spread < 0 puts its members at +centre and -centre alternately (a positive pair
    farther apart than every negative: semi-hard mining finds no negative). Row norms 0.5..3
    (normalised away unless raw; raw rows keep norms near 1)."""
    c = int(labels.max()) + 1
    centres = F.normalize(rand(g, c, d), dim=1)
    seen = [0] * c
    rows = []
    for y in labels.tolist():
        sign = -1.0 if spread[y] < 0 and seen[y] % 2 else 1.0
        seen[y] += 1
        rows.append(sign * centres[y] + abs(spread[y]) * rand(g, d) / np.sqrt(d))
    x = torch.stack(rows)
    if not raw:
        x = x * (0.5 + 2.5 * torch.rand(len(labels), 1, generator=g))
    return f32(x)


def gen_pair_cases(fx, g):
    n, d = 12, 8
    lab = torch.arange(12) // 3               # 4 classes x 3
    single = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])   # one class of a single sample
    even = [0.8] * 5
    wide = [0.8, 0.8, -0.5, 0.8, 0.8]         # class 2 split in two: see pair_batch
    cases = [   # (kind, margin, margin_neg, miner, raw, labels, spread)
        (HEAD_CONTRASTIVE, 0.0, 1.0, MINER_ALL, 0, lab, even),
        (HEAD_CONTRASTIVE, 0.1, 1.0, MINER_ALL, 0, lab, [0.15] * 5),
        (HEAD_CONTRASTIVE, 0.1, 1.0, MINER_ALL, 1, single, [0.12] * 5),
        (HEAD_TRIPLET, 0.2, 1.0, MINER_ALL, 0, lab, even),
        (HEAD_TRIPLET, 0.2, 1.0, MINER_HARD, 0, single, even),
        (HEAD_TRIPLET, 0.2, 1.0, MINER_SEMIHARD, 0, lab, wide),
        (HEAD_TRIPLET, 0.2, 1.0, MINER_HARD, 1, lab, even),
        (HEAD_TRIPLET, 0.2, 1.0, MINER_SEMIHARD, 1, single, wide),
        (HEAD_MULTISIM, 0.0, 1.0, MINER_ALL, 0, lab, even),
        (HEAD_MULTISIM, 0.0, 1.0, MINER_ALL, 0, single, [1.2] * 5),
    ]
    for i, (kind, m, mneg, miner, raw, labels, spread) in enumerate(cases):
        p = "pl%d/" % i
        cfg = {"margin": fl(m), "margin_neg": fl(mneg), "miner": miner, "alpha": 2.0,
               "beta": 50.0, "base": 0.5, "eps": fl(0.1)}
        for attempt in range(200):   # redraw until no decision sits within 1e-3 of its switch
            perm = torch.randperm(n, generator=g)
            y = labels[perm]
            emb = leaf(pair_batch(g, y, d, spread, raw))
            x = emb if raw else F.normalize(emb, dim=1, eps=1e-12)
            mat, loss, hinges, gaps = pair_loss(kind, x, y, cfg)
            clear = all(abs(v) > 1e-3 for h in hinges for v in h) and all(v > 1e-3 for v in gaps)
            if clear and all(max(h) > 0 > min(h) for h in hinges if h):
                break
        else:
            raise AssertionError("pair case %d: no batch clear of the switches" % i)
        if kind == HEAD_TRIPLET and miner == MINER_SEMIHARD:
            Dd = mat.detach()
            fallback = sum(1 for a in range(n) for q in range(n) if q != a and y[q] == y[a]
                           and all(Dd[a, j] <= Dd[a, q] for j in range(n) if y[j] != y[a]))
            assert 0 < fallback, "no positive pair without a semi-hard negative"
        (demb,) = grad_of(loss, None, emb)
        fx.add(p + "cfg", [kind, n, d, cfg["margin"], cfg["margin_neg"], miner, raw,
                           cfg["alpha"], cfg["beta"], cfg["base"], cfg["eps"]])
        fx.add(p + "emb", emb)
        fx.add(p + "labels", y.double())
        fx.add(p + "mat", mat)
        fx.add(p + "loss", loss)
        fx.add(p + "demb", demb)
    return len(cases)


def gen_heads2(outdir):
    """Combined margin, SphereFace (both), AdaCos (both), sub-center ArcFace, L2-constrained
    softmax and the pair losses of src/head.c and src/pairloss.c -> heads2_ref.bin
    (tests/test_heads2.c)."""
    g = torch.Generator().manual_seed(20240603)
    fx = Fixture()
    gen_head2_cases(fx, g)
    gen_pair_cases(fx, g)
    fx.write(os.path.join(outdir, "heads2_ref.bin"))

# ---------------------------------------------------------------- zoo: whole networks
# torchvision's ResNet-18/34/50 and MobileNetV2 against simile's zoo (src/zoo.c), at 64 px.
# The weights are not stored: both sides fill every tensor from its name (fill_values, the
# same in tests/test_zoo.c), so 25 M parameters cost nothing in the fixture.

ZOO_N, ZOO_PX, ZOO_CLASSES, ZOO_DIM, ZOO_HEAD_CLASSES, ZOO_K = 4, 64, 10, 16, 5, 32
ZOO_LABELS = [1, 3, 0, 3]
M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def hash_uniform(name, numel):
    """u_j in (-1, 1), j < numel, float32-exact: splitmix64's finaliser of
    fnv1a64(name) + (j + 1) * golden, top 24 bits k -> (2k + 1) / 2^24 - 1."""
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(name)) + (np.arange(numel, dtype=np.uint64) + np.uint64(1)) \
            * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    k = (z >> np.uint64(40)).astype(np.float64)
    return (2.0 * k + 1.0) / 16777216.0 - 1.0


def fill_values(name, shape):
    """The value of every element of tensor `name`, float32-rounded: running means 0.1u,
    running variances 1 + 0.5u, weights of rank >= 2 u*sqrt(6/fan_in) (variance 2/fan_in),
    batch-norm weights 1 + 0.25u, biases 0.1u."""
    numel = int(np.prod(shape))
    u = hash_uniform(name, numel)
    if name.endswith(".running_mean"):
        v = 0.1 * u
    elif name.endswith(".running_var"):
        v = 1.0 + 0.5 * u
    elif len(shape) >= 2:
        v = u * np.sqrt(6.0 / (numel // shape[0]))
    elif name.endswith(".weight"):
        v = 1.0 + 0.25 * u
    else:
        v = 0.1 * u
    return torch.from_numpy(v.astype(np.float32).astype(np.float64).reshape(shape))


class ZooNet(torch.nn.Module):
    """A torchvision backbone with simile's embedding (Linear -> dim, BatchNorm1d) in place of
    its classifier; state_dict names "backbone.<torchvision name>" and "embedding.{0,1}.*"."""

    def __init__(self, backbone, feat, dim):
        super().__init__()
        self.backbone = backbone
        self.embedding = torch.nn.Sequential(torch.nn.Linear(feat, dim), torch.nn.BatchNorm1d(dim))

    def forward(self, x):
        return self.embedding(self.backbone(x))


def zoo_fill(model):
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            t.copy_(fill_values(k[len("backbone."):] if k.startswith("backbone.") else k,
                                tuple(t.shape)))


def zoo_build(arch, dim):
    import torchvision
    ctor = {"resnet18": torchvision.models.resnet18, "resnet34": torchvision.models.resnet34,
            "resnet50": torchvision.models.resnet50,
            "mobilenet-v2": torchvision.models.mobilenet_v2}[arch]
    if dim == 0:
        model = ctor(num_classes=ZOO_CLASSES)
    else:
        bb = ctor()
        if arch == "mobilenet-v2":
            feat, bb.classifier = bb.classifier[1].in_features, torch.nn.Identity()
        else:
            feat, bb.fc = bb.fc.in_features, torch.nn.Identity()
        model = ZooNet(bb, feat, dim)
    zoo_fill(model)
    return model.double()


def zoo_names(model):
    return [(k[len("backbone."):] if k.startswith("backbone.") else k, t)
            for k, t in model.state_dict().items() if not k.endswith("num_batches_tracked")]


def zoo_train(arch, dtype, frozen=(), bn_eval=False):
    """One training step: loss, {simile name: gradient}, {name: running stat after the step}.
    frozen: name prefixes of modules held fixed (requires_grad off, eval mode: simile's
    sm_model_freeze_stages); bn_eval: every batch norm in eval mode (sm_model_set_bn_eval)."""
    model = zoo_build(arch, ZOO_DIM).to(dtype).train()
    for name, mod in model.named_modules():
        short = name[len("backbone."):] if name.startswith("backbone.") else name
        if any(short == f or short.startswith(f + ".") for f in frozen):
            mod.eval()
            for prm in mod.parameters(recurse=False):
                prm.requires_grad_(False)
        if bn_eval and isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.eval()
    x = torch.from_numpy(hash_uniform("input", ZOO_N * 3 * ZOO_PX * ZOO_PX)).to(dtype)
    x = x.reshape(ZOO_N, 3, ZOO_PX, ZOO_PX)
    w = fill_values("head.weight", (ZOO_HEAD_CLASSES, ZOO_DIM)).to(dtype).requires_grad_(True)
    emb = model(x)
    _, loss = head_loss(HEAD_ARCFACE, emb, w, None, torch.tensor(ZOO_LABELS), fl(30.0), fl(0.5), 0)
    params = {k: prm for k, prm in model.named_parameters() if prm.requires_grad}
    grads = torch.autograd.grad(loss, list(params.values()) + [w])
    gd = {(k[len("backbone."):] if k.startswith("backbone.") else k): gr.double()
          for k, gr in zip(params.keys(), grads)}
    gd["head.weight"] = grads[-1].double()
    stats = {k: t.double() for k, t in zoo_names(model) if "running" in k}
    return float(loss), gd, stats


def zoo_eval(arch, dtype):
    model = zoo_build(arch, 0).to(dtype).eval()
    x = torch.from_numpy(hash_uniform("input", ZOO_N * 3 * ZOO_PX * ZOO_PX)).to(dtype)
    with torch.no_grad():
        return model(x.reshape(ZOO_N, 3, ZOO_PX, ZOO_PX)).double()


def rel(a, b):
    return float((a - b).norm() / b.norm())


def gen_zoo(outdir):
    """Eval outputs (torchvision's classifier, 10 classes) and one ArcFace training step
    (embedding 16, 5 classes, batch 4) of each zoo network -> zoo_ref.bin (tests/test_zoo.c).
    Per trainable tensor: ZOO_K gradient entries at random positions ("<arch>/g/<name>/idx",
    "/val") and over the whole tensor its L2 norm and its dot product with the tensor
    hash_uniform(name + "#r") ("/stat"); the same entries of every running statistic after the
    step ("<arch>/s/<name>/..."). "<arch>/f32" holds how far PyTorch's own float32 run is from
    the float64 reference (eval output, worst gradient tensor): the conditioning. Two
    fine-tuning cases have a training step only: "resnet18-freeze2" (frozen tensors have no
    "/g/" entry: their gradient must be 0) and "mobilenet-v2-bneval". Some
    gradients are 0 in exact arithmetic (a bias followed by a batch norm in training mode:
    embedding.0.bias, MobileNetV2's projection batch norms before a block without residual);
    their stored values are float64 round-off."""
    g = np.random.default_rng(20261203)
    fx = Fixture()
    # fine-tuning: ResNet-18 with stages 0-1 frozen (sm_model_freeze_stages 2: conv1, bn1,
    # layer1), MobileNetV2 with every batch norm in eval mode
    tunes = {"resnet18-freeze2": ("resnet18", ("conv1", "bn1", "layer1"), False),
             "mobilenet-v2-bneval": ("mobilenet-v2", (), True)}
    for arch in ("resnet18", "resnet34", "resnet50", "mobilenet-v2") + tuple(tunes):
        net, frozen, bn_eval = tunes.get(arch, (arch, (), False))
        if arch not in tunes:
            out = zoo_eval(arch, torch.float64)
            fx.add(arch + "/eval", out)
        loss, gd, stats = zoo_train(net, torch.float64, frozen, bn_eval)
        fx.add(arch + "/loss", [loss])
        _, gd32, _ = zoo_train(net, torch.float32, frozen, bn_eval)
        worst, top = 0.0, max(float(t.norm()) for t in gd.values())
        for name, gr in gd.items():
            flat = gr.reshape(-1)
            idx = g.choice(flat.numel(), size=min(ZOO_K, flat.numel()), replace=False)
            r = torch.from_numpy(hash_uniform(name + "#r", flat.numel()))
            fx.add(arch + "/g/" + name + "/idx", idx.astype(np.float64))
            fx.add(arch + "/g/" + name + "/val", flat[idx])
            fx.add(arch + "/g/" + name + "/stat", [float(flat.norm()), float(flat @ r)])
            if flat.norm() > 1e-9 * top:   # not a gradient that is 0 in exact arithmetic
                worst = max(worst, rel(gd32[name], gr))
        for name, t in stats.items():
            flat = t.reshape(-1)
            idx = g.choice(flat.numel(), size=min(ZOO_K, flat.numel()), replace=False)
            fx.add(arch + "/s/" + name + "/idx", idx.astype(np.float64))
            fx.add(arch + "/s/" + name + "/val", flat[idx])
        e32 = rel(zoo_eval(arch, torch.float32), out) if arch not in tunes else 0.0
        fx.add(arch + "/f32", [e32, worst])
        print("%s: loss %.6f, torch float32 vs float64: eval %.2e, worst gradient %.2e"
              % (arch, loss, e32, worst))
    fx.write(os.path.join(outdir, "zoo_ref.bin"))


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    sections = sys.argv[2:] or ["kernels", "heads", "heads2", "zoo"]
    for name in sections:
        globals()["gen_" + name](outdir)


if __name__ == "__main__":
    main()
