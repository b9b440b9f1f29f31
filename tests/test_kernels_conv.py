"""milk's conv, conv_transpose, linear, matmul and
scaled_dot_product_attention kernels against PyTorch.

Every case runs twice, through the reference kernel (reference=True) and
through the fast OpenBLAS kernel, and both must match PyTorch computed at
test time: fp32 within 1e-5 relative (max |err| / max |expected|), fp16
as-declared within 1e-2. Where MIL and PyTorch differ (MIL's "same"
padding with even kernels, asymmetric pads, conv_transpose "same") the
expected value is PyTorch's convolution of an explicitly padded input, or
PyTorch's full transposed convolution cropped, with the pads computed by
hand from the rule coremltools documents (docs/coreml-format.md 7.1).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from milkop import Const, In, rel_err, run_op

RNG = np.random.RandomState(1234)
MODES = [pytest.param(True, id="ref"), pytest.param(False, id="fast")]


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def fp16(a):
    """a rounded to fp16 and back: what an fp16 model input holds."""
    return np.asarray(a, dtype=np.float16).astype(np.float32)


def check(op, inputs, want, reference, tol=1e-5, **kw):
    outs, _ = run_op(op, inputs, reference=reference, **kw)
    want = np.asarray(want, dtype=np.float32)
    assert outs[0].shape == want.shape
    err = rel_err(outs[0], want)
    assert err <= tol, f"relative error {err:.3g} > {tol}"


# ---- conv ----------------------------------------------------------------

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d,
               3: F.conv_transpose3d}


def mil_same_pads(size, k, s, d, lower):
    """MIL's same / same_lower: total max(0, (ceil(in/s) - 1) * s + keff -
    in), the smaller half before (same) or after (same_lower)."""
    keff = (k - 1) * d + 1
    total = max(0, (math.ceil(size / s) - 1) * s + keff - size)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def torch_conv(x, w, b, strides, dil, groups, pads):
    """PyTorch conv of x zero-padded by pads [(before, after)] per dim."""
    flat = []
    for before, after in reversed(pads):  # F.pad lists the last dim first
        flat += [before, after]
    xp = F.pad(t(x), flat)
    fn = TORCH_CONV[len(pads)]
    return fn(xp, t(w), None if b is None else t(b), stride=strides,
              dilation=dil, groups=groups).numpy()


def conv_inputs(x, w, b, strides, dil, groups, pad_type, pad=None,
                weight_const=True):
    inputs = [("x", x), ("weight", Const(w) if weight_const else w)]
    if b is not None:
        inputs.append(("bias", Const(b)))
    inputs += [("strides", list(strides)), ("pad_type", pad_type),
               ("dilations", list(dil)), ("groups", groups)]
    if pad is not None:
        inputs.append(("pad", [p for pair in pad for p in pair]))
    return inputs


# (name, x shape, C_out, kernel, strides, dilations, groups, bias, pad_type,
#  custom pads)
CONV_CASES = [
    ("1d_valid", (2, 3, 17), 4, (3,), (1,), (1,), 1, True, "valid", None),
    ("1d_stride_dil", (1, 4, 20), 6, (3,), (2,), (2,), 2, True, "valid", None),
    ("1d_same_even", (1, 3, 11), 5, (4,), (1,), (1,), 1, False, "same", None),
    ("1d_same_lower", (1, 3, 11), 5, (4,), (2,), (1,), 1, True, "same_lower", None),
    ("1d_custom", (1, 2, 9), 3, (3,), (1,), (1,), 1, True, "custom", [(2, 0)]),
    ("2d_valid", (2, 3, 9, 8), 5, (3, 3), (1, 1), (1, 1), 1, True, "valid", None),
    ("2d_same_odd", (1, 4, 10, 7), 6, (3, 5), (1, 1), (1, 1), 1, True, "same", None),
    ("2d_same_even_stride", (1, 3, 11, 10), 4, (2, 4), (2, 3), (1, 1), 1, True, "same", None),
    ("2d_same_lower_even", (1, 3, 11, 10), 4, (2, 4), (2, 3), (1, 1), 1, True, "same_lower", None),
    ("2d_same_dilated", (1, 2, 12, 9), 3, (3, 2), (1, 2), (2, 3), 1, False, "same", None),
    ("2d_custom_asym", (1, 3, 8, 9), 4, (3, 2), (2, 1), (1, 2), 1, True, "custom", [(1, 2), (0, 3)]),
    ("2d_stride_no_bias", (2, 4, 15, 13), 8, (3, 3), (2, 2), (1, 1), 1, False, "valid", None),
    ("2d_dilation", (1, 3, 14, 12), 4, (3, 3), (1, 1), (2, 3), 1, True, "valid", None),
    ("2d_groups", (1, 6, 9, 9), 9, (3, 3), (1, 1), (1, 1), 3, True, "custom", [(1, 1), (1, 1)]),
    ("2d_depthwise", (2, 8, 10, 10), 8, (3, 3), (2, 2), (1, 1), 8, True, "same", None),
    ("2d_depthwise_mult", (1, 4, 9, 11), 8, (5, 3), (1, 1), (1, 1), 4, True, "valid", None),
    ("2d_pointwise", (2, 16, 7, 6), 12, (1, 1), (1, 1), (1, 1), 1, True, "valid", None),
    ("2d_pointwise_stride", (1, 8, 9, 9), 4, (1, 1), (2, 2), (1, 1), 1, True, "valid", None),
    ("2d_kernel_gt_pad_input", (1, 2, 3, 3), 2, (5, 5), (1, 1), (1, 1), 1, True, "same", None),
    ("3d_valid", (1, 2, 5, 6, 7), 3, (2, 3, 3), (1, 1, 1), (1, 1, 1), 1, True, "valid", None),
    ("3d_same_stride", (2, 4, 6, 5, 7), 4, (3, 3, 2), (2, 1, 2), (1, 1, 1), 2, False, "same", None),
    ("3d_custom_dil", (1, 3, 7, 7, 6), 2, (2, 2, 3), (1, 2, 1), (2, 1, 1), 1, True, "custom",
     [(1, 0), (0, 2), (1, 1)]),
]


def expected_pads(xshape, kernel, strides, dil, pad_type, pad):
    sizes = xshape[2:]
    if pad_type == "valid":
        return [(0, 0)] * len(sizes)
    if pad_type == "custom":
        return pad
    return [mil_same_pads(n, k, s, d, pad_type == "same_lower")
            for n, k, s, d in zip(sizes, kernel, strides, dil)]


@pytest.mark.parametrize("reference", MODES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv(case, reference):
    _, xs, c_out, kernel, strides, dil, groups, bias, pad_type, pad = case
    x = randn(*xs)
    w = randn(c_out, xs[1] // groups, *kernel)
    b = randn(c_out) if bias else None
    pads = expected_pads(xs, kernel, strides, dil, pad_type, pad)
    want = torch_conv(x, w, b, strides, dil, groups, pads)
    check("conv", conv_inputs(x, w, b, strides, dil, groups, pad_type, pad),
          want, reference)


@pytest.mark.parametrize("reference", MODES)
def test_conv_same_by_hand(reference):
    """1-D, kernel [1, 10] on [1, 2, 3, 4]: same pads one zero after,
    same_lower one zero before (worked out by hand)."""
    x = np.array([[[1, 2, 3, 4]]], dtype=np.float32)
    w = np.array([[[1, 10]]], dtype=np.float32)
    for pad_type, want in [("same", [21, 32, 43, 4]),
                           ("same_lower", [10, 21, 32, 43])]:
        check("conv", conv_inputs(x, w, None, [1], [1], 1, pad_type),
              np.array(want, dtype=np.float32).reshape(1, 1, 4), reference)


@pytest.mark.parametrize("reference", MODES)
def test_conv_runtime_weight(reference):
    """iOS17: the weight may be a model input (no dilation then)."""
    x, w, b = randn(2, 4, 9, 8), randn(6, 2, 3, 2), randn(6)
    inputs = conv_inputs(x, w, b, (1, 2), (1, 1), 2, "custom", [(1, 1), (0, 1)],
                         weight_const=False)
    want = torch_conv(x, w, b, (1, 2), (1, 1), 2, [(1, 1), (0, 1)])
    check("conv", inputs, want, reference, target="ios17")


@pytest.mark.parametrize("reference", MODES)
def test_conv_fp16(reference):
    """fp16 x and weights, as declared: PyTorch on the fp16-rounded values,
    within 1e-2."""
    x, w, b = fp16(randn(1, 4, 10, 9)), fp16(randn(6, 4, 3, 3)), fp16(randn(6))
    inputs = [("x", In(x, dtype="fp16")), ("weight", Const(w, dtype="fp16")),
              ("bias", Const(b, dtype="fp16")), ("pad_type", "same"),
              ("strides", [2, 1])]
    want = torch_conv(x, w, b, (2, 1), (1, 1), 1,
                      expected_pads(x.shape, (3, 3), (2, 1), (1, 1), "same", None))
    check("conv", inputs, want, reference, tol=1e-2, precision="as_declared")


# ---- conv_transpose ------------------------------------------------------

def torch_convt_full(x, w, b, strides, dil, groups):
    fn = TORCH_CONVT[x.ndim - 2]
    return fn(t(x), t(w), None if b is None else t(b), stride=strides,
              dilation=dil, groups=groups).numpy()


# (name, x shape, C_out, kernel, strides, dilations, groups, bias, pads
#  (symmetric PyTorch padding), output_padding or None)
CONVT_CASES = [
    ("1d_valid", (2, 3, 7), 4, (3,), (1,), (1,), 1, True, (0,), None),
    ("1d_stride_pad", (1, 4, 9), 2, (4,), (2,), (1,), 1, True, (1,), None),
    ("1d_dil_groups", (1, 4, 6), 6, (3,), (3,), (2,), 2, False, (2,), None),
    ("1d_output_padding", (1, 3, 8), 5, (3,), (2,), (1,), 1, True, (1,), (1,)),
    ("2d_valid", (2, 3, 5, 6), 4, (3, 3), (1, 1), (1, 1), 1, True, (0, 0), None),
    ("2d_stride", (1, 4, 6, 5), 3, (3, 2), (2, 3), (1, 1), 1, True, (0, 0), None),
    ("2d_stride_pad", (1, 4, 6, 7), 6, (4, 4), (2, 2), (1, 1), 1, True, (1, 1), None),
    ("2d_dilation", (2, 2, 5, 5), 3, (3, 3), (1, 2), (2, 2), 1, False, (1, 2), None),
    ("2d_groups", (1, 6, 5, 4), 9, (3, 3), (2, 2), (1, 1), 3, True, (1, 0), None),
    ("2d_depthwise", (1, 8, 6, 6), 8, (3, 3), (2, 2), (1, 1), 8, True, (1, 1), None),
    ("2d_output_padding", (1, 5, 6, 5), 4, (3, 3), (2, 2), (1, 1), 1, True, (1, 1), (1, 1)),
    ("2d_output_padding_beyond", (1, 3, 4, 5), 2, (2, 3), (3, 3), (1, 1), 1, True, (0, 1), (2, 2)),
    ("2d_kernel_eq_stride", (1, 8, 7, 7), 4, (2, 2), (2, 2), (1, 1), 1, True, (0, 0), None),
    ("3d_valid", (1, 2, 3, 4, 3), 3, (2, 3, 2), (1, 1, 1), (1, 1, 1), 1, True, (0, 0, 0), None),
    ("3d_stride_pad_groups", (2, 4, 3, 4, 3), 4, (3, 3, 2), (2, 1, 2), (1, 1, 1), 2, True,
     (1, 1, 0), None),
    ("3d_output_padding", (1, 2, 3, 3, 4), 2, (3, 3, 3), (2, 2, 2), (1, 2, 1), 1, True,
     (1, 1, 1), (1, 0, 1)),
]


@pytest.mark.parametrize("reference", MODES)
@pytest.mark.parametrize("case", CONVT_CASES, ids=[c[0] for c in CONVT_CASES])
def test_conv_transpose(case, reference):
    _, xs, c_out, kernel, strides, dil, groups, bias, pads, opad = case
    x = randn(*xs)
    w = randn(xs[1], c_out // groups, *kernel)
    b = randn(c_out) if bias else None
    fn = TORCH_CONVT[len(kernel)]
    want = fn(t(x), t(w), None if b is None else t(b), stride=strides,
              padding=pads, output_padding=opad or 0, dilation=dil,
              groups=groups).numpy()
    inputs = [("x", x), ("weight", Const(w))]
    if b is not None:
        inputs.append(("bias", Const(b)))
    inputs += [("pad_type", "custom"), ("pad", [p for p in pads for _ in (0, 1)]),
               ("strides", list(strides)), ("dilations", list(dil)),
               ("groups", groups)]
    if opad:
        inputs.append(("output_shape", list(want.shape)))
    check("conv_transpose", inputs, want, reference)


@pytest.mark.parametrize("reference", MODES)
def test_conv_transpose_asymmetric_pads(reference):
    """custom pads (1, 2) and (0, 3): the full result cropped by hand."""
    x, w, b = randn(1, 3, 5, 6), randn(3, 4, 4, 3), randn(4)
    full = torch_convt_full(x, w, b, (2, 2), (1, 1), 1)
    want = full[:, :, 1:full.shape[2] - 2, 0:full.shape[3] - 3]
    inputs = [("x", x), ("weight", Const(w)), ("bias", Const(b)),
              ("pad_type", "custom"), ("pad", [1, 2, 0, 3]), ("strides", [2, 2])]
    check("conv_transpose", inputs, want, reference)


@pytest.mark.parametrize("reference", MODES)
@pytest.mark.parametrize("kernel,stride", [((3, 4), (2, 2)), ((5, 1), (2, 3)),
                                           ((2, 2), (3, 1))])
def test_conv_transpose_same(kernel, stride, reference):
    """pad_type same: output D * stride; TensorFlow's rule crops floor((keff
    - stride) / 2) before when keff > stride; a kernel shorter than the
    stride leaves bias-only positions at the end."""
    x, w, b = randn(1, 2, 4, 5), randn(2, 3, *kernel), randn(3)
    full = torch_convt_full(x, w, None, stride, (1, 1), 1)
    h, wd = [n * s for n, s in zip(x.shape[2:], stride)]
    bh, bw = [max(0, k - s) // 2 for k, s in zip(kernel, stride)]
    ch, cw = min(h, full.shape[2] - bh), min(wd, full.shape[3] - bw)
    want = np.zeros((1, 3, h, wd), dtype=np.float32)
    want[:, :, :ch, :cw] = full[:, :, bh:bh + ch, bw:bw + cw]
    want += b.reshape(1, 3, 1, 1)
    inputs = [("x", x), ("weight", Const(w)), ("bias", Const(b)),
              ("pad_type", "same"), ("strides", list(stride))]
    check("conv_transpose", inputs, want, reference)


@pytest.mark.parametrize("reference", MODES)
def test_conv_transpose_runtime_weight(reference):
    """iOS17: the weight may be a model input."""
    x, w = randn(1, 4, 5, 5), randn(4, 3, 3, 3)
    want = F.conv_transpose2d(t(x), t(w), stride=2, padding=1, groups=2).numpy()
    inputs = [("x", x), ("weight", w), ("pad_type", "custom"),
              ("pad", [1, 1, 1, 1]), ("strides", [2, 2]), ("groups", 2)]
    check("conv_transpose", inputs, want, reference, target="ios17")


@pytest.mark.parametrize("reference", MODES)
def test_conv_transpose_fp16(reference):
    x, w = fp16(randn(1, 4, 6, 6)), fp16(randn(4, 5, 3, 3))
    want = F.conv_transpose2d(t(x), t(w), stride=2, padding=1).numpy()
    inputs = [("x", In(x, dtype="fp16")), ("weight", Const(w, dtype="fp16")),
              ("pad_type", "custom"), ("pad", [1, 1, 1, 1]), ("strides", [2, 2])]
    check("conv_transpose", inputs, want, reference, tol=1e-2,
          precision="as_declared")


# ---- linear ---------------------------------------------------------------

@pytest.mark.parametrize("reference", MODES)
@pytest.mark.parametrize("xshape", [(7,), (5, 7), (2, 3, 7), (2, 2, 3, 7)],
                         ids=["rank1", "rank2", "rank3", "rank4"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear(xshape, bias, reference):
    x, w = randn(*xshape), randn(9, 7)
    b = randn(9) if bias else None
    want = F.linear(t(x), t(w), None if b is None else t(b)).numpy()
    inputs = [("x", x), ("weight", Const(w))]
    if bias:
        inputs.append(("bias", Const(b)))
    check("linear", inputs, want, reference)


@pytest.mark.parametrize("reference", MODES)
def test_linear_fp16(reference):
    x, w, b = fp16(randn(4, 33)), fp16(randn(17, 33)), fp16(randn(17))
    want = F.linear(t(x), t(w), t(b)).numpy()
    inputs = [("x", In(x, dtype="fp16")), ("weight", Const(w, dtype="fp16")),
              ("bias", Const(b, dtype="fp16"))]
    check("linear", inputs, want, reference, tol=1e-2, precision="as_declared")


@pytest.mark.parametrize("reference", MODES)
def test_linear_int32(reference):
    """int32 linear is exact: NumPy in int64 on small values."""
    x = RNG.randint(-50, 50, size=(3, 6)).astype(np.int32)
    w = RNG.randint(-50, 50, size=(4, 6)).astype(np.int32)
    b = RNG.randint(-50, 50, size=(4,)).astype(np.int32)
    outs, types = run_op("linear", [("x", x), ("weight", Const(w)), ("bias", Const(b))],
                         reference=reference)
    assert types[0]["dtype"] == "int32"
    np.testing.assert_array_equal(outs[0], x.astype(np.int64) @ w.T.astype(np.int64) + b)


# ---- matmul ---------------------------------------------------------------

# (name, x shape, y shape, transpose_x, transpose_y, y constant)
MATMUL_CASES = [
    ("2d", (4, 5), (5, 3), False, False, False),
    ("rank1_x", (5,), (2, 5, 3), False, False, False),
    ("rank1_y", (2, 4, 5), (5,), False, False, False),
    ("rank1_both", (6,), (6,), False, False, False),
    ("rank1_x_2d", (5,), (5, 3), False, False, True),
    ("batch", (3, 4, 5), (3, 5, 2), False, False, False),
    ("broadcast", (2, 1, 4, 5), (3, 5, 6), False, False, False),
    ("broadcast_x", (4, 5), (2, 3, 5, 6), False, False, False),
    ("broadcast_both", (2, 1, 3, 4), (1, 5, 4, 2), False, False, False),
    ("shared_y", (2, 3, 4, 5), (5, 6), False, False, True),
    ("shared_y_ty", (2, 3, 4, 5), (6, 5), False, True, True),
    ("tx", (5, 4), (5, 3), True, False, False),
    ("ty", (4, 5), (3, 5), False, True, False),
    ("tx_ty_batch", (2, 5, 4), (2, 3, 5), True, True, False),
    ("tx_broadcast", (2, 1, 5, 4), (3, 5, 2), True, False, True),
    ("ty_rank1_x", (5,), (2, 3, 5), False, True, False),
]


def swap_last(a, flag):
    return np.swapaxes(a, -1, -2) if flag else a


@pytest.mark.parametrize("reference", MODES)
@pytest.mark.parametrize("case", MATMUL_CASES, ids=[c[0] for c in MATMUL_CASES])
def test_matmul(case, reference):
    _, xs, ys, tx, ty, yconst = case
    x, y = randn(*xs), randn(*ys)
    want = torch.matmul(t(swap_last(x, tx)), t(swap_last(y, ty))).numpy()
    inputs = [("x", x), ("y", Const(y) if yconst else y)]
    if tx:
        inputs.append(("transpose_x", True))
    if ty:
        inputs.append(("transpose_y", True))
    check("matmul", inputs, want, reference)


@pytest.mark.parametrize("reference", MODES)
def test_matmul_fp16(reference):
    x, y = fp16(randn(2, 8, 16)), fp16(randn(2, 16, 4))
    want = torch.matmul(t(x), t(y)).numpy()
    check("matmul", [("x", In(x, dtype="fp16")), ("y", In(y, dtype="fp16"))],
          want, reference, tol=1e-2, precision="as_declared")


@pytest.mark.parametrize("reference", MODES)
def test_matmul_int32(reference):
    x = RNG.randint(-100, 100, size=(2, 3, 4)).astype(np.int32)
    y = RNG.randint(-100, 100, size=(4, 5)).astype(np.int32)
    outs, types = run_op("matmul", [("x", x), ("y", y)], reference=reference)
    assert types[0]["dtype"] == "int32"
    np.testing.assert_array_equal(outs[0], x.astype(np.int64) @ y.astype(np.int64))


@pytest.mark.parametrize("reference", MODES)
def test_matmul_int32_x_float_const(reference):
    """iOS17: int32 x times a constant fp32 y gives int32 (the non-constant
    operand's dtype): the exact product truncated toward zero."""
    x = RNG.randint(-20, 20, size=(3, 4)).astype(np.int32)
    y = (RNG.randint(-40, 40, size=(4, 2)) / 4.0).astype(np.float32)
    outs, types = run_op("matmul", [("x", x), ("y", Const(y))], target="ios17",
                         reference=reference)
    assert types[0]["dtype"] == "int32"
    np.testing.assert_array_equal(outs[0], np.trunc(x.astype(np.float64) @ y))


@pytest.mark.parametrize("reference", MODES)
def test_linear_fp16_weight_fp32_x(reference):
    """iOS17: fp16 weights on an fp32 input; the output stays fp32."""
    x, w, b = randn(3, 10), fp16(randn(5, 10)), fp16(randn(5))
    outs, types = run_op("linear", [("x", x), ("weight", Const(w, dtype="fp16")),
                                    ("bias", Const(b, dtype="fp16"))],
                         target="ios17", reference=reference)
    assert types[0]["dtype"] == "fp32"
    assert rel_err(outs[0], F.linear(t(x), t(w), t(b)).numpy()) <= 1e-5


# ---- scaled_dot_product_attention ------------------------------------------

def torch_sdpa(q, k, v, mask):
    """PyTorch's documented equivalent of F.scaled_dot_product_attention
    (the function itself is missing from the installed PyTorch), in
    float64: a bool mask fills False with -inf, a float mask is added."""
    q, k, v = (torch.from_numpy(a).double() for a in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None and mask.dtype == bool:
        scores = scores.masked_fill(~torch.from_numpy(mask), float("-inf"))
    elif mask is not None:
        scores = scores + torch.from_numpy(mask).double()
    return (torch.softmax(scores, dim=-1) @ v).numpy()


# (name, batch dims, L, S, E, EV, mask: None, "bool" or "float", mask shape)
SDPA_CASES = [
    ("rank3_nomask", (2,), 5, 7, 8, 6, None, None),
    ("rank4_nomask", (2, 3), 4, 6, 16, 16, None, None),
    ("rank4_bool_full", (2, 2), 5, 5, 8, 4, "bool", (2, 2, 5, 5)),
    ("rank4_bool_causal_bcast", (1, 3), 6, 6, 8, 8, "bool", (6, 6)),
    ("rank4_float_bcast", (2, 2), 3, 9, 4, 5, "float", (2, 1, 1, 9)),
    ("rank3_float_rowmask", (3,), 4, 5, 6, 3, "float", (4, 1)),
    ("rank5", (2, 1, 2), 3, 4, 5, 2, "bool", (1, 3, 4)),
]


@pytest.mark.parametrize("reference", MODES)
@pytest.mark.parametrize("case", SDPA_CASES, ids=[c[0] for c in SDPA_CASES])
def test_sdpa(case, reference):
    _, batch, L, S, E, EV, kind, mshape = case
    q, k, v = randn(*batch, L, E), randn(*batch, S, E), randn(*batch, S, EV)
    inputs = [("query", q), ("key", k), ("value", v)]
    mask = None
    if kind == "bool":
        mask = RNG.rand(*mshape) < 0.7
        if mshape == (6, 6):
            mask = np.tril(np.ones((6, 6), dtype=bool))
        mask[..., 0] = True  # no row masked everywhere (NaN)
        inputs.append(("attn_mask", mask))
    elif kind == "float":
        mask = randn(*mshape)
        inputs.append(("attn_mask", mask))
    check("scaled_dot_product_attention", inputs, torch_sdpa(q, k, v, mask),
          reference)


@pytest.mark.parametrize("reference", MODES)
def test_sdpa_fully_masked_row_is_nan(reference):
    """A row with every key masked is NaN (softmax of all -inf), as
    coremltools' NumPy value_inference computes it."""
    q, k, v = randn(1, 3, 4), randn(1, 5, 4), randn(1, 5, 2)
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False
    outs, _ = run_op("scaled_dot_product_attention",
                     [("query", q), ("key", k), ("value", v), ("attn_mask", mask)],
                     reference=reference)
    assert np.isnan(outs[0][0, 1]).all()
    want = torch_sdpa(q[:, [0, 2]], k, v, None)
    assert rel_err(outs[0][0, [0, 2]], want[0]) <= 1e-5


@pytest.mark.parametrize("reference", MODES)
def test_sdpa_fp16(reference):
    q, k, v = fp16(randn(2, 6, 8)), fp16(randn(2, 7, 8)), fp16(randn(2, 7, 8))
    inputs = [("query", In(q, dtype="fp16")), ("key", In(k, dtype="fp16")),
              ("value", In(v, dtype="fp16"))]
    check("scaled_dot_product_attention", inputs, torch_sdpa(q, k, v, None),
          reference, tol=1e-2, precision="as_declared")


def test_sdpa_needs_ios18():
    q = randn(1, 2, 4)
    with pytest.raises(RuntimeError, match="ios18|iOS18|opset"):
        run_op("scaled_dot_product_attention",
               [("query", q), ("key", q), ("value", q)], target="ios17")


# ---- einsum ----------------------------------------------------------------

# (equation, x shape, y shape): MIL's two patterns, relabeled, broadcast
EINSUM_CASES = [
    ("nchw,nwhu->nchu", (2, 3, 4, 5), (2, 5, 4, 6)),
    ("abcd,adce->abce", (1, 3, 4, 5), (2, 5, 1, 6)),
    ("zyxw, zwxv -> zyxv", (2, 2, 1, 3), (1, 3, 5, 4)),
    ("chw,whr->chr", (3, 4, 5), (5, 4, 2)),
    ("ijk,kjl->ijl", (3, 1, 5), (5, 6, 2)),
]


@pytest.mark.parametrize("case", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum(case):
    eq, xs, ys = case
    x, y = randn(*xs), randn(*ys)
    # PyTorch's einsum does not broadcast size-1 dims that carry a label;
    # expand them first (what MIL's broadcasting means)
    H = max(xs[-2], ys[-2])
    if len(xs) == 4:
        N = max(xs[0], ys[0])
        xe, ye = t(x).expand(N, xs[1], H, xs[3]), t(y).expand(N, ys[1], H, ys[3])
    else:
        xe, ye = t(x).expand(xs[0], H, xs[2]), t(y).expand(ys[0], H, ys[2])
    want = torch.einsum(eq.replace(" ", ""), xe, ye).numpy()
    check("einsum", [("values", x), ("values", y), ("equation", eq)], want,
          reference=True)


def test_einsum_rejects_other_equations():
    x, y = randn(3, 4), randn(4, 5)
    with pytest.raises(RuntimeError, match="equation"):
        run_op("einsum", [("values", x), ("values", y), ("equation", "ij,jk->ik")])
