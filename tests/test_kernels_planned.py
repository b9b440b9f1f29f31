"""The planned interpreter's fast kernels (src/ops/*_fast.c, src/run/plan.c,
the SIMD primitives of src/run/vec_impl.h) against the reference kernels,
on seeded random configurations with odd sizes, strides, dilations, pads
and broadcasts:

  - each configuration runs with reference=True, and planned with 1 and 3
    threads, in one opcheck batch; the planned output must agree with the
    reference within 1e-5 (max |fast - ref| / max |ref|; the fp32
    polynomials of sigmoid, tanh, silu, erf and exp also within 4e-6 of
    each element), and the 3-thread output must be bit-identical to the
    1-thread one;
  - every batch runs twice: with the CPU's widest SIMD table and with the
    baseline one (MILK_SIMD=base), so both builds of the primitives are
    checked wherever the tests run;
  - fused epilogues (conv or linear followed by an activation, or by
    x * act(x) as silu and hard swish are written), in fp32 and with fp16
    storage emulated, through `milk run` on programs built by mkprog:
    outputs and the per-op fp16 overflow report agree with --reference,
    and --keep-all still sees every intermediate value;
  - a part of the conv cases on the ASan build (out-of-bounds reads of
    the padded planes and scratch);
  - a small CNN (depthwise, squeeze-excite, hard swish, residuals) exported
    from PyTorch: `milk run --threads N` gives the same bytes for N = 1,
    2, 3, and matches PyTorch.
"""
import json
import os
import subprocess

import numpy as np
import pytest
import torch

from conftest import BUILD
from milkop import Const, rel_err, run_ops

SEED = 20250113
TOL = 1e-5
SIMD = ["native", "base"]


def randn(rng, *shape, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=np.float32)


def check_cases(cases, simd, tol=TOL, elementwise=(), asan=False):
    """cases: (op, inputs) pairs. Runs reference, planned 1 thread, planned
    3 threads; compares."""
    batch = []
    for op, inputs in cases:
        batch += [(op, inputs, {"reference": True}), (op, inputs, {"threads": 1}),
                  (op, inputs, {"threads": 3})]
    env = os.environ.copy()
    if simd == "base":
        os.environ["MILK_SIMD"] = "base"
    try:
        res = run_ops(batch, asan=asan)
    finally:
        os.environ.clear()
        os.environ.update(env)
    for c, (op, inputs) in enumerate(cases):
        ref, one, three = res[3 * c: 3 * c + 3]
        for r in (ref, one, three):
            if isinstance(r, Exception):
                raise r
        for k, (want, got) in enumerate(zip(ref[0], one[0])):
            assert got.shape == want.shape, (op, c)
            assert np.array_equal(np.isnan(got), np.isnan(want)), (op, c)
            fin = np.isfinite(want)
            assert np.array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)]), (op, c)
            if fin.any():
                e = rel_err(got[fin], want[fin])
                assert e <= tol, f"{op} case {c} output {k}: rel err {e:.3g} > {tol}"
                if op in elementwise:
                    err = np.abs(got[fin].astype(np.float64) - want[fin])
                    bad = err > 4e-6 * np.abs(want[fin]) + 1e-30
                    assert not bad.any(), (op, c, got[fin][bad][:5], want[fin][bad][:5])
            assert one[0][k].tobytes() == three[0][k].tobytes(), \
                f"{op} case {c}: 3 threads differ from 1"


# ---- conv: direct (depthwise, grouped) and GEMM (1x1, im2col) ------------------

def conv_case(rng, direct):
    S = int(rng.integers(1, 4))
    if direct:
        groups = int(rng.integers(2, 9))
        cig = 1 if rng.random() < 0.6 else int(rng.integers(2, 4))
        cog = 1 if rng.random() < 0.7 else 2
    else:
        groups = int(rng.choice([1, 1, 1, 2]))
        cig, cog = int(rng.integers(1, 9)), int(rng.integers(1, 70))
    n = int(rng.integers(1, 3))
    kmax, dmax = (5, 23) if S < 3 else (3, 7)
    k = [int(rng.integers(1, kmax + 1)) for _ in range(S)]
    st = [int(rng.integers(1, 4)) for _ in range(S)]
    dil = [int(rng.integers(1, 3)) for _ in range(S)]
    if not direct and rng.random() < 0.3:  # 1x1, stride 1: one GEMM
        k, st, dil = [1] * S, [1] * S, [1] * S
    pad = [int(rng.integers(0, 3)) for _ in range(2 * S)]
    dims = [int(rng.integers((kk - 1) * d + 1, (kk - 1) * d + dmax)) for kk, d in zip(k, dil)]
    x = randn(rng, n, cig * groups, *dims)
    w = randn(rng, cog * groups, cig, *k, scale=0.5)
    inputs = [("x", x), ("weight", Const(w)), ("strides", st), ("dilations", dil),
              ("groups", groups)]
    if rng.random() < 0.6:
        inputs += [("pad_type", "custom"), ("pad", pad)]
    else:
        inputs += [("pad_type", str(rng.choice(["valid", "same"])))]
    if rng.random() < 0.7:
        inputs.append(("bias", Const(randn(rng, cog * groups))))
    return "conv", inputs


@pytest.mark.parametrize("simd", SIMD)
@pytest.mark.parametrize("direct", [True, False])
def test_conv(simd, direct):
    rng = np.random.default_rng(SEED + direct)
    check_cases([conv_case(rng, direct) for _ in range(40)], simd)


@pytest.mark.parametrize("simd", SIMD)
def test_conv_asan(simd):
    """The direct kernel reads its padded planes a little past each row; the
    ASan build checks it never leaves the scratch."""
    rng = np.random.default_rng(SEED + 9)
    cases = [conv_case(rng, direct) for direct in (True, False) for _ in range(10)]
    check_cases(cases, simd, asan=True)


# ---- linear ------------------------------------------------------------------------

def test_linear_and_tiles():
    rng = np.random.default_rng(SEED + 2)
    cases = []
    for i in range(24):
        big = i % 3 == 0  # large enough to be split into tiles
        rows = int(rng.integers(1, 300 if big else 20))
        d_in = int(rng.integers(1, 260 if big else 40))
        d_out = int(rng.integers(1, 500 if big else 70))
        lead = [int(rng.integers(1, 3))] if rng.random() < 0.5 else []
        inputs = [("x", randn(rng, *lead, rows, d_in)),
                  ("weight", Const(randn(rng, d_out, d_in)))]
        if rng.random() < 0.7:
            inputs.append(("bias", Const(randn(rng, d_out))))
        cases.append(("linear", inputs))
    for simd in SIMD:
        check_cases(cases, simd)


# ---- element-wise ------------------------------------------------------------------

EDGES = np.float32([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 3.0, -3.0, 20.0, -20.0,
                    88.0, -88.0, 89.0, -104.0, 1e4, -1e4, np.nan, np.inf, -np.inf])
# checked element by element too; gelu is not: 1 + erf(x / sqrt 2) cancels
# for x < -3 in fp32, leaving an error of about 1e-7 (absolute, against a
# maximum of |x|) as in every fp32 gelu
TRANSCENDENTAL = {"sigmoid", "tanh", "silu", "erf", "exp"}


def act_cases(rng):
    cases = []
    for op, params in [("relu", []), ("sigmoid", []), ("tanh", []), ("silu", []),
                       ("erf", []), ("exp", []), ("relu6", []),
                       ("clip", [("alpha", Const(np.float32(-0.7))), ("beta", Const(np.float32(1.3)))]),
                       ("sigmoid_hard", [("alpha", Const(np.float32(0.2))), ("beta", Const(np.float32(0.5)))]),
                       ("leaky_relu", [("alpha", Const(np.float32(0.1)))]),
                       ("linear_activation", [("alpha", Const(np.float32(1.5))), ("beta", Const(np.float32(-2.0)))]),
                       ("gelu", []), ("gelu", [("mode", "TANH_APPROXIMATION")]),
                       ("gelu", [("mode", "SIGMOID_APPROXIMATION")])]:
        for shape in [(int(rng.integers(1, 40)),), (3, int(rng.integers(1, 9)), 37),
                      (int(rng.integers(70000, 80000)),)]:
            scale = 12.0 if op == "exp" else 4.0
            cases.append((op, [("x", randn(rng, *shape, scale=scale))] + params))
        cases.append((op, [("x", EDGES)] + params))
    return cases


@pytest.mark.parametrize("simd", SIMD)
def test_activations(simd):
    rng = np.random.default_rng(SEED + 3)
    check_cases(act_cases(rng), simd, tol=1e-5, elementwise=TRANSCENDENTAL)


def bcast_pair(rng):
    rank = int(rng.integers(1, 6))
    out = [int(rng.integers(1, 9)) for _ in range(rank)]
    if rng.random() < 0.3:
        out[-1] = int(rng.integers(30, 300))

    def side():
        r = int(rng.integers(0, rank + 1))
        return [1 if rng.random() < 0.4 else d for d in out[rank - r:]]
    return out, side(), side()


@pytest.mark.parametrize("simd", SIMD)
def test_binary_broadcast(simd):
    rng = np.random.default_rng(SEED + 4)
    cases = []
    for op in ["add", "sub", "mul", "real_div", "maximum", "minimum"]:
        for _ in range(8):
            _, a, b = bcast_pair(rng)
            x, y = randn(rng, *a), randn(rng, *b)
            if op == "real_div":
                y = np.where(np.abs(y) < 0.1, np.float32(0.5), y).astype(np.float32)
            cases.append((op, [("x", x), ("y", y)]))
        specials = np.float32([np.nan, 1.0, -np.inf, 0.0, -0.0, 2.0, np.inf, np.nan, 3.0])
        cases.append((op, [("x", specials), ("y", specials[::-1].copy())]))
    check_cases(cases, simd)


# ---- rows: softmax, layer_norm, reductions -----------------------------------------

@pytest.mark.parametrize("simd", SIMD)
def test_rows(simd):
    rng = np.random.default_rng(SEED + 5)
    cases = []
    for _ in range(10):
        shape = [int(rng.integers(1, 6)) for _ in range(int(rng.integers(1, 4)))]
        shape.append(int(rng.integers(1, 200)))
        x = randn(rng, *shape, scale=5.0)
        cases.append(("softmax", [("x", x), ("axis", -1)]))
        k = int(rng.integers(1, len(shape) + 1))
        axes = list(range(len(shape) - k, len(shape)))
        norm = int(np.prod(shape[-k:]))
        ln = [("x", x), ("axes", axes), ("epsilon", Const(np.float32(1e-5)))]
        if rng.random() < 0.7:
            ln += [("gamma", Const(randn(rng, *shape[-k:]))), ("beta", Const(randn(rng, *shape[-k:])))]
        cases.append(("layer_norm", ln))
        for op in ["reduce_mean", "reduce_sum", "reduce_max"]:
            cases.append((op, [("x", x), ("axes", axes), ("keep_dims", bool(rng.random() < 0.5))]))
        del norm
    cases.append(("softmax", [("x", np.float32([[1000, 999, -1000], [-np.inf, 0, 1],
                                                [1, np.nan, 2], [88, 89, 90]])), ("axis", -1)]))
    cases.append(("reduce_max", [("x", np.float32([[1, np.nan, 2], [-np.inf, -1, -2]])),
                                 ("axes", [1])]))
    check_cases(cases, simd)


# ---- pooling, transpose, concat ----------------------------------------------------

@pytest.mark.parametrize("simd", SIMD)
def test_pool_layout(simd):
    rng = np.random.default_rng(SEED + 6)
    cases = []
    for _ in range(20):
        S = int(rng.integers(1, 3))
        k = [int(rng.integers(1, 5)) for _ in range(S)]
        st = [int(rng.integers(1, 4)) for _ in range(S)]
        dims = [int(rng.integers(kk, kk + 20)) for kk in k]
        x = randn(rng, int(rng.integers(1, 3)), int(rng.integers(1, 5)), *dims)
        pads = [int(rng.integers(0, kk)) for kk in k for _ in range(2)]
        for op in ["max_pool", "avg_pool"]:
            inputs = [("x", x), ("kernel_sizes", k), ("strides", st),
                      ("pad_type", "custom"), ("pad", pads)]
            if op == "avg_pool":
                inputs.append(("exclude_padding_from_average", bool(rng.random() < 0.5)))
            cases.append((op, inputs))
    for _ in range(12):
        rank = int(rng.integers(1, 6))
        shape = [int(rng.integers(1, 7)) for _ in range(rank)]
        cases.append(("transpose", [("x", randn(rng, *shape)),
                                    ("perm", [int(p) for p in rng.permutation(rank)])]))
        axis = int(rng.integers(0, rank))
        vals = []
        for _ in range(int(rng.integers(1, 4))):
            s = list(shape)
            s[axis] = int(rng.integers(1, 5))
            vals.append(("values", randn(rng, *s)))
        cases.append(("concat", vals + [("axis", axis), ("interleave", False)]))
    check_cases(cases, simd)


# ---- fused epilogues through `milk run` ----------------------------------------------

def mkprog(tmp_path, name, dtype, ops, outputs, x_shape):
    pkg = tmp_path / f"{name}.mlpackage"
    spec = {"target": "ios17", "output": str(pkg),
            "inputs": [{"name": "x", "dtype": dtype, "shape": list(x_shape)}],
            "ops": ops, "outputs": outputs}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    r = subprocess.run([str(BUILD / "tools" / "mkprog"), str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return pkg


def npy(tmp_path, name, a, dtype="fp32"):
    p = tmp_path / f"{name}.npy"
    np.save(p, np.ascontiguousarray(a, dtype=np.float32))
    return {"npy": str(p), "dtype": dtype}


def milk_run(pkg, x_path, out, *extra):
    r = subprocess.run([str(BUILD / "milk"), "run", str(pkg), "--input", f"x={x_path}",
                        "--output", str(out)] + list(extra), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        return {k: z[k] for k in z.files}, r.stderr


FUSIONS = {
    "relu": lambda y: [{"op": "relu", "name": "a", "inputs": {"x": y}}],
    "sigmoid": lambda y: [{"op": "sigmoid", "name": "a", "inputs": {"x": y}}],
    "silu": lambda y: [{"op": "sigmoid", "name": "s", "inputs": {"x": y}},
                       {"op": "mul", "name": "a", "inputs": {"x": y, "y": "s"}}],
    "hardswish": lambda y: [{"op": "sigmoid_hard", "name": "s",
                             "inputs": {"x": y, "alpha": {"value": 1 / 6, "dtype": "fp32"},
                                        "beta": {"value": 0.5, "dtype": "fp32"}}},
                            {"op": "mul", "name": "a", "inputs": {"x": "s", "y": y}}],
    "gelu": lambda y: [{"op": "gelu", "name": "a", "inputs": {"x": y}}],
}


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
@pytest.mark.parametrize("producer", ["conv", "depthwise", "linear"])
@pytest.mark.parametrize("act", sorted(FUSIONS))
def test_fused_epilogue(tmp_path, dtype, producer, act):
    rng = np.random.default_rng(SEED + len(act) + 7 * len(producer))
    d = "fp16" if dtype == "fp16" else "fp32"
    if producer == "linear":
        shape = (3, 5, 37)
        w, b = randn(rng, 45, 37), randn(rng, 45)
        first = {"op": "linear", "name": "y",
                 "inputs": {"x": "x", "weight": npy(tmp_path, "w", w, d),
                            "bias": npy(tmp_path, "b", b, d)}}
    else:
        shape = (1, 6, 13, 17)
        groups = 6 if producer == "depthwise" else 1
        w = randn(rng, 6, 6 // groups, 3, 3)
        first = {"op": "conv", "name": "y",
                 "inputs": {"x": "x", "weight": npy(tmp_path, "w", w, d),
                            "bias": npy(tmp_path, "b", randn(rng, 6), d),
                            "groups": {"value": groups}, "pad_type": {"value": "same"}}}
    ops = [first] + FUSIONS[act]("y") + [{"op": "add", "name": "z", "inputs": {"x": "a", "y": "a"}}]
    pkg = mkprog(tmp_path, "m", dtype, ops, ["z"], shape)
    x = randn(rng, *shape, scale=60.0 if dtype == "fp16" else 2.0)  # fp16: some overflow
    xp = tmp_path / "x.npy"
    np.save(xp, x)
    ref, ref_err = milk_run(pkg, xp, tmp_path / "r.npz", "--reference")
    for threads in ("1", "2"):
        got, err = milk_run(pkg, xp, tmp_path / "g.npz", "--threads", threads)
        tol = 1e-2 if dtype == "fp16" else 1e-5
        assert rel_err(got["z"], ref["z"]) <= tol
        # the fp16 audit names the same ops with the same counts
        assert sorted(err.splitlines()) == sorted(ref_err.splitlines())
    # every intermediate is still there with --keep-all
    all_ref, _ = milk_run(pkg, xp, tmp_path / "ra.npz", "--reference", "--keep-all")
    all_got, _ = milk_run(pkg, xp, tmp_path / "ga.npz", "--keep-all")
    assert set(all_got) == set(all_ref) and {"y", "a", "z"} <= set(all_got)
    for k in all_ref:
        assert rel_err(all_got[k], all_ref[k]) <= (1e-2 if dtype == "fp16" else 1e-5), k


# ---- a small CNN: identical bytes for every thread count ----------------------------

class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        c = 16
        self.stem = torch.nn.Conv2d(3, c, 3, stride=2, padding=1)
        self.dw = torch.nn.Conv2d(c, c, 5, padding=2, groups=c)
        self.se1 = torch.nn.Conv2d(c, 8, 1)
        self.se2 = torch.nn.Conv2d(8, c, 1)
        self.pw = torch.nn.Conv2d(c, 24, 1)
        self.fc = torch.nn.Linear(24, 10)

    def forward(self, x):
        x = torch.nn.functional.hardswish(self.stem(x))
        y = torch.nn.functional.silu(self.dw(x))
        s = torch.sigmoid(self.se2(torch.relu(self.se1(y.mean((2, 3), keepdim=True)))))
        x = x + y * s
        x = torch.relu(self.pw(x))
        x = torch.nn.functional.max_pool2d(x, 3, 2, 1)
        return torch.softmax(self.fc(x.mean((2, 3))), -1)


def test_threads_identical_cnn(tmp_path):
    torch.manual_seed(0)
    m = SmallNet().eval()
    x = torch.randn(2, 3, 61, 47)
    onnx = tmp_path / "m.onnx"
    with torch.no_grad():
        torch.onnx.export(m, x, str(onnx), opset_version=13, input_names=["x"],
                          output_names=["y"])
        want = m(x).numpy()
    pkg = tmp_path / "m.mlpackage"
    r = subprocess.run([str(BUILD / "milk"), "convert", str(onnx), "-o", str(pkg),
                        "--precision", "fp32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    xp = tmp_path / "x.npy"
    np.save(xp, x.numpy())
    outs = [milk_run(pkg, xp, tmp_path / f"o{t}.npz", "--threads", t)[0]["y"]
            for t in ("1", "2", "3")]
    assert rel_err(outs[0], want) < 1e-5
    for o in outs[1:]:
        assert o.tobytes() == outs[0].tobytes()
    ref = milk_run(pkg, xp, tmp_path / "ref.npz", "--reference")[0]["y"]
    assert rel_err(outs[0], ref) < 1e-5
