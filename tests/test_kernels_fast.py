"""The fast (OpenBLAS) kernels of conv, conv_transpose, linear, matmul and
scaled_dot_product_attention against their reference kernels, on a few
hundred seeded random configurations (shapes, strides, pads, dilations,
groups, output_shape, broadcasting, transposes, masks).

Each configuration runs twice in one batch of the opcheck helper, with
reference=True and reference=False; the two outputs must agree within
1e-5 relative (max |fast - ref| / max |ref|). For conv and conv_transpose
the reference output is also compared with PyTorch (padding applied
explicitly, from MIL's rules, as in test_kernels_conv.py), so that the
random shapes check the reference too. A subset runs on the ASan build,
which catches any out-of-bounds index in im2col / col2im.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from milkop import Const, rel_err, run_ops

SEED = 20240917
TOL = 1e-5


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- configurations --------------------------------------------------------

def conv_out(n, k, s, d, pad_type, pads):
    keff = (k - 1) * d + 1
    if pad_type in ("same", "same_lower"):
        return math.ceil(n / s)
    return (n + (sum(pads) if pad_type == "custom" else 0) - keff) // s + 1


def mil_pads(n, k, s, d, pad_type, pads):
    if pad_type == "custom":
        return pads
    if pad_type == "valid":
        return (0, 0)
    keff = (k - 1) * d + 1
    total = max(0, (math.ceil(n / s) - 1) * s + keff - n)
    small = total // 2
    return (total - small, small) if pad_type == "same_lower" else (small, total - small)


def random_conv(rng):
    S = rng.randint(1, 4)
    groups = rng.choice([1, 1, 2, 3])
    cig, cog = rng.randint(1, 5), rng.randint(1, 5)
    if rng.rand() < 0.2:  # depthwise
        cig, cog, groups = 1, rng.randint(1, 3), rng.randint(2, 7)
    pad_type = rng.choice(["valid", "same", "same_lower", "custom"])
    weight_const = rng.rand() < 0.85
    kmax, nmax = (5, 14) if S < 3 else (3, 7)
    while True:
        k = [rng.randint(1, kmax + 1) for _ in range(S)]
        s = [rng.randint(1, 4) for _ in range(S)]
        d = [rng.randint(1, 4) if weight_const else 1 for _ in range(S)]
        pads = [(rng.randint(0, 4), rng.randint(0, 4)) for _ in range(S)]
        n = [rng.randint(1, nmax + 1) for _ in range(S)]
        if all(conv_out(*a, pad_type, p) >= 1 for a, p in zip(zip(n, k, s, d), pads)):
            break
    return dict(N=rng.randint(1, 3), cin=cig * groups, cout=cog * groups,
                groups=int(groups), k=k, s=s, d=d, n=n, pad_type=pad_type,
                pads=pads, bias=rng.rand() < 0.7, weight_const=weight_const)


def conv_case(rng, c):
    x = randn(rng, c["N"], c["cin"], *c["n"])
    w = randn(rng, c["cout"], c["cin"] // c["groups"], *c["k"])
    b = randn(rng, c["cout"]) if c["bias"] else None
    inputs = [("x", x), ("weight", Const(w) if c["weight_const"] else w)]
    if b is not None:
        inputs.append(("bias", Const(b)))
    inputs += [("strides", c["s"]), ("dilations", c["d"]), ("groups", c["groups"]),
               ("pad_type", c["pad_type"])]
    if c["pad_type"] == "custom":
        inputs.append(("pad", [p for pair in c["pads"] for p in pair]))
    # PyTorch on x padded by MIL's rule
    pads = [mil_pads(*a, c["pad_type"], p)
            for a, p in zip(zip(c["n"], c["k"], c["s"], c["d"]), c["pads"])]
    flat = [p for pair in reversed(pads) for p in pair]
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(c["n"])]
    want = fn(F.pad(torch.from_numpy(x), flat), torch.from_numpy(w),
              None if b is None else torch.from_numpy(b), stride=c["s"],
              dilation=c["d"], groups=c["groups"]).numpy()
    return "conv", inputs, want


def random_conv_transpose(rng):
    S = rng.randint(1, 4)
    groups = rng.choice([1, 1, 2, 4])
    cig, cog = rng.randint(1, 5), rng.randint(1, 5)
    kmax, nmax = (5, 9) if S < 3 else (3, 5)
    k = [rng.randint(1, kmax + 1) for _ in range(S)]
    s = [rng.randint(1, 4) for _ in range(S)]
    d = [rng.randint(1, 3) for _ in range(S)]
    n = [rng.randint(1, nmax + 1) for _ in range(S)]
    full = [(a - 1) * st + (kk - 1) * dd + 1 for a, st, kk, dd in zip(n, s, k, d)]
    kind = rng.choice(["valid", "custom", "same", "output_shape"])
    pads = [(rng.randint(0, f // 2 + 1), 0) for f in full]
    pads = [(pb, rng.randint(0, f - pb)) for (pb, _), f in zip(pads, full)]
    out = None
    if kind == "output_shape":
        # any size from a crop to beyond the full result (output_padding)
        out = [max(1, f - pb - pa + rng.randint(-2, 3)) for f, (pb, pa) in zip(full, pads)]
    return dict(N=rng.randint(1, 3), cin=cig * groups, cout=cog * groups,
                groups=int(groups), k=k, s=s, d=d, n=n, kind=kind, pads=pads,
                out=out, bias=rng.rand() < 0.7, weight_const=rng.rand() < 0.85)


def convt_window(c, full_shape):
    """(begin, size) per spatial dim of the full transposed convolution."""
    res = []
    for i, f in enumerate(full_shape):
        n, k, s, d = c["n"][i], c["k"][i], c["s"][i], c["d"][i]
        keff = (k - 1) * d + 1
        pb, pa = c["pads"][i]
        if c["kind"] == "valid":
            res.append((0, f))
        elif c["kind"] == "custom":
            res.append((pb, f - pb - pa))
        elif c["kind"] == "same":
            res.append((max(0, keff - s) // 2, n * s))
        else:
            res.append((pb, c["out"][i]))
    return res


def conv_transpose_case(rng, c):
    x = randn(rng, c["N"], c["cin"], *c["n"])
    w = randn(rng, c["cin"], c["cout"] // c["groups"], *c["k"])
    b = randn(rng, c["cout"]) if c["bias"] else None
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[len(c["n"])]
    full = fn(torch.from_numpy(x), torch.from_numpy(w), stride=c["s"],
              dilation=c["d"], groups=c["groups"]).numpy()
    win = convt_window(c, full.shape[2:])
    want = np.zeros(full.shape[:2] + tuple(sz for _, sz in win), dtype=np.float32)
    src, dst = [slice(None)] * 2, [slice(None)] * 2
    for (begin, size), f in zip(win, full.shape[2:]):
        m = max(0, min(size, f - begin))
        src.append(slice(begin, begin + m))
        dst.append(slice(0, m))
    want[tuple(dst)] = full[tuple(src)]
    if b is not None:
        want += b.reshape((1, -1) + (1,) * len(win))
    inputs = [("x", x), ("weight", Const(w) if c["weight_const"] else w)]
    if b is not None:
        inputs.append(("bias", Const(b)))
    inputs += [("strides", c["s"]), ("dilations", c["d"]), ("groups", c["groups"])]
    if c["kind"] in ("custom", "output_shape"):
        inputs += [("pad_type", "custom"), ("pad", [p for pr in c["pads"] for p in pr])]
    else:
        inputs.append(("pad_type", c["kind"]))
    if c["kind"] == "output_shape":
        inputs.append(("output_shape", list(want.shape)))
    return "conv_transpose", inputs, want


def linear_case(rng):
    rank = rng.randint(1, 5)
    d_in, d_out = rng.randint(1, 70), rng.randint(1, 70)
    xs = [rng.randint(1, 5) for _ in range(rank - 1)] + [d_in]
    x, w = randn(rng, *xs), randn(rng, d_out, d_in)
    inputs = [("x", x), ("weight", Const(w))]
    b = None
    if rng.rand() < 0.7:
        b = randn(rng, d_out)
        inputs.append(("bias", Const(b)))
    want = x @ w.T + (0 if b is None else b)
    return "linear", inputs, want


def matmul_case(rng):
    M, N, K = rng.randint(1, 20), rng.randint(1, 20), rng.randint(1, 40)
    rx, ry = rng.randint(1, 5), rng.randint(1, 5)
    batch = [rng.randint(1, 4) for _ in range(max(rx, ry) - 2)]

    def batch_of(r):
        dims = batch[len(batch) - (r - 2):] if r > 2 else []
        return [1 if rng.rand() < 0.3 else b for b in dims]
    tx = rx > 1 and rng.rand() < 0.4
    ty = ry > 1 and rng.rand() < 0.4
    xs = [K] if rx == 1 else batch_of(rx) + ([K, M] if tx else [M, K])
    ys = [K] if ry == 1 else batch_of(ry) + ([N, K] if ty else [K, N])
    x, y = randn(rng, *xs), randn(rng, *ys)
    inputs = [("x", x), ("y", Const(y) if rng.rand() < 0.3 else y)]
    if tx:
        inputs.append(("transpose_x", True))
    if ty:
        inputs.append(("transpose_y", True))
    want = np.matmul(np.swapaxes(x, -1, -2) if tx else x,
                     np.swapaxes(y, -1, -2) if ty else y)
    return "matmul", inputs, want


def sdpa_case(rng):
    rank = rng.randint(3, 6)
    batch = [rng.randint(1, 4) for _ in range(rank - 2)]
    L, S, E, EV = (rng.randint(1, 12) for _ in range(4))
    q, k, v = randn(rng, *batch, L, E), randn(rng, *batch, S, E), randn(rng, *batch, S, EV)
    inputs = [("query", q), ("key", k), ("value", v)]
    kind = rng.choice(["none", "bool", "float"])
    if kind != "none":
        mrank = rng.randint(1, rank + 1)
        full = batch + [L, S]
        mshape = [1 if (i < len(full) - 1 and rng.rand() < 0.4) else full[i]
                  for i in range(len(full) - mrank, len(full))]
        if kind == "bool":
            m = rng.rand(*mshape) < 0.7
            m[..., 0] = True  # no row masked everywhere
        else:
            m = randn(rng, *mshape)
        inputs.append(("attn_mask", m))
    return "scaled_dot_product_attention", inputs, None


def all_cases():
    rng = np.random.RandomState(SEED)
    cases = [conv_case(rng, random_conv(rng)) for _ in range(130)]
    cases += [conv_transpose_case(rng, random_conv_transpose(rng)) for _ in range(100)]
    cases += [linear_case(rng) for _ in range(40)]
    cases += [matmul_case(rng) for _ in range(60)]
    cases += [sdpa_case(rng) for _ in range(40)]
    return cases


def big_cases():
    """Column matrices beyond the 32 MB scratch bound, so the fast kernels
    tile: conv with 576 rows x 16384 columns (37.7 MB), conv_transpose with
    1440 rows x 6400 columns (36.9 MB)."""
    rng = np.random.RandomState(SEED + 1)
    conv = dict(N=1, cin=64, cout=4, groups=1, k=[3, 3], s=[1, 1], d=[1, 1],
                n=[128, 128], pad_type="same", pads=[(0, 0)] * 2, bias=True,
                weight_const=True)
    convt = dict(N=1, cin=1, cout=160, groups=1, k=[3, 3], s=[2, 2], d=[1, 1],
                 n=[80, 80], kind="custom", pads=[(1, 1), (1, 1)], out=None,
                 bias=True, weight_const=True)
    return [conv_case(rng, conv), conv_transpose_case(rng, convt)]


# ---- running ----------------------------------------------------------------

def describe(inputs):
    """param=shape for arrays, param=value for the rest."""
    parts = []
    for p, v in inputs:
        a = getattr(v, "array", v)
        parts.append(f"{p}={list(a.shape)}" if isinstance(a, np.ndarray) else f"{p}={v}")
    return ", ".join(parts)


def compare(cases, asan=False):
    """Runs every case through both kernels; returns failure messages."""
    batch = []
    for op, inputs, _ in cases:
        batch.append((op, inputs, {"reference": True}))
        batch.append((op, inputs, {"reference": False}))
    results = run_ops(batch, asan=asan)
    failures = []
    for i, (op, inputs, want) in enumerate(cases):
        ref, fast = results[2 * i], results[2 * i + 1]
        desc = f"case {i} {op} {describe(inputs)}"
        if isinstance(ref, Exception) or isinstance(fast, Exception):
            failures.append(f"{desc}: {ref if isinstance(ref, Exception) else fast}")
            continue
        err = rel_err(fast[0][0], ref[0][0])
        if not err <= TOL:
            failures.append(f"{desc}: fast vs reference {err:.3g}")
        if want is not None:
            err = rel_err(ref[0][0], want)
            if not err <= TOL:
                failures.append(f"{desc}: reference vs PyTorch/NumPy {err:.3g}")
    return failures


CASES = all_cases()


@pytest.mark.parametrize("op", ["conv", "conv_transpose", "linear", "matmul",
                                "scaled_dot_product_attention"])
def test_fast_matches_reference(op):
    cases = [c for c in CASES if c[0] == op]
    failures = compare(cases)
    assert not failures, f"{len(failures)} of {len(cases)}:\n" + "\n".join(failures[:20])


def test_fast_tiled():
    failures = compare(big_cases())
    assert not failures, "\n".join(failures)


def test_fast_asan_subset():
    """Every fifth case on the ASan + UBSan build."""
    cases = CASES[::5]
    failures = compare(cases, asan=True)
    assert not failures, f"{len(failures)} of {len(cases)}:\n" + "\n".join(failures[:20])
