"""The defect rules' rewrites and the general passes, proved equivalent by
the interpreter: each program runs before and after the rewrite on the same
inputs (reference kernels, fp32) and the outputs must agree within 1e-6
relative. Randomized sweeps cover each rewrite's parameters; the
conv_transpose and conv programs are also checked against PyTorch, so that
the original program is known to compute the intended function. The fp16
tests run the interpreter in fp16 (as declared) past each documented cliff.
Rule selection by target, compute units and ids is tested here too."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rulecase import Batch, Const, Value, op, only, rel_err

EQ = 1e-6  # rewritten vs original, fp32


def run(tmp_path, b):
    res = b.run(tmp_path)
    for i, r in enumerate(res):
        assert r.error == "", (i, r.error)
    return res


# ---- conv_transpose: convt1d-bias, convt-output-shape, convt-asym-pad -----------------

CONVT_RULES = ("convt1d-bias", "convt-output-shape", "convt-asym-pad")


def convt1d_config(rng):
    """A random 1-D conv_transpose, and how PyTorch computes it (None when
    its pads are not PyTorch's)."""
    g = int(rng.choice([1, 1, 1, 2, 3]))
    cin, cout = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
    k, s, d = int(rng.integers(1, 8)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
    L = int(rng.integers(1, 12))
    full = (L - 1) * s + d * (k - 1) + 1
    mode = str(rng.choice(["torch", "torch", "asym", "asym_shape", "valid", "same"]))
    cfg = dict(g=g, cin=cin, cout=cout, k=k, s=s, d=d, L=L, mode=mode,
               bias=bool(rng.random() < 0.75))
    if mode == "torch":  # symmetric pad and output_padding through output_shape
        p = int(rng.integers(0, (full - 1) // 2 + 1))
        opad = int(rng.integers(0, max(s, d)))
        out = full - 2 * p + opad
        cfg.update(pad=[p, p], out=out, torch=(p, opad), shape=opad > 0 or rng.random() < 0.5)
    elif mode == "asym":
        p0 = int(rng.integers(0, full))
        p1 = int(rng.integers(0, full - p0))
        cfg.update(pad=[p0, p1], out=full - p0 - p1, torch=None, shape=False)
    elif mode == "asym_shape":  # pads and an output_shape of their own
        p0 = int(rng.integers(0, full))
        p1 = int(rng.integers(0, full - p0))
        out = int(rng.integers(1, full - p0 + max(s, d)))
        cfg.update(pad=[p0, p1], out=out, torch=None, shape=True)
    elif mode == "same":  # MIL's "same": output L * s, or output_shape's
        shape = bool(rng.random() < 0.5)
        out = int(rng.integers(1, full + max(s, d))) if shape else L * s
        cfg.update(pad=None, same=True, out=out, torch=None, shape=shape)
    else:
        cfg.update(pad=None, out=full, torch=(0, 0), shape=False)
    return cfg


def convt_case(b, rng, cfg, rank, rules):
    S = rank - 2
    n = int(rng.integers(1, 3))
    x = rng.standard_normal((n, cfg["cin"]) + (cfg["L"],) * S).astype(np.float32)
    w = rng.standard_normal((cfg["cin"], cfg["cout"] // cfg["g"]) + (cfg["k"],) * S).astype(np.float32)
    bias = rng.standard_normal(cfg["cout"]).astype(np.float32)
    ins = dict(x="x", weight=Const(w), strides=Value([cfg["s"]] * S),
               dilations=Value([cfg["d"]] * S), groups=Value(cfg["g"]))
    if cfg["bias"]:
        ins["bias"] = Const(bias)
    if cfg["pad"] is None:
        ins["pad_type"] = Value("same" if cfg.get("same") else "valid")
    else:
        ins["pad_type"] = Value("custom")
        ins["pad"] = Value(cfg["pad"] * S)
    if cfg["shape"]:
        ins["output_shape"] = Value([n, cfg["cout"]] + [cfg["out"]] * S)
    b.case(inputs=[("x", x)], ops=[op("conv_transpose", "y", **ins)], outputs=["y"],
           options=only(*rules))
    return x, w, bias if cfg["bias"] else None


def torch_convt(x, w, bias, cfg, rank):
    fn = F.conv_transpose1d if rank == 3 else F.conv_transpose2d
    p, opad = cfg["torch"]
    with torch.no_grad():
        y = fn(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
               None if bias is None else torch.from_numpy(bias).double(),
               stride=cfg["s"], padding=p, output_padding=opad, groups=cfg["g"],
               dilation=cfg["d"])
    return y.numpy()


def check_convt(res, cfgs, arrays, rank):
    lifted = 0
    for r, cfg, (x, w, bias) in zip(res, cfgs, arrays):
        assert rel_err(r.fixed[0], r.orig[0]) <= EQ, (cfg, rel_err(r.fixed[0], r.orig[0]))
        assert r.unfixed_rules() == [], (cfg, r.hits)
        fixed = r.fixed_rules()
        if rank == 3 and cfg["bias"]:
            assert "convt1d-bias" in fixed, cfg
            assert "expand_dims" in r.after and "squeeze" in r.after
            lifted += 1
        if cfg["shape"]:
            assert "convt-output-shape" in fixed, cfg
        if cfg["pad"] and cfg["pad"][0] != cfg["pad"][1] and not cfg["shape"]:
            assert "convt-asym-pad" in fixed, cfg
        if cfg["torch"] is not None:
            want = torch_convt(x, w, bias, cfg, rank)
            assert rel_err(r.orig[0], want) <= 1e-5, cfg
    return lifted


def test_convt1d_rewrites_are_equivalent(tmp_path):
    """240 random 1-D conv_transposes: channels, groups, kernel, stride,
    dilation, symmetric and asymmetric pads, output_padding through
    output_shape, lengths, bias on and off."""
    rng = np.random.default_rng(1)
    b, cfgs, arrays = Batch(), [], []
    for _ in range(240):
        cfg = convt1d_config(rng)
        cfgs.append(cfg)
        arrays.append(convt_case(b, rng, cfg, 3, CONVT_RULES))
    res = run(tmp_path, b)
    lifted = check_convt(res, cfgs, arrays, 3)
    assert lifted >= 150  # the sweep really exercises the lift
    assert sum(c["shape"] and c["out"] > (c["L"] - 1) * c["s"] + c["d"] * (c["k"] - 1) + 1
               - c["pad"][0] for c in cfgs if c["pad"]) >= 10  # output_padding past F


def test_convt1d_lift_alone_keeps_output_shape(tmp_path):
    """convt1d-bias on its own lifts the op with its output_shape (then
    rank 4) and is still equivalent."""
    rng = np.random.default_rng(2)
    b, cfgs, arrays = Batch(), [], []
    for _ in range(40):
        cfg = convt1d_config(rng)
        cfg["bias"] = True
        cfgs.append(cfg)
        arrays.append(convt_case(b, rng, cfg, 3, ["convt1d-bias"]))
    res = run(tmp_path, b)
    for r, cfg in zip(res, cfgs):
        assert rel_err(r.fixed[0], r.orig[0]) <= EQ, cfg
        assert r.fixed_rules() == ["convt1d-bias"]
        assert r.after.count("conv_transpose") == 1 and "slice_by_index" not in r.after


@pytest.mark.parametrize("rank", [4, 5])
def test_convt_normalize_2d_3d(tmp_path, rank):
    """2-D and 3-D conv_transposes with asymmetric pads and output_shape
    (the same size on every axis)."""
    rng = np.random.default_rng(rank)
    b, cfgs, arrays = Batch(), [], []
    for _ in range(50 if rank == 4 else 15):
        cfg = convt1d_config(rng)
        cfg["L"] = min(cfg["L"], 6)
        cfg["k"] = min(cfg["k"], 4)
        full = (cfg["L"] - 1) * cfg["s"] + cfg["d"] * (cfg["k"] - 1) + 1
        # pads (often unequal) and output_shape drawn again for the smaller sizes
        p0 = int(rng.integers(0, full))
        p1 = int(rng.integers(0, full - p0))
        cfg.update(pad=[p0, p1], shape=bool(rng.random() < 0.5), torch=None)
        cfg["out"] = int(rng.integers(1, full - p0 + max(cfg["s"], cfg["d"]))) \
            if cfg["shape"] else full - p0 - p1
        cfgs.append(cfg)
        arrays.append(convt_case(b, rng, cfg, rank, CONVT_RULES))
    res = run(tmp_path, b)
    check_convt(res, cfgs, arrays, rank)


def test_convt_normalize_matches_torch_output_padding_2d(tmp_path):
    rng = np.random.default_rng(7)
    b, cfgs, arrays = Batch(), [], []
    while len(cfgs) < 30:
        cfg = convt1d_config(rng)
        if cfg["mode"] != "torch":
            continue
        cfg["shape"] = True
        cfgs.append(cfg)
        arrays.append(convt_case(b, rng, cfg, 4, CONVT_RULES))
    res = run(tmp_path, b)
    check_convt(res, cfgs, arrays, 4)


# ---- conv2d-edge, same-without-pad, same-lower-ios15, required-optional ---------------


def test_conv2d_edge_explicit_pad_is_equivalent(tmp_path):
    rng = np.random.default_rng(3)
    b, cfgs = Batch(), []
    while len(cfgs) < 60:
        g = int(rng.choice([1, 1, 2]))
        cin, cout = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        H, W = int(rng.integers(3, 9)), int(rng.integers(3, 9))
        pt = str(rng.choice(["custom", "custom", "same", "same_lower"]))
        pads = [int(v) for v in rng.integers(0, 3, 4)]
        if cin < 2 or kh == kw or max(sh, sw) < 2 or (pt == "custom" and not any(pads)):
            continue
        if (H + pads[0] + pads[1] < kh or W + pads[2] + pads[3] < kw):
            continue
        x = rng.standard_normal((1, cin, H, W)).astype(np.float32)
        w = rng.standard_normal((cout, cin // g, kh, kw)).astype(np.float32)
        ins = dict(x="x", weight=Const(w), strides=Value([sh, sw]), dilations=Value([1, 1]),
                   groups=Value(g), pad_type=Value(pt), pad=Value(pads))
        if rng.random() < 0.5:
            ins["bias"] = Const(rng.standard_normal(cout).astype(np.float32))
        b.case(inputs=[("x", x)], ops=[op("conv", "y", **ins)], outputs=["y"],
               target="ios17", options=only("conv2d-edge"))
        cfgs.append((x, w, ins, pt, pads, sh, sw, g))
    res = run(tmp_path, b)
    hits = 0
    for r, (x, w, ins, pt, pads, sh, sw, g) in zip(res, cfgs):
        assert rel_err(r.fixed[0], r.orig[0]) <= EQ
        if "conv2d-edge" in r.fixed_rules():
            hits += 1
            assert "pad" in r.after and r.unfixed_rules() == []
        if pt == "custom":
            xp = F.pad(torch.from_numpy(x).double(), (pads[2], pads[3], pads[0], pads[1]))
            bias = ins.get("bias")
            want = F.conv2d(xp, torch.from_numpy(w).double(),
                            None if bias is None else torch.from_numpy(bias.array).double(),
                            stride=(sh, sw), groups=g).numpy()
            assert rel_err(r.orig[0], want) <= 1e-5
    assert hits >= 50  # "same" with a zero total pad does not match


def test_required_optional_materializes_defaults(tmp_path):
    rng = np.random.default_rng(4)
    x4 = rng.standard_normal((1, 2, 6, 5)).astype(np.float32)
    x3 = rng.standard_normal((1, 2, 7)).astype(np.float32)
    m = rng.standard_normal((3, 4)).astype(np.float32)
    w = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    wt = rng.standard_normal((2, 3, 3)).astype(np.float32)
    b = Batch()
    opts = only("required-optional")
    b.case(inputs=[("x", x4)], ops=[op("conv", "y", x="x", weight=Const(w), pad_type=Value("valid"))],
           outputs=["y"], options=opts)
    b.case(inputs=[("x", x3)], ops=[op("conv_transpose", "y", x="x", weight=Const(wt))],
           outputs=["y"], options=opts)
    b.case(inputs=[("x", m)], ops=[op("matmul", "y", x="x", y=Const(m.T.copy()))],
           outputs=["y"], options=opts)
    b.case(inputs=[("x", x4)], ops=[op("max_pool", "y", x="x", kernel_sizes=Value([2, 2]),
                                       pad_type=Value("valid"))], outputs=["y"], options=opts)
    b.case(inputs=[("x", x4)], ops=[op("avg_pool", "y", x="x", kernel_sizes=Value([3, 2]),
                                       pad_type=Value("valid"))], outputs=["y"], options=opts)
    b.case(inputs=[("x", x4)], ops=[op("pad", "y", x="x", pad=Value([1, 2, 0, 1]))],
           outputs=["y"], options=opts)
    res = run(tmp_path, b)
    for r in res:
        assert r.fixed_rules() == ["required-optional"], r.hits
        assert r.unfixed_rules() == []
        assert rel_err(r.fixed[0], r.orig[0]) <= EQ
    details = [r.hits[0]["detail"] for r in res]
    assert details[0] == "conv without strides, dilations"
    assert details[1] == "conv_transpose without pad, strides, dilations"
    assert details[2] == "matmul without transpose_x, transpose_y"
    assert details[3] == "max_pool without strides, ceil_mode"
    assert details[5] == "pad without constant_val"


def test_same_without_pad_and_same_lower(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 7, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 2)).astype(np.float32)
    b = Batch()
    conv = dict(x="x", weight=Const(w), strides=Value([2, 1]), dilations=Value([1, 1]))
    b.case(inputs=[("x", x)], ops=[op("conv", "y", pad_type=Value("same"), **conv)],
           outputs=["y"], options=only("same-without-pad"))
    # same_lower exists from iOS16; the rule applies to an iOS15 target
    for kind in ("conv", "max_pool", "avg_pool"):
        ins = dict(conv) if kind == "conv" else dict(x="x", kernel_sizes=Value([3, 2]),
                                                     strides=Value([2, 1]))
        ins["pad_type"] = Value("same_lower")
        b.case(inputs=[("x", x)], ops=[op(kind, "y", **ins)], outputs=["y"], target="ios16",
               options={"target": "ios15", "disable": ["conv2d-edge"]})
    # the same program for iOS16: the rule's target range excludes it
    b.case(inputs=[("x", x)], ops=[op("conv", "y", pad_type=Value("same_lower"), pad=Value([0] * 4),
                                      **conv)], outputs=["y"], target="ios16",
           options={"disable": ["conv2d-edge"]})
    res = run(tmp_path, b)
    assert res[0].fixed_rules() == ["same-without-pad"]
    for r in res[1:4]:
        assert "same-lower-ios15" in r.fixed_rules(), r.hits
    assert "same-lower-ios15" not in [h["rule"] for h in res[4].hits]
    for r in res:
        assert rel_err(r.fixed[0], r.orig[0]) <= EQ


# ---- slices, gather, prelu, attention ---------------------------------------------------


def test_slice_to_zero_and_fp16_slice(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    b = Batch()
    for end in (-7, -9, -100):
        b.case(inputs=[("x", x)],
               ops=[op("slice_by_index", "y", x="x", begin=Value([4, 0]), end=Value([end, 6]),
                       stride=Value([-1, 2]))], outputs=["y"], options=only("slice-to-zero"))
    b.case(inputs=[("x", x, "fp16")],
           ops=[op("slice_by_index", "y", x="x", begin=Value([1, 0]), end=Value([4, 5]))],
           outputs=["y"], target="ios16", precision="as-declared")
    b.case(inputs=[("x", x, "fp16")],
           ops=[op("slice_by_index", "y", x="x", begin=Value([1, 0]), end=Value([4, 5]))],
           outputs=["y"], target="ios17", precision="as-declared")
    res = run(tmp_path, b)
    for r in res[:3]:
        assert r.fixed_rules() == ["slice-to-zero"], r.hits
        # MIL clamps the end at 0 (NumPy would go through index 0: x[4::-1])
        np.testing.assert_array_equal(r.orig[0], x[4:0:-1, 0:6:2])
        np.testing.assert_array_equal(r.fixed[0], r.orig[0])
    assert res[3].fixed_rules() == ["slice-fp16-old"] and res[3].after.count("cast") == 2
    np.testing.assert_array_equal(res[3].fixed[0], res[3].orig[0])
    assert "slice-fp16-old" not in [h["rule"] for h in res[4].hits]


def test_gather_scalar_indices_on_rank5(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 2, 4, 3)).astype(np.float32)
    b = Batch()
    for axis in (0, 2, -1):
        b.case(inputs=[("x", x)],
               ops=[op("gather", "y", x="x", indices=Value(1, shape=[]), axis=Value(axis))],
               outputs=["y"], options=only("gather-rank6"))
    b.case(inputs=[("x", x), ("i", np.array(2, np.int32))],
           ops=[op("gather", "y", x="x", indices="i", axis=Value(3))],
           outputs=["y"], options=only("gather-rank6"))
    res = run(tmp_path, b)
    for r, axis in zip(res, (0, 2, -1, 3)):
        assert r.fixed_rules() == ["gather-rank6"] and "squeeze" in r.after
        want = np.take(x, 2 if axis == 3 else 1, axis=axis)
        np.testing.assert_array_equal(r.orig[0], want)
        np.testing.assert_array_equal(r.fixed[0], want)


@pytest.mark.parametrize("mask", [None, "float", "bool"])
def test_sdpa_decomposed_for_gpu(tmp_path, mask):
    rng = np.random.default_rng(9)
    B, H, L, S, E, EV = 10, 2, 5, 7, 4, 3
    q = rng.standard_normal((B, H, L, E)).astype(np.float32)
    k = rng.standard_normal((B, H, S, E)).astype(np.float32)
    v = rng.standard_normal((B, H, S, EV)).astype(np.float32)
    ins = dict(query="q", key="k", value="v")
    inputs = [("q", q), ("k", k), ("v", v)]
    m = None
    if mask == "float":
        m = rng.standard_normal((L, S)).astype(np.float32)
        ins["attn_mask"] = Const(m)
    elif mask == "bool":
        m = rng.random((B, 1, L, S)) < 0.7
        m[..., 0] = True  # every row attends somewhere
        ins["attn_mask"] = Const(m)
    b = Batch()
    b.case(inputs=inputs, ops=[op("scaled_dot_product_attention", "y", **ins)], outputs=["y"],
           options={"units": "cpu_and_gpu"})
    b.case(inputs=inputs, ops=[op("scaled_dot_product_attention", "y", **ins)], outputs=["y"],
           options={"units": "cpu_and_ne"})
    r, r_ne = run(tmp_path, b)
    assert "sdpa-gpu-batch" in r.fixed_rules()
    assert "scaled_dot_product_attention" not in r.after and r.after.count("matmul") == 2
    assert "sdpa-gpu-batch" not in [h["rule"] for h in r_ne.hits]
    sc = np.einsum("bhle,bhse->bhls", q.astype(np.float64), k) / np.sqrt(E)
    if mask == "bool":
        sc = np.where(m, sc, -np.inf)
    elif mask == "float":
        sc = sc + m
    e = np.exp(sc - sc.max(-1, keepdims=True))
    want = np.einsum("bhls,bhse->bhle", e / e.sum(-1, keepdims=True), v)
    assert rel_err(r.orig[0], want) <= 1e-5
    assert rel_err(r.fixed[0], r.orig[0]) <= EQ


# ---- fp16 stable forms: equivalence at fp32 ------------------------------------------------


def test_fp16_stable_forms_are_equivalent_in_fp32(tmp_path):
    """Each stable form against the op it replaces, at fp32, and against
    PyTorch (in double). For log_softmax at large spreads the naive form
    loses accuracy even in fp32 (exp underflows to subnormals): there the
    rewrite is checked against PyTorch only."""
    rng = np.random.default_rng(10)
    b, cases = Batch(), []
    for scale in (1.0, 5.0, 30.0):
        x = (scale * rng.standard_normal((2, 17, 5))).astype(np.float32)
        xt = torch.from_numpy(x).double()
        b.case(inputs=[("x", x)], ops=[op("softplus", "y", x="x")], outputs=["y"],
               options=only("fp16-softplus"))
        cases.append(("fp16-softplus", True, F.softplus(xt).numpy()))
        for axes, keep in (([1], False), ([1], True), ([0, 2], False), (None, False), ([-1], True)):
            ins = dict(x="x", keep_dims=Value(keep))
            if axes is not None:
                ins["axes"] = Value(axes)
            b.case(inputs=[("x", x)], ops=[op("reduce_log_sum_exp", "y", **ins)], outputs=["y"],
                   options=only("fp16-logsumexp"))
            dims = list(range(3)) if axes is None else axes
            cases.append(("fp16-logsumexp", True,
                          torch.logsumexp(xt, dims, keepdim=keep).numpy()))
        for axis in (1, -1, 0):
            b.case(inputs=[("x", x)], ops=[op("softmax", "s", x="x", axis=Value(axis)),
                                           op("log", "y", x="s")], outputs=["y"],
                   options=only("fp16-logsoftmax"))
            cases.append(("fp16-logsoftmax", scale < 10, F.log_softmax(xt, axis).numpy()))
    # an additive mask at float32's minimum, over scores of moderate size
    scores = rng.standard_normal((2, 4, 6)).astype(np.float32)
    mask = np.where(np.triu(np.ones((4, 6)), 1) > 0, -3.4e38, 0).astype(np.float32)
    b.case(inputs=[("s", scores)], ops=[op("add", "a", x="s", y=Const(mask)),
                                        op("softmax", "y", x="a", axis=Value(-1))],
           outputs=["y"], options=only("fp16-mask-sentinel"))
    cases.append(("fp16-mask-sentinel", True,
                  torch.softmax(torch.from_numpy(scores).double() +
                                torch.from_numpy(mask).double(), -1).numpy()))
    res = run(tmp_path, b)
    for r, (rule, same, want) in zip(res, cases):
        assert r.fixed_rules() == [rule], (rule, r.hits)
        assert rel_err(r.fixed[0], want) <= EQ, (rule, rel_err(r.fixed[0], want))
        if same:
            assert rel_err(r.fixed[0], r.orig[0]) <= EQ, (rule, rel_err(r.fixed[0], r.orig[0]))


# ---- fp16 stable forms: past the cliffs ------------------------------------------------------

FP16_TOL = 1e-2


def fp16_case(b, inputs, ops, outputs, rules):
    """The program as declared in fp16, three ways: rewritten (as-declared),
    naive ops left alone (as-declared), and the fp32 result."""
    b.case(inputs=[(n, a, "fp16") for n, a in inputs], ops=ops, outputs=outputs,
           precision="as-declared", options=only(*rules))
    b.case(inputs=[(n, a, "fp16") for n, a in inputs], ops=ops, outputs=outputs,
           precision="fp32", apply="none")


def naive_case(b, inputs, ops, outputs):
    b.case(inputs=[(n, a, "fp16") for n, a in inputs], ops=ops, outputs=outputs,
           precision="as-declared", options=only())  # no rule selected


def test_fp16_softplus_past_the_cliff(tmp_path):
    x = np.array([[-30, -12, -3, 0, 3, 10.4, 11.5, 12, 20, 40, 100]], np.float32)[None]
    b = Batch()
    fp16_case(b, [("x", x)], [op("softplus", "y", x="x")], ["y"], ["fp16-softplus"])
    # the naive form, op by op, as a device computing in fp16 does
    naive_case(b, [("x", x)], [op("exp", "e", x="x"), op("add", "a", x="e", y=Value(1.0, "fp16")),
                               op("log", "y", x="a")], ["y"])
    res = run(tmp_path, b)
    fixed, ref, naive = res[0].fixed[0], res[1].orig[0], res[2].orig[0]
    assert res[0].fixed_rules() == ["fp16-softplus"]
    big = x > 11.1
    assert not np.isfinite(naive[big]).any()            # exp overflows: inf
    assert np.isfinite(fixed).all()
    assert rel_err(fixed, ref) <= FP16_TOL
    want = F.softplus(torch.from_numpy(x).double()).numpy()
    assert rel_err(ref, want) <= FP16_TOL


def test_fp16_logsumexp_many_channels(tmp_path):
    rng = np.random.default_rng(11)
    x = (8.0 + rng.random((2, 64, 3))).astype(np.float32)  # x > 7.6 over 64 channels
    b = Batch()
    fp16_case(b, [("x", x)], [op("reduce_log_sum_exp", "y", x="x", axes=Value([1]))], ["y"],
              ["fp16-logsumexp"])
    naive_case(b, [("x", x)], [op("exp", "e", x="x"),
                               op("reduce_sum", "s", x="e", axes=Value([1])),
                               op("log", "y", x="s")], ["y"])
    res = run(tmp_path, b)
    fixed, ref, naive = res[0].fixed[0], res[1].orig[0], res[2].orig[0]
    assert np.isinf(naive).all()                          # the sum passes 65504
    assert np.isfinite(fixed).all() and rel_err(fixed, ref) <= FP16_TOL
    want = torch.logsumexp(torch.from_numpy(x).double(), 1).numpy()
    assert rel_err(ref, want) <= 1e-3


def test_fp16_log_softmax_dominant_class(tmp_path):
    x = np.zeros((2, 10), np.float32)
    x[:, 3] = 25.0  # one dominant class: the others' probabilities underflow fp16
    b = Batch()
    ops = [op("softmax", "s", x="x", axis=Value(-1)), op("log", "y", x="s")]
    fp16_case(b, [("x", x)], ops, ["y"], ["fp16-logsoftmax"])
    naive_case(b, [("x", x)], ops, ["y"])
    res = run(tmp_path, b)
    fixed, ref, naive = res[0].fixed[0], res[1].orig[0], res[2].orig[0]
    assert np.isneginf(naive[:, 0]).all()                 # log(0)
    assert np.isfinite(fixed).all() and rel_err(fixed, ref) <= FP16_TOL
    want = F.log_softmax(torch.from_numpy(x).double(), -1).numpy()
    assert rel_err(ref, want) <= 1e-3


def test_fp16_mask_sentinel_then_softmax(tmp_path):
    rng = np.random.default_rng(12)
    scores = (4 * rng.standard_normal((1, 5, 6))).astype(np.float32)
    mask = np.zeros((5, 6), np.float32)
    mask[:, 4:] = -3.4e38     # padding keys
    mask[4, :] = -3.4e38      # a fully masked (padding) query row
    ops = [op("add", "a", x="s", y=Const(mask, "fp16")), op("softmax", "y", x="a", axis=Value(-1))]
    b = Batch()
    b.case(inputs=[("s", scores, "fp16")], ops=ops, outputs=["y"], precision="as-declared",
           options=only("fp16-mask-sentinel"))
    # the fp32 result: the program declared fp32, run in fp32
    b.case(inputs=[("s", scores)], ops=[op("add", "a", x="s", y=Const(mask)),
                                        op("softmax", "y", x="a", axis=Value(-1))],
           outputs=["y"], apply="none")
    naive_case(b, [("s", scores)], ops, ["y"])
    # -65504 instead of -1e4: a negative score pushes the sum past fp16's range
    m2 = np.where(mask < -65504, -65504, 0).astype(np.float32)
    naive_case(b, [("s", scores)], [op("add", "a", x="s", y=Const(m2, "fp16"))], ["a"])
    res = run(tmp_path, b)
    fixed, ref, naive = res[0].fixed[0], res[1].orig[0], res[2].orig[0]
    assert np.isnan(naive[0, 4]).all()                    # -inf row: NaN after softmax
    assert np.isfinite(fixed).all()                       # the padding row stays finite
    # rows with a key to attend to: as in fp32 (the fully masked row holds no
    # information either way: uniform at -3.4e38, scores rounded at -1e4)
    assert rel_err(fixed[0, :4], ref[0, :4]) <= FP16_TOL
    ref32 = torch.softmax(torch.from_numpy(scores).double() +
                          torch.from_numpy(mask).double(), -1).numpy()
    assert rel_err(ref, ref32) <= 1e-6
    a = res[3].orig[0]
    assert np.isneginf(a[0, :, 4:][scores[0, :, 4:] < -16]).all()


# ---- names, io-types, prelu ------------------------------------------------------------------


def test_names_are_sanitized_and_outputs_keep_working(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = Batch()
    b.case(inputs=[("fp16", x)], ops=[op("relu", "a@b", x="fp16"), op("sigmoid", "tensor", x="a@b")],
           outputs=["tensor"], options=only("names"))
    (r,) = run(tmp_path, b)
    assert r.fixed_rules() and set(r.fixed_rules()) == {"names"}
    assert r.after_io == ["fp16_workaround", "tensor_workaround"]
    np.testing.assert_array_equal(r.fixed[0], r.orig[0])


def test_io_types_at_the_boundary(tmp_path):
    b = Batch()
    b.case(inputs=[("f", np.array([True, False, True]), "bool")],
           ops=[op("logical_not", "y", x="f")], outputs=["y"], options=only("io-types"))
    b.case(inputs=[("s", np.array(2.5, np.float32))],
           ops=[op("mul", "y", x="s", y=Value(3.0, "fp32"))], outputs=["y"], options=only("io-types"))
    res = b.run(tmp_path)
    for r in res:
        assert r.error == "", r.error
        assert r.fixed_rules() == ["io-types"]
        assert r.after_io == r.before_io  # names kept
        np.testing.assert_array_equal(np.ravel(r.fixed[0]).astype(np.float64),
                                      np.ravel(r.orig[0]).astype(np.float64))
    assert res[0].orig[0].dtype == np.bool_ and res[0].fixed[0].dtype == np.int32
    assert res[1].orig[0].shape == () and res[1].fixed[0].shape == (1,)


# ---- general passes ------------------------------------------------------------------------


def test_general_passes(tmp_path):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    c = rng.standard_normal((3, 4)).astype(np.float32)
    b = Batch()
    b.case(inputs=[("x", x)], apply="simplify", ops=[
        op("add", "c2", x=Const(c), y=Const(c)),                 # folds
        op("mul", "m", x="x", y="c2"),
        op("reshape", "r", x="m", shape=Value([2, 3, 4])),       # identity
        op("transpose", "t", x="r", perm=Value([0, 1, 2])),      # identity
        op("add", "a", x="t", y=Const(c)),                       # same const again: dedup
        op("sub", "a2", x="a", y=Const(c)),
        op("exp", "dead", x="x"),                                # unused: dce
        op("cast", "y", x="a2", dtype=Value("fp32")),            # identity at the output
    ], outputs=["y"])
    (r,) = run(tmp_path, b)
    passes = {h["rule"] for h in r.hits}
    assert passes == {"fold", "identity", "dedup", "dce"}, r.hits
    assert r.after_io == ["x", "y"]
    for t in ("reshape", "transpose", "cast", "exp"):
        assert t not in r.after
    assert r.after.count("add") == 1 and r.after.count("const") == 2
    assert rel_err(r.fixed[0], r.orig[0]) <= EQ
    want = ((x * (2 * c) + c) - c).astype(np.float32)
    assert rel_err(r.orig[0], want) <= 1e-6


# ---- selection ------------------------------------------------------------------------------


def test_rule_selection_by_units_target_and_ids(tmp_path):
    rng = np.random.default_rng(14)
    x = rng.standard_normal((1, 4, 6)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3)).astype(np.float32)
    bias = rng.standard_normal(2).astype(np.float32)
    ct = [op("conv_transpose", "y", x="x", weight=Const(w), bias=Const(bias), strides=Value([2]),
             pad_type=Value("custom"), pad=Value([1, 1]), dilations=Value([1]), groups=Value(1))]
    b = Batch()
    for opts in ({"units": "all"}, {"units": "cpu_only"}, {"units": "cpu_and_gpu"},
                 {"units": "cpu_and_ne"}, {"units": "cpu_only", "enable": ["convt1d-bias"]},
                 {"units": "all", "disable": ["convt1d-bias"]}):
        b.case(inputs=[("x", x)], ops=ct, outputs=["y"], options=opts)
    res = run(tmp_path, b)
    lifted = ["convt1d-bias" in r.fixed_rules() for r in res]
    assert lifted == [True, False, False, True, True, False]
    for r in res:
        assert rel_err(r.fixed[0], r.orig[0]) <= EQ


def test_rewrites_under_asan(tmp_path):
    """One program per rewrite family through the ASan+UBSan build of the
    helper (leaks, overflows, undefined behaviour fail the run)."""
    rng = np.random.default_rng(15)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    b = Batch()
    b.case(inputs=[("x", f(1, 4, 5))], outputs=["y"], ops=[op(
        "conv_transpose", "y", x="x", weight=Const(f(4, 2, 3)), bias=Const(f(2)),
        strides=Value([3]), pad_type=Value("custom"), pad=Value([2, 1]),
        output_shape=Value([1, 2, 15]))])
    b.case(inputs=[("x", f(1, 2, 5, 5))], target="ios17", outputs=["y"], ops=[op(
        "conv", "y", x="x", weight=Const(f(2, 2, 3, 2)), strides=Value([2, 2]),
        pad_type=Value("custom"), pad=Value([1, 1, 1, 1]))])
    b.case(inputs=[("x", f(1, 2, 7, 6))], target="ios16", options={"target": "ios15"},
           outputs=["y"], ops=[op("max_pool", "y", x="x", kernel_sizes=Value([3, 2]),
                                  pad_type=Value("same_lower"))])
    b.case(inputs=[("x", f(5, 6))], outputs=["y"], ops=[op(
        "slice_by_index", "y", x="x", begin=Value([4, 0]), end=Value([-9, 6]),
        stride=Value([-1, 1]))])
    b.case(inputs=[("x", f(2, 3, 2, 4, 3))], outputs=["y"], ops=[op(
        "gather", "y", x="x", indices=Value(1, shape=[]), axis=Value(2))])
    b.case(inputs=[("q", f(10, 3, 4)), ("k", f(10, 5, 4)), ("v", f(10, 5, 2))],
           options={"units": "cpu_and_gpu"}, outputs=["y"], ops=[op(
               "scaled_dot_product_attention", "y", query="q", key="k", value="v",
               attn_mask=Const(rng.random((3, 5)) < 0.8))])
    b.case(inputs=[("x", f(2, 9))], outputs=["y", "l", "z"], ops=[
        op("softplus", "y", x="x"), op("reduce_log_sum_exp", "l", x="x", axes=Value([1])),
        op("softmax", "s", x="x", axis=Value(-1)), op("log", "z", x="s")])
    b.case(inputs=[("s", f(1, 3, 4))], outputs=["y"], ops=[
        op("add", "y", x="s", y=Const(np.full((3, 4), -3.4e38, np.float32)))])
    b.case(inputs=[("fp32", np.array([True, False]), "bool")], outputs=["bool"], ops=[
        op("logical_not", "bool", x="fp32")])
    b.case(inputs=[("x", f(3, 4))], apply="both", outputs=["y"], ops=[
        op("add", "c", x=Const(f(3, 4)), y=Const(f(3, 4))), op("mul", "m", x="x", y="c"),
        op("reshape", "y", x="m", shape=Value([3, 4]))])
    res = b.run(tmp_path, asan=True)
    for i, r in enumerate(res):
        assert r.error == "", (i, r.error)
        assert r.fixed_rules(), (i, r.hits)
        for got, want in zip(r.fixed, r.orig):
            if want.dtype == np.bool_:
                np.testing.assert_array_equal(got.astype(bool), want)
            elif i != 7:  # the mask case: -3.4e38 becomes -1e4 by design
                assert rel_err(got, want) <= EQ, i
