"""milk's type inference against PyTorch on randomized configurations.

For seeded random configurations of conv, conv_transpose (1-D and 2-D,
groups, dilation, output_padding), max_pool / avg_pool (ceil_mode),
upsampling and matmul broadcasting, PyTorch runs the operation on a zero
tensor and its output shape is the expected value; milk builds the same op
as coremltools would write it (through the helper program infer_shapes,
ASan build) and must infer that shape. Where PyTorch rejects a
configuration, milk must reject it too.
"""
import os
import random
import subprocess
import warnings

import pytest
import torch
import torch.nn.functional as F

from conftest import BUILD

SEED = 20240611
HELPER = BUILD / "asan" / "tools" / "infer_shapes"


def ints(v):
    return "ints:" + ",".join(str(int(a)) for a in v)


def dims(shape):
    return ",".join(str(d) for d in shape)


def run_cases(lines):
    """One output line per case line."""
    assert HELPER.exists(), f"{HELPER} is missing: run make pytest"
    r = subprocess.run([str(HELPER)], input="\n".join(lines) + "\n",
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert len(out) == len(lines), r.stdout + r.stderr
    return out


def torch_shape(fn):
    """PyTorch's output shape, or None if PyTorch rejects the case. An
    empty output (PyTorch's 1-D pooling returns one instead of failing)
    counts as rejected: coremltools refuses output sizes below 1."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shape = tuple(fn().shape)
    except (RuntimeError, ValueError):
        return None
    return shape if all(d > 0 for d in shape) else None


def check(cases):
    """cases: list of (case line, torch shape or None, description)."""
    out = run_cases([c[0] for c in cases])
    bad = []
    for (line, want, what), got in zip(cases, out):
        if want is None:
            ok = got.startswith("err ")
        else:
            ok = got == "ok fp32:" + dims(want)
        if not ok:
            bad.append(f"{what}\n  case: {line}\n  torch: {want}\n  milk: {got}")
    assert not bad, f"{len(bad)} of {len(cases)} differ:\n" + "\n".join(bad[:10])


# ---- conv ----------------------------------------------------------------

def conv_case(rng):
    S = rng.choice([1, 2])
    groups = rng.choice([1, 1, 2, 3])
    cin, cout = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
    n = rng.randint(1, 2)
    size = [rng.randint(1, 14) for _ in range(S)]
    k = [rng.randint(1, 5) for _ in range(S)]
    s = [rng.randint(1, 3) for _ in range(S)]
    d = [rng.randint(1, 3) for _ in range(S)]
    mode = rng.choice(["valid", "custom", "custom", "same"])
    if mode == "same":
        s = [1] * S  # PyTorch's padding="same" needs stride 1
    pads = [rng.randint(0, 3) for _ in range(2 * S)] if mode == "custom" \
        else [0] * (2 * S)
    x = torch.zeros([n, cin] + size)
    w = torch.zeros([cout, cin // groups] + k)
    conv = F.conv1d if S == 1 else F.conv2d

    def run():
        if mode == "same":
            return conv(x, w, None, 1, "same", d, groups)
        # F.pad takes (before, after) pairs from the last dim backwards
        torch_pad = []
        for i in reversed(range(S)):
            torch_pad += [pads[2 * i], pads[2 * i + 1]]
        return conv(F.pad(x, torch_pad), w, None, s, 0, d, groups)

    line = (f"ios17 conv x=in:fp32:{dims(x.shape)} weight=w:fp32:{dims(w.shape)} "
            f"strides={ints(s)} dilations={ints(d)} groups=int:{groups} "
            f"pad_type=str:{mode} pad={ints(pads)}")
    return line, torch_shape(run), f"conv S={S} {mode} k={k} s={s} d={d} pads={pads}"


def test_conv_shapes():
    rng = random.Random(SEED)
    check([conv_case(rng) for _ in range(150)])


# ---- conv_transpose ------------------------------------------------------

def conv_transpose_case(rng):
    S = rng.choice([1, 2])
    groups = rng.choice([1, 1, 2])
    cin, cout = groups * rng.randint(1, 3), groups * rng.randint(1, 3)
    size = [rng.randint(1, 9) for _ in range(S)]
    k = [rng.randint(1, 5) for _ in range(S)]
    s = [rng.randint(1, 4) for _ in range(S)]
    d = [rng.randint(1, 2) for _ in range(S)]
    p = [rng.randint(0, 3) for _ in range(S)]
    # PyTorch: output_padding < stride or < dilation
    op = [rng.randint(0, max(si, di) - 1) for si, di in zip(s, d)]
    x = torch.zeros([1, cin] + size)
    w = torch.zeros([cin, cout // groups] + k)
    convt = F.conv_transpose1d if S == 1 else F.conv_transpose2d
    want = torch_shape(lambda: convt(x, w, None, s, p, op, groups, d))
    line = (f"ios18 conv_transpose x=in:fp32:{dims(x.shape)} "
            f"weight=w:fp32:{dims(w.shape)} strides={ints(s)} "
            f"dilations={ints(d)} groups=int:{groups}")
    if all(o <= pi for o, pi in zip(op, p)):
        # output_padding as a smaller trailing pad: (p, p - output_padding)
        pads = [v for pi, o in zip(p, op) for v in (pi, pi - o)]
        line += f" pad_type=str:custom pad={ints(pads)}"
        how = f"custom pads {pads}"
    else:
        # coremltools states the size through the full output_shape
        line += f" pad_type=str:custom pad={ints([v for pi in p for v in (pi, pi)])}"
        if want is not None:
            line += f" output_shape={ints(want)}"
        how = "output_shape"
    return line, want, f"conv_transpose S={S} k={k} s={s} d={d} p={p} op={op} ({how})"


def test_conv_transpose_shapes():
    rng = random.Random(SEED + 1)
    check([conv_transpose_case(rng) for _ in range(120)])


# ---- pooling -------------------------------------------------------------

def pool_case(rng):
    S = rng.choice([1, 2])
    kind = rng.choice(["max_pool", "avg_pool"])
    size = [rng.randint(1, 16) for _ in range(S)]
    k = [rng.randint(1, 5) for _ in range(S)]
    s = [rng.randint(1, 4) for _ in range(S)]
    p = [rng.randint(0, ki // 2) for ki in k]  # PyTorch: pad <= kernel / 2
    ceil = rng.random() < 0.5
    if ceil:
        # coremltools drops a last window that starts past the input only
        # when there is padding; PyTorch always does. They agree whenever
        # that window cannot start past the input without padding: k >= s.
        s = [min(si, ki) if pi == 0 else si for si, ki, pi in zip(s, k, p)]
    x = torch.zeros([1, 2] + size)
    if kind == "max_pool":
        fn = F.max_pool1d if S == 1 else F.max_pool2d
    else:
        fn = F.avg_pool1d if S == 1 else F.avg_pool2d
    want = torch_shape(lambda: fn(x, k, s, p, ceil_mode=ceil))
    mode = "custom" if any(p) else "valid"
    pads = [v for pi in p for v in (pi, pi)]
    line = (f"ios16 {kind} x=in:fp32:{dims(x.shape)} kernel_sizes={ints(k)} "
            f"strides={ints(s)} pad_type=str:{mode} pad={ints(pads)} "
            f"ceil_mode=bool:{int(ceil)}")
    return line, want, f"{kind} S={S} k={k} s={s} p={p} ceil={ceil}"


def test_pool_shapes():
    rng = random.Random(SEED + 2)
    check([pool_case(rng) for _ in range(150)])


# ---- upsampling ----------------------------------------------------------

# Scales exact in fp32, so that floor(H * scale) is the same whether the
# product is taken on PyTorch's double or on milk's fp32 constant.
SCALES = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0]


def upsample_case(rng):
    kind = rng.choice(["nearest", "bilinear"])
    h, w = rng.randint(2, 12), rng.randint(2, 12)
    sh, sw = rng.choice(SCALES), rng.choice(SCALES)
    x = torch.zeros([1, 3, h, w])
    kw = {} if kind == "nearest" else {"align_corners": False}
    want = torch_shape(lambda: F.interpolate(x, scale_factor=(sh, sw),
                                             mode=kind, **kw))
    if sh.is_integer() and sw.is_integer() and rng.random() < 0.5:
        scales = f"scale_factor_height=int:{int(sh)} scale_factor_width=int:{int(sw)}"
    else:
        scales = f"scale_factor_height=float:{sh} scale_factor_width=float:{sw}"
    op = "upsample_nearest_neighbor" if kind == "nearest" else "upsample_bilinear"
    extra = "" if kind == "nearest" else " align_corners=bool:0"
    line = f"ios16 {op} x=in:fp32:{dims(x.shape)} {scales}{extra}"
    return line, want, f"{op} {h}x{w} scales ({sh}, {sw})"


def test_upsample_shapes():
    rng = random.Random(SEED + 3)
    check([upsample_case(rng) for _ in range(60)])


# ---- matmul --------------------------------------------------------------

def matmul_case(rng):
    rx, ry = rng.randint(1, 4), rng.randint(1, 4)
    m, k, n = rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 5)
    batch = [rng.randint(2, 4) for _ in range(2)]

    def batch_of(r):
        b = batch[len(batch) - (r - 2):] if r > 2 else []
        return [1 if rng.random() < 0.3 else d for d in b]

    xs = [k] if rx == 1 else batch_of(rx) + [m, k]
    ys = [k] if ry == 1 else batch_of(ry) + [k, n]
    if rng.random() < 0.15:  # a mismatched inner dim
        ys[0 if ry == 1 else -2] += 1
    if rng.random() < 0.1 and rx > 2 and ry > 2:  # mismatched batch dims
        xs[-3] = ys[-3] + 1 if ys[-3] != 1 else 2
    tx = rx > 1 and rng.random() < 0.3
    ty = ry > 1 and rng.random() < 0.3
    # matmul sees x and y after the transposes: store them transposed
    xs_stored = xs[:-2] + [xs[-1], xs[-2]] if tx else xs
    ys_stored = ys[:-2] + [ys[-1], ys[-2]] if ty else ys
    x, y = torch.zeros(xs_stored), torch.zeros(ys_stored)

    def run():
        return torch.matmul(x.transpose(-1, -2) if tx else x,
                            y.transpose(-1, -2) if ty else y)

    line = (f"ios17 matmul x=in:fp32:{dims(xs_stored)} y=in:fp32:{dims(ys_stored)} "
            f"transpose_x=bool:{int(tx)} transpose_y=bool:{int(ty)}")
    return line, torch_shape(run), f"matmul {xs_stored} {ys_stored} tx={tx} ty={ty}"


def test_matmul_shapes():
    rng = random.Random(SEED + 4)
    cases = [matmul_case(rng) for _ in range(150)]
    # the generator must produce both kinds, or the test proves little
    assert sum(c[1] is None for c in cases) >= 5
    assert sum(c[1] is not None for c in cases) >= 100
    check(cases)


def test_helper_reports_errors():
    """A malformed case is an error line, not a crash."""
    out = run_cases(["ios17 conv x=in:fp32:1,3,8,8",
                     "ios99 relu x=in:fp32:2",
                     "ios17 relu x=in:fp32:2,?"])
    assert out[0].startswith("err ") and "weight" in out[0]
    assert out[1].startswith("err ")
    assert out[2] == "ok fp32:2,?"
