"""The second edition of the defect table (issue 15): each rule matches its
pattern (positive cases) and nothing else (negative cases), and each
rewrite is proved equivalent by the interpreter on random inputs (the
original and the rewritten program run on the same inputs, reference
kernels, fp32) and checked against NumPy or PyTorch, so that the original
program is known to compute the intended function. The rules that only
warn or refuse on a program's description (enum-multi-input,
opset-vs-target, weights-2gib) are tested in tests/unit/test_rules2.c."""
import json
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import FIXTURES
from rulecase import Batch, Const, Value, op, only, rel_err

EQ = 1e-6


def run(tmp_path, b, asan=False):
    res = b.run(tmp_path, asan=asan)
    for i, r in enumerate(res):
        assert r.error == "", (i, r.error)
    return res


def rules(r):
    return [h["rule"] for h in r.hits]


# ---- pow-base2 ------------------------------------------------------------------------


def test_pow_base2_sweep(tmp_path):
    rng = np.random.default_rng(20)
    b, cases = Batch(), []
    for i in range(40):
        shape = tuple(int(d) for d in rng.integers(1, 5, int(rng.integers(1, 4))))
        y = rng.uniform(-12, 12, shape).astype(np.float32)
        # the base: a scalar, or 2s of a shape that broadcasts y further
        base = np.float32(2.0) if i % 2 else np.full((3,) + (1,) * len(shape), 2, np.float32)
        b.case(inputs=[("y", y)], ops=[op("pow", "z", x=Const(base), y="y")], outputs=["z"],
               options=only("pow-base2"))
        cases.append((y, base))
    res = run(tmp_path, b)
    for r, (y, base) in zip(res, cases):
        assert r.fixed_rules() == ["pow-base2"] and r.unfixed_rules() == []
        assert "pow" not in r.after and "exp" in r.after
        want = np.power(base.astype(np.float64), y.astype(np.float64))
        assert r.orig[0].shape == r.fixed[0].shape == want.shape
        assert rel_err(r.orig[0], want) <= 1e-6
        # exp(y ln 2) rounds y ln 2 to fp32 first: 2^-24 relative on |y ln 2| <= 8.3
        np.testing.assert_allclose(r.fixed[0], want, rtol=2e-6, atol=0)


def test_pow_base2_negative(tmp_path):
    rng = np.random.default_rng(21)
    y = rng.uniform(-3, 3, (4, 5)).astype(np.float32)
    b = Batch()
    b.case(inputs=[("y", y)], ops=[op("pow", "z", x=Const(np.float32(3.0)), y="y")],
           outputs=["z"], options=only("pow-base2"))                      # another base
    b.case(inputs=[("y", y)], ops=[op("pow", "z", x=Const(np.array([2, 3], np.float32)[:, None, None]),
                                      y="y")], outputs=["z"], options=only("pow-base2"))
    b.case(inputs=[("x", np.abs(y))], ops=[op("pow", "z", x="x", y=Value(2.0, "fp32"))],
           outputs=["z"], options=only("pow-base2"))                      # x^2
    for r in run(tmp_path, b):
        assert r.hits == []


# ---- floor-div-one ------------------------------------------------------------------------


def test_floor_div_one(tmp_path):
    rng = np.random.default_rng(22)
    b, xs = Batch(), []
    for _ in range(20):
        x = (rng.standard_normal(tuple(int(d) for d in rng.integers(1, 6, 3))) * 10).astype(np.float32)
        x.flat[0] = -2.5
        b.case(inputs=[("x", x)], ops=[op("floor_div", "z", x="x", y=Value(1.0, "fp32"))],
               outputs=["z"], options=only("floor-div-one"))
        xs.append(x)
    # negatives: another divisor, an integer x
    b.case(inputs=[("x", xs[0])], ops=[op("floor_div", "z", x="x", y=Value(2.0, "fp32"))],
           outputs=["z"], options=only("floor-div-one"))
    xi = rng.integers(-9, 9, (3, 4)).astype(np.int32)
    b.case(inputs=[("x", xi)], ops=[op("floor_div", "z", x="x", y=Value(1))],
           outputs=["z"], options=only("floor-div-one"))
    res = run(tmp_path, b)
    for r, x in zip(res, xs):
        assert r.fixed_rules() == ["floor-div-one"] and r.after.count("floor") == 1
        np.testing.assert_array_equal(r.orig[0], np.floor(x))
        np.testing.assert_array_equal(r.fixed[0], r.orig[0])
    assert res[-2].hits == [] and res[-1].hits == []


# ---- trilu-inf -------------------------------------------------------------------------------


def has_op(milk, name):
    return f"\n{name} " in "\n" + subprocess.run([milk, "ops"], capture_output=True,
                                                 text=True).stdout


def test_trilu_inf(milk, tmp_path):
    if not has_op(milk, "band_part"):
        pytest.skip("band_part is not in milk's op table yet (issue 10)")
    rng = np.random.default_rng(23)
    b, cases = Batch(), []
    for lower, upper in [(0, -1), (-1, 0), (1, 2), (0, 0), (2, -1), (-1, 3)]:
        x = rng.standard_normal((2, 5, 6)).astype(np.float32)
        b.case(inputs=[("x", x)], ops=[op("band_part", "bp", x="x", lower=Value(lower),
                                          upper=Value(upper)),
                                       op("sub", "z", x="x", y="bp")], outputs=["z"],
               options=only("trilu-inf"))
        cases.append((x, lower, upper))
    # with infinities: the original makes NaN where the band is dropped
    xin = np.full((4, 4), -np.inf, np.float32)
    b.case(inputs=[("x", xin)], ops=[op("band_part", "bp", x="x", lower=Value(0), upper=Value(-1)),
                                     op("sub", "z", x="x", y="bp")], outputs=["z"],
           options=only("trilu-inf"))
    # negative: band_part of another tensor
    b.case(inputs=[("x", cases[0][0]), ("w", cases[1][0])],
           ops=[op("band_part", "bp", x="w", lower=Value(0), upper=Value(-1)),
                op("sub", "z", x="x", y="bp")], outputs=["z"], options=only("trilu-inf"))
    res = run(tmp_path, b)
    for r, (x, lo, up) in zip(res, cases):
        assert r.fixed_rules() == ["trilu-inf"] and "select" in r.after and "band_part" not in r.after
        i, j = np.indices(x.shape[-2:])
        band = ((lo < 0) | (i - j <= lo)) & ((up < 0) | (j - i <= up))
        np.testing.assert_array_equal(r.orig[0], np.where(band, 0, x))
        np.testing.assert_array_equal(r.fixed[0], r.orig[0])
    inf = res[len(cases)]
    want = torch.tril(torch.from_numpy(xin), -1).numpy()  # x - triu(x): the strict lower part
    assert np.isnan(inf.orig[0]).sum() == 10                # inf - inf on and above the diagonal
    np.testing.assert_array_equal(inf.fixed[0], want)
    assert res[-1].hits == []


# ---- rmsnorm-eps -----------------------------------------------------------------------------


def rms_ops(form, axes, eps, dt="fp32"):
    """RMSNorm of x over axes in one of the forms rmsnorm-eps recognizes."""
    sq = {"square": op("square", "q", x="x"), "mul": op("mul", "q", x="x", y="x"),
          "pow": op("pow", "q", x="x", y=Value(2.0, dt))}[form[0]]
    ops = [sq, op("reduce_mean", "m", x="q", axes=Value(axes), keep_dims=Value(True)),
           op("add", "a", x="m", y=Value(eps, dt))]
    if form[1] == "rsqrt":
        ops += [op("rsqrt", "r", x="a"), op("mul", "y", x="r", y="x")]
    elif form[1] == "recip":
        ops += [op("sqrt", "s", x="a"), op("real_div", "r", x=Value(1.0, dt), y="s"),
                op("mul", "y", x="x", y="r")]
    else:
        ops += [op("sqrt", "s", x="a"), op("real_div", "y", x="x", y="s")]
    return ops


def rms_want(x, axes, eps, rsqrt_eps=0.0):
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(axis=tuple(axes), keepdims=True) + eps + rsqrt_eps)


FORMS = [(q, t) for q in ("square", "mul", "pow") for t in ("rsqrt", "recip", "div")]


def test_rmsnorm_rescale_is_equivalent(tmp_path):
    rng = np.random.default_rng(24)
    b, cases = Batch(), []
    for k, form in enumerate(FORMS * 3):
        axes = [[-1], [1], [1, 2]][k % 3]
        eps = [1e-6, 1e-5, 0.1][k % 3]
        scale = [0.01, 1.0, 300.0][(k // 3) % 3]
        x = (scale * rng.standard_normal((2, 3, 8))).astype(np.float32)
        b.case(inputs=[("x", x)], ops=rms_ops(form, axes, eps), outputs=["y"],
               options=only("rmsnorm-eps"))
        cases.append((x, axes, eps, form))
    res = run(tmp_path, b)
    for r, (x, axes, eps, form) in zip(res, cases):
        assert r.fixed_rules() == ["rmsnorm-eps"], (form, r.hits)
        assert "reduce_max" in r.after and "maximum" in r.after
        rs = 1e-12 if form[1] == "rsqrt" else 0.0
        assert rel_err(r.orig[0], rms_want(x, axes, eps, rs)) <= 1e-6
        assert rel_err(r.fixed[0], r.orig[0]) <= 2e-6, form


def test_rmsnorm_fp16_past_the_cliff(tmp_path):
    """Activations of a few thousand: the squares overflow fp16; the
    rescaled form stays finite and matches the fp32 result."""
    rng = np.random.default_rng(25)
    x = (3000 * rng.standard_normal((1, 4, 64))).astype(np.float32)
    x[0, 1] = 0.0  # an all-zero row: the clamp at 1 keeps it 0, not NaN
    ops = rms_ops(("mul", "rsqrt"), [-1], 1e-5, "fp16")
    b = Batch()
    b.case(inputs=[("x", x, "fp16")], ops=ops, outputs=["y"], precision="as-declared",
           options=only("rmsnorm-eps", "fp16-rmsnorm"))
    b.case(inputs=[("x", x, "fp16")], ops=ops, outputs=["y"], precision="as-declared",
           options=only())                                   # nothing rewritten
    (r, naive) = run(tmp_path, b)
    assert r.fixed_rules() == ["rmsnorm-eps"]
    # the first edition's warning no longer fires on the rescaled form
    assert r.unfixed_rules() == []
    assert not np.isfinite(naive.orig[0][0, 0]).all() or np.abs(naive.orig[0][0, 0]).max() == 0
    assert np.isfinite(r.fixed[0]).all()
    want = rms_want(x.astype(np.float16).astype(np.float32), [-1], 1e-5)
    ok = [0, 2, 3]
    assert rel_err(r.fixed[0][0, ok], want[0, ok]) <= 1e-2
    np.testing.assert_array_equal(r.fixed[0][0, 1], 0)


def test_rmsnorm_negative(tmp_path):
    rng = np.random.default_rng(26)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    b = Batch()
    # fp32 on the CPU: nothing computes in fp16
    b.case(inputs=[("x", x)], ops=rms_ops(("mul", "rsqrt"), [-1], 1e-6), outputs=["y"],
           options={"units": "cpu_only"})
    # the squares of another tensor; a mean without keep_dims
    b.case(inputs=[("x", x), ("w", x + 1)], ops=[
        op("mul", "q", x="w", y="w"), op("reduce_mean", "m", x="q", axes=Value([-1]),
                                         keep_dims=Value(True)),
        op("add", "a", x="m", y=Value(1e-6, "fp32")), op("rsqrt", "r", x="a"), op("mul", "y", x="x", y="r")],
        outputs=["y"], options=only("rmsnorm-eps"))
    b.case(inputs=[("x", x)], ops=[
        op("mul", "q", x="x", y="x"), op("reduce_mean", "m", x="q", axes=Value([-1])),
        op("add", "a", x="m", y=Value(1e-6, "fp32")), op("rsqrt", "r", x="a"),
        op("expand_dims", "re", x="r", axes=Value([-1])), op("mul", "y", x="x", y="re")],
        outputs=["y"], options=only("rmsnorm-eps"))
    for r in run(tmp_path, b):
        assert "rmsnorm-eps" not in rules(r)


# ---- int-matmul-linear ----------------------------------------------------------------------------


def test_int_matmul_linear(tmp_path):
    rng = np.random.default_rng(27)
    b, cases = Batch(), []
    for k in range(16):
        shape = tuple(int(d) for d in rng.integers(1, 4, int(rng.integers(1, 3)))) + (int(rng.integers(1, 9)),)
        n = int(rng.integers(1, 7))
        x = rng.integers(-50, 50, shape).astype(np.int32)
        w = rng.integers(-50, 50, (n, shape[-1])).astype(np.int32)
        bias = rng.integers(-50, 50, n).astype(np.int32)
        ins = dict(x="x", weight=Const(w))
        if k % 2:
            ins["bias"] = Const(bias)
        b.case(inputs=[("x", x)], ops=[op("linear", "y", **ins)], outputs=["y"],
               options=only("int-matmul-linear"))
        cases.append((x, w, bias if k % 2 else 0))
    xf = rng.standard_normal((2, 3)).astype(np.float32)
    b.case(inputs=[("x", xf)], ops=[op("linear", "y", x="x", weight=Const(np.ones((4, 3), np.float32)))],
           outputs=["y"], options=only("int-matmul-linear"))           # float: left alone
    res = run(tmp_path, b)
    for r, (x, w, bias) in zip(res, cases):
        assert r.fixed_rules() == ["int-matmul-linear"]
        assert "linear" not in r.after and "matmul" in r.after
        want = x.astype(np.int64) @ w.T.astype(np.int64) + bias
        np.testing.assert_array_equal(r.orig[0], want)
        np.testing.assert_array_equal(r.fixed[0], r.orig[0])
        assert r.fixed[0].dtype == np.int32
    assert res[-1].hits == []


# ---- convt-stride16 ------------------------------------------------------------------------------


def test_convt_stride16_in_two_steps(tmp_path):
    """1-D and 2-D conv_transposes with stride 16 on an axis, against
    PyTorch, rewritten into zero insertion (two stride-4 steps) and a
    stride-1 conv_transpose."""
    rng = np.random.default_rng(28)
    b, cases = Batch(), []
    for k in range(24):
        rank = 3 if k % 2 else 4
        S = rank - 2
        g = int(rng.choice([1, 2]))
        cin, cout = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
        ks = [int(rng.choice([1, 3, 16, 20])) for _ in range(S)]
        st = [16] + [int(rng.choice([1, 2, 16])) for _ in range(S - 1)]
        dil = [int(rng.integers(1, 3)) for _ in range(S)]
        L = [int(rng.integers(1, 5)) for _ in range(S)]
        full = [(L[i] - 1) * st[i] + dil[i] * (ks[i] - 1) + 1 for i in range(S)]
        pad = [int(rng.integers(0, min(3, f))) for f in full]
        x = rng.standard_normal((1, cin, *L)).astype(np.float32)
        w = rng.standard_normal((cin, cout // g, *ks)).astype(np.float32)
        bias = rng.standard_normal(cout).astype(np.float32)
        pads = [p for p in pad for _ in (0, 1)]
        ins = dict(x="x", weight=Const(w), strides=Value(st), dilations=Value(dil),
                   groups=Value(g), pad_type=Value("custom"), pad=Value(pads))
        if k % 3:
            ins["bias"] = Const(bias)
        b.case(inputs=[("x", x)], ops=[op("conv_transpose", "y", **ins)], outputs=["y"],
               options=only("convt-stride16"))
        cases.append((x, w, bias if k % 3 else None, st, dil, g, pad, rank))
    res = run(tmp_path, b)
    fn = {3: F.conv_transpose1d, 4: F.conv_transpose2d}
    for r, (x, w, bias, st, dil, g, pad, rank) in zip(res, cases):
        assert r.fixed_rules() == ["convt-stride16"], r.hits
        assert r.after.count("conv_transpose") == 3
        with torch.no_grad():
            want = fn[rank](torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                            None if bias is None else torch.from_numpy(bias).double(),
                            stride=st, padding=pad, dilation=dil, groups=g).numpy()
        assert rel_err(r.orig[0], want) <= 1e-5
        assert rel_err(r.fixed[0], r.orig[0]) <= EQ


def test_convt_stride16_negative_and_declined(tmp_path):
    rng = np.random.default_rng(29)
    x = rng.standard_normal((1, 2, 3)).astype(np.float32)
    w = rng.standard_normal((2, 2, 16)).astype(np.float32)
    b = Batch()
    b.case(inputs=[("x", x)], ops=[op("conv_transpose", "y", x="x", weight=Const(w),
                                      strides=Value([8]))], outputs=["y"],
           options=only("convt-stride16"))
    # with output_shape: declined alone, rewritten after convt-output-shape
    shaped = dict(x="x", weight=Const(w), strides=Value([16]), output_shape=Value([1, 2, 49]))
    b.case(inputs=[("x", x)], ops=[op("conv_transpose", "y", **shaped)], outputs=["y"],
           options=only("convt-stride16"))
    b.case(inputs=[("x", x)], ops=[op("conv_transpose", "y", **shaped)], outputs=["y"],
           options=only("convt-stride16", "convt-output-shape"))
    neg, alone, both = run(tmp_path, b)
    assert neg.hits == []
    assert alone.unfixed_rules() == ["convt-stride16"]
    assert "not rewritten" in alone.hits[0]["detail"]
    assert set(both.fixed_rules()) == {"convt-stride16", "convt-output-shape"}
    assert rel_err(both.fixed[0], both.orig[0]) <= EQ


# ---- notes: argmax-ties and the Neural Engine -------------------------------------------------------


def test_argmax_ties_note(tmp_path):
    x = np.array([[1, 3, 3, 0]], np.float32)
    b = Batch()
    b.case(inputs=[("x", x)], ops=[op("reduce_argmax", "i", x="x", axis=Value(-1))],
           outputs=["i"])
    b.case(inputs=[("x", x)], ops=[op("reduce_max", "m", x="x", axes=Value([-1]))],
           outputs=["m"])
    pos, neg = run(tmp_path, b)
    assert pos.unfixed_rules() == ["argmax-ties"] and pos.hits[0]["fixed"] is False
    assert pos.orig[0].tolist() == [1]  # milk takes the first of the tied maxima
    assert "argmax-ties" not in rules(neg)


NE = {"units": "cpu_and_ne"}


def ne_cases(rng):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return [
        ("ne-matmul-32752", [("x", f(2, 3))], [op("matmul", "y", x="x", y=Const(f(3, 4)))],
         [("x", f(2, 3))], [op("add", "y", x="x", y="x")]),
        ("ne-slice-offset", [("x", f(2, 8))],
         [op("slice_by_index", "y", x="x", begin=Value([0, 2]), end=Value([2, 8]))],
         [("x", f(2, 8))],
         [op("slice_by_index", "y", x="x", begin=Value([1, 0]), end=Value([2, 8]))]),
        ("ne-gather-last-axis", [("x", f(2, 8))],
         [op("gather", "y", x="x", indices=Value([1, 3]), axis=Value(-1))],
         [("x", f(2, 8))], [op("gather", "y", x="x", indices=Value([1]), axis=Value(0))]),
        ("ne-int-reduce", [("x", rng.integers(0, 9, (2, 8)).astype(np.int32))],
         [op("reduce_sum", "y", x="x", axes=Value([-1]))],
         [("x", f(2, 8))], [op("reduce_sum", "y", x="x", axes=Value([-1]))]),
        ("ne-conv-kernel16", [("x", f(1, 2, 40))],
         [op("conv", "y", x="x", weight=Const(f(3, 2, 16)))],
         [("x", f(1, 2, 40))], [op("conv", "y", x="x", weight=Const(f(3, 2, 15)))]),
        ("ne-lrn-c16", [("x", f(1, 16, 4, 4))],
         [op("local_response_norm", "y", x="x", size=Value(3))],
         [("x", f(1, 15, 4, 4))], [op("local_response_norm", "y", x="x", size=Value(3))]),
        ("ne-rank5", [("x", f(1, 2, 2, 2, 2))], [op("relu", "y", x="x")],
         [("x", f(2, 2, 2, 2))], [op("relu", "y", x="x")]),
        ("ne-dtype", [("x", f(2, 3))], [op("cast", "y", x="x", dtype=Value("int32"))],
         [("x", f(2, 3))], [op("cast", "y", x="x", dtype=Value("fp16"))]),
    ]


def test_neural_engine_notes(tmp_path):
    """Each note fires for its pattern with the Neural Engine as the only
    accelerator, not on a near miss, not for the other compute units
    unless enabled by id."""
    rng = np.random.default_rng(30)
    cases = ne_cases(rng)
    b = Batch()
    for rule, pin, pops, nin, nops in cases:
        b.case(inputs=pin, ops=pops, outputs=["y"], options=NE)
        b.case(inputs=nin, ops=nops, outputs=["y"], options=NE)
        b.case(inputs=pin, ops=pops, outputs=["y"], options={"units": "all"})
        b.case(inputs=pin, ops=pops, outputs=["y"], options={"units": "cpu_only", "enable": [rule]})
    res = run(tmp_path, b)
    for k, (rule, *_) in enumerate(cases):
        pos, neg, all_units, forced = res[4 * k:4 * k + 4]
        assert rule in pos.unfixed_rules(), (rule, pos.hits)
        assert rule not in rules(neg), (rule, neg.hits)
        assert rule not in rules(all_units), rule
        assert rule in forced.unfixed_rules(), rule
        for h in pos.hits:
            if h["rule"] == rule:
                assert h["fixed"] is False and h["detail"]


def test_lint_lists_the_notes_for_the_neural_engine(milk, tmp_path):
    """`milk lint --compute-units cpu_and_ne` on a coremltools package lists
    the notes; the table documents every second-edition rule."""
    pkg = FIXTURES / "mlp_bn" / "model_fp32.mlpackage"
    r = subprocess.run([milk, "lint", pkg, "--compute-units", "cpu_and_ne", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)["hits"]
    assert any(h["rule"] == "ne-matmul-32752" for h in hits)
    r = subprocess.run([milk, "lint", "--list-rules", "--json"], capture_output=True, text=True)
    table = {row["id"]: row for row in json.loads(r.stdout)}
    for rid in ("pow-base2", "trilu-inf", "floor-div-one", "rmsnorm-eps", "int-matmul-linear",
                "enum-multi-input", "convt-stride16", "opset-vs-target", "weights-2gib",
                "argmax-ties", "ne-matmul-32752", "ne-slice-offset", "ne-conv-kernel16",
                "ne-lrn-c16"):
        assert table[rid]["source"] and table[rid]["scope"] and table[rid]["fix"], rid


def test_second_edition_rewrites_under_asan(tmp_path):
    rng = np.random.default_rng(31)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    b = Batch()
    b.case(inputs=[("y", f(3, 4))], ops=[op("pow", "z", x=Const(np.float32(2)), y="y")],
           outputs=["z"])
    b.case(inputs=[("x", f(3, 4))], ops=[op("floor_div", "z", x="x", y=Value(1.0, "fp32"))],
           outputs=["z"])
    b.case(inputs=[("x", f(2, 3, 8))], ops=rms_ops(("pow", "recip"), [-1], 1e-6),
           outputs=["y"], options={"units": "cpu_and_ne"})
    b.case(inputs=[("x", rng.integers(-5, 5, (2, 3)).astype(np.int32))],
           ops=[op("linear", "y", x="x", weight=Const(rng.integers(-5, 5, (4, 3)).astype(np.int32)),
                   bias=Const(np.arange(4, dtype=np.int32)))], outputs=["y"])
    b.case(inputs=[("x", f(1, 2, 3, 2))],
           ops=[op("conv_transpose", "y", x="x", weight=Const(f(2, 3, 16, 1)),
                   strides=Value([16, 1]))], outputs=["y"])
    res = run(tmp_path, b, asan=True)
    for i, r in enumerate(res):
        assert r.fixed_rules(), (i, r.hits)
        assert rel_err(r.fixed[0], r.orig[0]) <= 2e-6, i
