#!/usr/bin/python3
"""gen_ref.py - golden test fixtures for simile, computed by PyTorch.

Run with Debian's interpreter, which has python3-torch and numpy:
    /usr/bin/python3 tools/gen_ref.py tests/fixtures        (or: make fixtures)

Each section is a function gen_<section>(outdir) writing one fixture file;
main() calls them all: gen_kernels -> kernels_ref.bin (tests/test_kernels.c),
gen_heads -> heads_ref.bin (the loss heads, optimizers and schedules; tests/test_heads.c). Cases are small random problems computed in double
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


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    os.makedirs(outdir, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    gen_kernels(outdir)
    gen_heads(outdir)


if __name__ == "__main__":
    main()
