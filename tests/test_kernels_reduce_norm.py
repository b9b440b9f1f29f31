"""Reference kernels of the reductions and normalizations against PyTorch
(or NumPy, for reduce_prod, the int32 paths and argmax ties), run one op at
a time through milk's interpreter (tests/milkop.py).

fp32 results must agree within 1e-5 relative (max |err| / max |expected|),
integer results exactly, fp16 as-declared results within 1e-2."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernelcheck import TOL16, assert_close, check, check_batch, f32, normal, rng, seed_of, t
from milkop import Const, In, Value, run_op

# ---- reductions over axes ------------------------------------------------------


def dims_of(shape, axes):
    return tuple(range(len(shape))) if axes is None else tuple(axes)


def np_prod(x, d, keep):
    return torch.from_numpy(np.asarray(np.prod(x.numpy().astype(np.float64), axis=d,
                                               keepdims=keep)))


REDUCE_TORCH = {
    "reduce_sum": lambda x, d, k: torch.sum(x, d, keepdim=k),
    "reduce_mean": lambda x, d, k: torch.mean(x, d, keepdim=k),
    "reduce_max": lambda x, d, k: torch.amax(x, d, keepdim=k),
    "reduce_min": lambda x, d, k: torch.amin(x, d, keepdim=k),
    "reduce_prod": np_prod,  # torch.prod takes one dim only
    "reduce_l1_norm": lambda x, d, k: torch.sum(torch.abs(x), d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.linalg.vector_norm(x, 2, d, keepdim=k),
    "reduce_log_sum": lambda x, d, k: torch.log(torch.sum(x, d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k),
    "reduce_sum_square": lambda x, d, k: torch.sum(x * x, d, keepdim=k),
}

REDUCE_CASES = [((5,), None, False), ((5,), [0], True), ((2, 3, 4), None, True),
                ((2, 3, 4), [1], False), ((2, 3, 4), [-1], True), ((2, 3, 4), [0, 2], False),
                ((2, 3, 4), [2, 0], True), ((3, 1, 4), [1], False),
                ((2, 3, 4, 5, 2), [-4, -1], False), ((2, 3, 4, 5, 2), [1, 2, 3], True)]


def reduce_input(op, shape, seed):
    r = rng(seed)
    if op == "reduce_prod":  # magnitudes near 1, both signs
        return np.asarray(r.uniform(0.5, 1.5, shape) * r.choice([-1, 1], shape), np.float32)
    if op == "reduce_log_sum":
        return np.asarray(r.uniform(0.1, 2.0, shape), np.float32)
    if op == "reduce_log_sum_exp":  # e^x overflows fp32 unless the max is taken out
        return normal(seed, shape, 40)
    return normal(seed, shape)


def reduce_params(axes, keep):
    params = [] if axes is None else [("axes", axes)]
    return params + [("keep_dims", keep)] if keep else params


@pytest.mark.parametrize("op", sorted(REDUCE_TORCH))
@pytest.mark.parametrize("shape,axes,keep", REDUCE_CASES)
def test_reduce_fp32(op, shape, axes, keep):
    x = reduce_input(op, shape, seed_of(op, shape, axes))
    want = REDUCE_TORCH[op](t(x), dims_of(shape, axes), keep).numpy()
    check(op, [("x", x)] + reduce_params(axes, keep), want, dtype="fp32")


@pytest.mark.parametrize("op", sorted(REDUCE_TORCH))
def test_reduce_scalar(op):
    """A rank-0 x: the default axes are none at all, the result is x's
    function of one element."""
    x = np.asarray(1.5 if op != "reduce_prod" else -1.25, np.float32)
    want = REDUCE_TORCH[op](t(x[None]), (0,), False).numpy()
    check(op, [("x", x)], want)


def test_reduce_nan_inf():
    """max and min propagate NaN (np.max, torch.amax); log-sum-exp of an
    infinite max is that infinity (torch.logsumexp), where NumPy's
    max-shifted formula would give NaN."""
    x = np.float32([[1, np.nan, 3], [-np.inf, -np.inf, -np.inf], [1, np.inf, 2]])
    for op in ("reduce_max", "reduce_min", "reduce_sum", "reduce_log_sum_exp"):
        want = REDUCE_TORCH[op](t(x), (1,), False).numpy()
        check(op, [("x", x), ("axes", [1])], want, elementwise=True)


def test_reduce_empty():
    """A zero-size reduced axis: sum 0, prod 1 (NumPy's identities); max
    has no identity and fails, as np.max does."""
    x = np.zeros((0, 3), np.float32)
    check("reduce_sum", [("x", x), ("axes", [0])], np.zeros(3, np.float32))
    check("reduce_prod", [("x", x), ("axes", [0])], np.ones(3, np.float32))
    with pytest.raises(RuntimeError, match="zero-size axis"):
        run_op("reduce_max", [("x", x), ("axes", [0])])


def test_reduce_fp16():
    x = normal(21, (4, 8))
    x16 = x.astype(np.float16).astype(np.float32)
    for op in ("reduce_sum", "reduce_mean", "reduce_log_sum_exp"):
        outs, types = run_op(op, [("x", In(x, dtype="fp16")), ("axes", [-1])],
                             precision="as_declared")
        assert types[0]["dtype"] == "fp16"
        assert_close(outs[0], REDUCE_TORCH[op](t(x16), (1,), False).numpy(), TOL16)


INT_RED = {
    # sums and products in int64 (NumPy's accumulator), wrapped to int32
    "reduce_sum": lambda x, a, k: np.sum(x.astype(np.int64), a, keepdims=k),
    "reduce_prod": lambda x, a, k: np.prod(x.astype(np.int64), a, keepdims=k),
    "reduce_l1_norm": lambda x, a, k: np.sum(np.abs(x.astype(np.int64)), a, keepdims=k),
    "reduce_sum_square": lambda x, a, k: np.sum(x.astype(np.int64) ** 2, a, keepdims=k),
    "reduce_max": lambda x, a, k: np.max(x, a, keepdims=k),
    "reduce_min": lambda x, a, k: np.min(x, a, keepdims=k),
    # float results truncated toward zero (astype(int32))
    "reduce_mean": lambda x, a, k: np.trunc(np.mean(x.astype(np.float64), a, keepdims=k)),
    "reduce_l2_norm": lambda x, a, k: np.trunc(
        np.sqrt(np.sum(x.astype(np.float64) ** 2, a, keepdims=k))),
}


@pytest.mark.parametrize("op", sorted(INT_RED))
def test_reduce_int32(op):
    r = rng(22)
    x = r.integers(-9, 10, (3, 4, 5)).astype(np.int32)
    for axes, keep in ((None, False), ([1], True), ([0, -1], False)):
        a = None if axes is None else tuple(axes)
        want = INT_RED[op](x, a, keep).astype(np.int32)
        check(op, [("x", x)] + reduce_params(axes, keep), want, dtype="int32")
    # values whose sums and products leave int32: the low 32 bits remain
    big = np.int32([[2**30, 2**30, 3], [-(2**31), -1, 65536], [65536, 65536, 7]])
    with np.errstate(all="ignore"):
        want = INT_RED[op](big, (1,), False).astype(np.int32)
    check(op, [("x", big), ("axes", [1])], want)


def test_reduce_log_int32():
    """log_sum and log_sum_exp of int32 x: computed in double, truncated."""
    x = np.int32([[1, 2, 3], [10, 20, 30], [-5, 0, 5]])
    xf = x.astype(np.float64)
    lse = xf.max(1) + np.log(np.exp(xf - xf.max(1, keepdims=True)).sum(1))
    check("reduce_log_sum_exp", [("x", x), ("axes", [1])], np.trunc(lse).astype(np.int32))
    check("reduce_log_sum", [("x", x[:2]), ("axes", [1])],
          np.trunc(np.log(xf[:2].sum(1))).astype(np.int32))


def test_reduce_errors():
    x = normal(23, (2, 3))
    with pytest.raises(RuntimeError, match="repeated"):
        run_op("reduce_min", [("x", x), ("axes", [1, -1])])
    with pytest.raises(RuntimeError, match="outside"):
        run_op("reduce_prod", [("x", x), ("axes", [2])])
    with pytest.raises(RuntimeError, match="not allowed"):
        run_op("reduce_sum_square", [("x", np.ones(2, bool))])


# ---- argmax / argmin -----------------------------------------------------------------

ARG_CASES = [((7,), None, False), ((3, 4), 0, False), ((3, 4), -1, True),
             ((2, 3, 4), 1, True), ((2, 3, 4, 2, 3), -3, False)]


@pytest.mark.parametrize("op,fn", [("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)])
@pytest.mark.parametrize("shape,axis,keep", ARG_CASES)
@pytest.mark.parametrize("dt", [np.float32, np.int32])
def test_argmax_argmin(op, fn, shape, axis, keep, dt):
    """Small integers so that ties occur: the first index wins (NumPy's
    and PyTorch's rule)."""
    x = rng(seed_of(op, shape, axis)).integers(-3, 4, shape).astype(dt)
    a = -1 if axis is None else axis
    want = fn(x, axis=a)
    if keep:
        want = np.expand_dims(want, a)
    params = ([] if axis is None else [("axis", axis)]) + ([("keep_dims", True)] if keep else [])
    check(op, [("x", x)] + params, want.astype(np.int32), dtype="int32")


def test_argmax_nan_and_uint16():
    """A NaN counts as the extreme: its first index is returned (np.argmax,
    np.argmin). From iOS17 output_dtype may be uint16."""
    x = np.float32([[1, np.nan, 5, np.nan], [2, 9, 9, 0]])
    for op, fn in (("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)):
        check(op, [("x", x)], fn(x, -1).astype(np.int32))
        check(op, [("x", x), ("axis", 0), ("output_dtype", "uint16")],
              fn(x, 0).astype(np.int32), dtype="uint16", target="ios17")
    with pytest.raises(RuntimeError, match="(?i)ios17"):
        run_op("reduce_argmax", [("x", x), ("output_dtype", "uint16")], target="ios16")
    with pytest.raises(RuntimeError, match="not int32 or uint16"):
        run_op("reduce_argmax", [("x", x), ("output_dtype", "int8")], target="ios17")


# ---- batch_norm, instance_norm --------------------------------------------------------


def channel_params(seed, c):
    r = rng(seed)
    mean = np.asarray(r.standard_normal(c), np.float32)
    var = np.asarray(r.uniform(0.1, 3.0, c), np.float32)
    gamma = np.asarray(r.standard_normal(c), np.float32)
    beta = np.asarray(r.standard_normal(c), np.float32)
    return mean, var, gamma, beta


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 4, 3, 3), (1, 2, 2, 3, 4)])
@pytest.mark.parametrize("affine,eps", [(True, None), (False, 0.5)])
def test_batch_norm(shape, affine, eps):
    x = normal(seed_of(shape), shape)
    mean, var, gamma, beta = channel_params(31, shape[1])
    inputs = [("x", x), ("mean", Const(mean)), ("variance", Const(var))]
    if affine:
        inputs += [("gamma", Const(gamma)), ("beta", Const(beta))]
    if eps is not None:
        inputs += [("epsilon", f32(eps))]
    want = F.batch_norm(d(x), d(mean), d(var), d(gamma) if affine else None,
                        d(beta) if affine else None, False, 0.0,
                        1e-5 if eps is None else eps)
    check("batch_norm", inputs, want.numpy())


def test_batch_norm_param_dtypes():
    """fp16 statistics with fp32 x: allowed from iOS17 on; and the whole op
    in fp16 (as-declared)."""
    x = normal(32, (2, 3, 4))
    mean, var, gamma, beta = channel_params(33, 3)
    r16 = [a.astype(np.float16).astype(np.float32) for a in (mean, var, gamma, beta)]
    inputs = [("x", x), ("mean", Const(mean, dtype="fp16")), ("variance", Const(var, dtype="fp16")),
              ("gamma", Const(gamma, dtype="fp16")), ("beta", Const(beta, dtype="fp16"))]
    want = F.batch_norm(d(x), *[d(a) for a in r16], False, 0.0, 1e-5)
    check("batch_norm", inputs, want.numpy(), target="ios17")
    with pytest.raises(RuntimeError, match="allowed from iOS17 on"):
        run_op("batch_norm", inputs, target="ios16")
    x16 = x.astype(np.float16).astype(np.float32)
    inputs[0] = ("x", In(x, dtype="fp16"))
    outs, types = run_op("batch_norm", inputs, precision="as_declared", target="ios16")
    assert types[0]["dtype"] == "fp16"
    want = F.batch_norm(d(x16), *[d(a) for a in r16], False, 0.0, 1e-5)
    assert_close(outs[0], want.numpy(), TOL16)


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5)])
@pytest.mark.parametrize("affine,eps", [(True, None), (False, 1e-2)])
def test_instance_norm(shape, affine, eps):
    x = normal(seed_of(shape, "in"), shape) + np.float32(2)  # mean away from 0
    _, _, gamma, beta = channel_params(34, shape[1])
    inputs = [("x", x)]
    if affine:
        inputs += [("gamma", Const(gamma)), ("beta", Const(beta))]
    if eps is not None:
        inputs += [("epsilon", f32(eps))]
    want = F.instance_norm(d(x), weight=d(gamma) if affine else None,
                           bias=d(beta) if affine else None, eps=1e-5 if eps is None else eps)
    check("instance_norm", inputs, want.numpy())


# ---- layer_norm --------------------------------------------------------------------------


def d(a):
    """A float64 tensor: the references compute in double, so that their
    own rounding stays far below the tolerance."""
    return None if a is None else t(a).double()


def torch_layer_norm(x, axes, gamma, beta, eps):
    """F.layer_norm normalizes trailing dims: move the normalized axes to
    the end (in increasing order, the order of gamma's dims), normalize,
    move them back."""
    rank = x.ndim
    ax = list(range(rank)) if axes is None else sorted(a % rank for a in axes)
    perm = [i for i in range(rank) if i not in ax] + ax
    y = F.layer_norm(d(x).permute(perm), [x.shape[i] for i in ax], d(gamma), d(beta), eps)
    return y.permute(list(np.argsort(perm))).numpy()


LN_CASES = [((2, 3, 4), [-1]), ((2, 3, 4), [1, 2]), ((2, 3, 4), [0, 2]), ((2, 3, 4), [2, 0]),
            ((2, 3, 4), None), ((6,), [0]), ((2, 3, 2, 2, 3), [-3, -1]), ((4, 1, 5), [1])]


@pytest.mark.parametrize("shape,axes", LN_CASES)
@pytest.mark.parametrize("affine,eps", [(True, None), (False, 0.25)])
def test_layer_norm(shape, axes, affine, eps):
    x = normal(seed_of(shape, axes), shape) + np.float32(1)
    rank = len(shape)
    ax = list(range(rank)) if axes is None else sorted(a % rank for a in axes)
    nshape = [shape[i] for i in ax]
    r = rng(35)
    gamma = np.asarray(r.standard_normal(nshape), np.float32) if affine else None
    beta = np.asarray(r.standard_normal(nshape), np.float32) if affine else None
    inputs = [("x", x)] + ([] if axes is None else [("axes", axes)])
    if affine:
        inputs += [("gamma", Const(gamma)), ("beta", Const(beta))]
    if eps is not None:
        inputs += [("epsilon", f32(eps))]
    want = torch_layer_norm(x, axes, gamma, beta, 1e-5 if eps is None else eps)
    check("layer_norm", inputs, want)


def test_layer_norm_fp16():
    x = normal(36, (3, 16)) * 10
    x16 = x.astype(np.float16).astype(np.float32)
    g = np.asarray(rng(37).standard_normal(16), np.float32)
    g16 = g.astype(np.float16).astype(np.float32)
    outs, _ = run_op("layer_norm", [("x", In(x, dtype="fp16")), ("axes", [-1]),
                                    ("gamma", Const(g, dtype="fp16"))], precision="as_declared")
    assert_close(outs[0], F.layer_norm(d(x16), [16], d(g16)).numpy(), TOL16)


# ---- l2_norm ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 2, 3, 4), (2, 1, 2, 3, 2)])
@pytest.mark.parametrize("eps", [None, 0.5])
def test_l2_norm(shape, eps):
    x = normal(seed_of(shape, "l2"), shape)
    e = 1e-6 if eps is None else eps
    xt = d(x)
    want = xt / torch.sqrt((xt * xt).sum(dim=(-3, -2, -1), keepdim=True) + e)
    inputs = [("x", x)] + ([] if eps is None else [("epsilon", f32(eps))])
    check("l2_norm", inputs, want.numpy())


def test_l2_norm_zero_and_rank():
    """All zeros: 0 / sqrt(0 + eps) = 0. Rank below 3 is refused."""
    check("l2_norm", [("x", np.zeros((1, 2, 2), np.float32))], np.zeros((1, 2, 2), np.float32))
    with pytest.raises(RuntimeError, match="rank 2"):
        run_op("l2_norm", [("x", normal(1, (2, 3)))])


# ---- local_response_norm -------------------------------------------------------------------


def onnx_lrn(x, size, alpha, beta, bias):
    """The ONNX LRN operator, transcribed from its specification: the sum
    of squares runs over channels max(0, c - floor((size - 1) / 2)) ..
    min(C - 1, c + ceil((size - 1) / 2)); channels are axis 1."""
    c_n = x.shape[1]
    sq = x.astype(np.float64) ** 2
    y = np.empty(x.shape, np.float64)
    for c in range(c_n):
        lo = max(0, c - (size - 1) // 2)
        hi = min(c_n - 1, c + int(np.ceil((size - 1) / 2)))
        s = sq[:, lo:hi + 1].sum(axis=1)
        y[:, c] = x[:, c] / (bias + alpha / size * s) ** beta
    return y


LRN_PARAMS = [(0.5, 0.75, 2.0), (1.0, 0.5, 1.0)]


@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("alpha,beta,k", LRN_PARAMS)
def test_lrn_odd_rank4(size, alpha, beta, k):
    x = normal(seed_of(size, alpha), (2, 6, 3, 3))
    want = F.local_response_norm(t(x), size, alpha, beta, k).numpy()
    # for odd sizes the ONNX window is PyTorch's: both references agree
    assert_close(onnx_lrn(x, size, alpha, beta, k), want)
    params = [("size", size), ("alpha", f32(alpha)), ("beta", f32(beta)), ("k", f32(k))]
    check("local_response_norm", [("x", x)] + params, want)


@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_rank4(size):
    """Even sizes: the window reaches one channel further after c (ONNX,
    Caffe); documented as milk's choice."""
    x = normal(seed_of(size, "even"), (2, 5, 2, 3))
    want = onnx_lrn(x, size, 0.5, 0.75, 2.0)
    params = [("size", size), ("alpha", 0.5), ("beta", 0.75), ("k", f32(2.0))]
    check("local_response_norm", [("x", x)] + params, want)


def test_lrn_defaults_rank3_rank5():
    """Defaults alpha 1e-4, beta 0.75, k 1 (large x, so that they matter);
    the channel axis is rank - 3 (leading dims are batch)."""
    x = normal(41, (2, 4, 3, 3), 40)
    check("local_response_norm", [("x", x), ("size", 3)],
          F.local_response_norm(t(x), 3).numpy())
    x3 = normal(42, (5, 2, 3))
    want = F.local_response_norm(t(x3)[None], 3, 0.5, 0.75, 2.0)[0].numpy()
    params = [("size", 3), ("alpha", 0.5), ("beta", 0.75), ("k", f32(2.0))]
    check("local_response_norm", [("x", x3)] + params, want)
    x5 = normal(43, (2, 3, 4, 2, 2))
    want = F.local_response_norm(t(x5).reshape(6, 4, 2, 2), 3, 0.5, 0.75, 2.0)
    check("local_response_norm", [("x", x5)] + params, want.reshape(x5.shape).numpy())


def test_lrn_coremltools_vectors():
    """The expected values of coremltools' own test
    (mil/ops/tests/iOS14/test_normalization.py, TestNormalizationLocalResponseNorm
    smoke test), run by Apple on Core ML for a [1, 3, 2] input: every
    element is normalized by itself alone (channel axis 0, of size 1)."""
    x = np.float32([[[1.0, -7.0], [5.0, -6.0], [-3.0, -5.0]]])
    check("local_response_norm", [("x", x), ("size", 2)],
          np.float32([[[0.99996257, -6.98716545], [4.99531746, -5.99191284],
                       [-2.99898791, -4.99531746]]]))
    check("local_response_norm", [("x", x), ("size", 3), ("alpha", 0.0001), ("beta", 0.75),
                                  ("k", f32(1.0))],
          np.float32([[[0.99997497, -6.99143696], [4.99687672, -5.99460602],
                       [-2.99932504, -4.99687672]]]))


def test_lrn_errors():
    x = normal(44, (1, 3, 2, 2))
    with pytest.raises(RuntimeError, match="below 1"):
        run_op("local_response_norm", [("x", x), ("size", 0)])
    with pytest.raises(RuntimeError, match="required input is missing"):
        run_op("local_response_norm", [("x", x)])
    with pytest.raises(RuntimeError, match="allowed from iOS17 on"):
        run_op("local_response_norm", [("x", x), ("size", 3), ("alpha", Value(0.5, dtype="fp16"))],
               target="ios16")


def test_every_op_under_asan():
    """Every op of this file once through the ASan/UBSan build, in one
    helper process: rank-5 axes, keep_dims, int32 wrapping, zero-size
    slices, even LRN windows."""
    x5 = normal(45, (2, 3, 2, 2, 3))
    cases = []
    for op, fn in REDUCE_TORCH.items():
        x = reduce_input(op, (2, 3, 2, 2, 3), 46)
        cases.append((op, [("x", x), ("axes", [-4, 2]), ("keep_dims", True)],
                      fn(t(x), (1, 2), True).numpy()))
    big = np.int32([[2**30, 2**30, 3], [-(2**31), -1, 65536]])
    for op in ("reduce_sum", "reduce_prod", "reduce_sum_square", "reduce_mean"):
        with np.errstate(all="ignore"):
            want = INT_RED[op](big, 1, False).astype(np.int32)
            cases.append((op, [("x", big), ("axes", [1])], want))
    cases.append(("reduce_max", [("x", np.zeros((2, 0), np.float32)), ("axes", [0])],
                  np.zeros((0,), np.float32)))
    cases.append(("reduce_prod", [("x", np.zeros((0, 2), np.float32)), ("axes", [0])],
                  np.ones((2,), np.float32)))
    for op, fn in (("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)):
        cases.append((op, [("x", x5), ("axis", -3), ("keep_dims", True)],
                      np.expand_dims(fn(x5, -3), -3).astype(np.int32)))
    mean, var, gamma, beta = channel_params(47, 3)
    cases.append(("batch_norm", [("x", x5), ("mean", Const(mean)), ("variance", Const(var)),
                                 ("gamma", Const(gamma)), ("beta", Const(beta))],
                  F.batch_norm(d(x5), d(mean), d(var), d(gamma), d(beta), False, 0.0,
                               1e-5).numpy()))
    x4 = normal(48, (2, 3, 2, 2))
    cases.append(("instance_norm", [("x", x4), ("gamma", Const(gamma))],
                  F.instance_norm(d(x4), weight=d(gamma), eps=1e-5).numpy()))
    cases.append(("layer_norm", [("x", x5), ("axes", [0, 2, -1])],
                  torch_layer_norm(x5, [0, 2, -1], None, None, 1e-5)))
    sq = (d(x5) ** 2).sum((-3, -2, -1), keepdim=True)
    cases.append(("l2_norm", [("x", x5)], (d(x5) / torch.sqrt(sq + 1e-6)).numpy()))
    cases.append(("local_response_norm", [("x", x4), ("size", 2), ("alpha", 0.5)],
                  onnx_lrn(x4, 2, 0.5, 0.75, 1.0)))
    check_batch(cases, asan=True)
