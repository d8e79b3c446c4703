#!/usr/bin/python3
"""gen_eval_ref.py - numpy reference for the retrieval metrics of src/eval.c.

Writes tests/fixtures/eval_ref.txt (read by tests/test_eval.c). Independent of
the C code: similarities by a float64 matrix product, rankings by np.lexsort
(similarity descending, then reference index ascending), metrics as
pytorch-metric-learning's AccuracyCalculator defines them (avg_of_avgs=False),
with lone queries (R = 0) left out of every mean but the kNN accuracy, and
Recall@K in the deep-metric-learning sense (any of the top K relevant).

Embedding entries are multiples of 1/4 in [-1/2, 1/2], so every dot product is
exact in float32 as well: the C side and this script rank identically.

Format: per case, a header line "n d same_set", n lines "label x_1 .. x_d", then
"n_valid p@1 r_precision map@r r@1 r@2 r@4 r@8 knn". same_set = 1: leave-one-out
on all n rows; 0: the first n//2 rows are queries, the rest references.

Usage: /usr/bin/python3 tools/gen_eval_ref.py [out_dir]   (default tests/fixtures)
"""
import os
import sys

import numpy as np


def metrics(q, ql, r, rl, same):
    sims = q @ r.T
    nq, nr = sims.shape
    p1 = rp = mapr = knn = 0.0
    rec = np.zeros(4)
    nv = 0
    for i in range(nq):
        idx = np.arange(nr)
        s = sims[i]
        if same:
            keep = idx != i
            idx, s = idx[keep], s[keep]
        order = idx[np.lexsort((idx, -s))]
        rel = (rl[order] == ql[i]).astype(np.float64)
        R = int(rel.sum())
        knn += rel[0]
        if R == 0:
            continue
        nv += 1
        p1 += rel[0]
        top = rel[:R]
        rp += top.sum() / R
        prec = np.cumsum(top) / np.arange(1, R + 1)
        mapr += (prec * top).sum() / R
        for t, k in enumerate((1, 2, 4, 8)):
            rec[t] += rel[:k].max()
    inv = 1.0 / nv if nv else 0.0
    return [nv, p1 * inv, rp * inv, mapr * inv, *(rec * inv), knn / nq]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    rng = np.random.default_rng(2024)
    cases = [(120, 6, 5, 1), (150, 4, 8, 0), (90, 3, 40, 1)]   # (n, d, classes, same_set)
    lines = []
    for n, d, ncls, same in cases:
        x = rng.integers(-2, 3, size=(n, d)).astype(np.float64) / 4
        lab = rng.integers(0, ncls, size=n).astype(np.int64)
        if same:
            m = metrics(x, lab, x, lab, True)
        else:
            h = n // 2
            m = metrics(x[:h], lab[:h], x[h:], lab[h:], False)
        lines.append(f"{n} {d} {same}")
        for i in range(n):
            lines.append(f"{lab[i]} " + " ".join(f"{v:g}" for v in x[i]))
        lines.append(f"{m[0]} " + " ".join(f"{v:.17g}" for v in m[1:]))
    path = os.path.join(out, "eval_ref.txt")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
