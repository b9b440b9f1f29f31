"""Reference kernels of the element-wise ops (unary, binary, comparisons,
logic, select, activations, cast) against PyTorch, or NumPy where PyTorch
lacks the op or MIL defines the op by NumPy's operator (floor_div, mod,
cast). Each case runs one op through milk's interpreter (tests/milkop.py).

fp32 results must agree within 1e-5 relative (max |err| / max |expected|;
edge-value cases element by element), integer and bool results exactly,
fp16 as-declared results within 1e-2."""
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kernelcheck import TOL16, assert_close, check, check_batch, f32, normal, rng, seed_of, t
from milkop import Const, In, Value, run_op

INT32_MIN = np.iinfo(np.int32).min


# ---- unary ------------------------------------------------------------------

UNARY_TORCH = {
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "silu": F.silu, "exp": torch.exp, "erf": torch.erf, "floor": torch.floor,
    "ceil": torch.ceil, "round": torch.round, "sign": torch.sign,
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "atan": torch.atan,
    "sinh": torch.sinh, "cosh": torch.cosh, "abs": torch.abs,
    "square": torch.square, "exp2": torch.exp2, "sqrt": torch.sqrt,
    "asin": torch.asin, "acos": torch.acos, "atanh": torch.atanh,
}
# inputs inside each op's domain (the others see normal(0, 3) values)
DOMAIN = {"sqrt": (0, 20), "asin": (-1, 1), "acos": (-1, 1), "atanh": (-0.99, 0.99),
          "tan": (-1.5, 1.5)}
EDGES = np.array([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1.0, -1.0, 1e-30,
                  30.0, -30.0, 1e4, -1e4, np.nan, np.inf, -np.inf],
                 dtype=np.float32)


def unary_input(op, shape, seed):
    if op in DOMAIN:
        lo, hi = DOMAIN[op]
        return rng(seed).uniform(lo, hi, shape).astype(np.float32)
    return normal(seed, shape)


@pytest.mark.parametrize("op", sorted(UNARY_TORCH))
@pytest.mark.parametrize("shape", [(), (7,), (2, 3, 4), (2, 1, 3, 2, 2)])
def test_unary_fp32(op, shape):
    x = unary_input(op, shape, seed_of(op, shape))
    check(op, [("x", x)], UNARY_TORCH[op](t(x)).numpy(), dtype="fp32")


@pytest.mark.parametrize("op", sorted(UNARY_TORCH))
def test_unary_edges(op):
    """Zeros, halves (round goes to even), large magnitudes, out-of-domain
    values (NaN), infinities and NaN, compared element by element."""
    with np.errstate(all="ignore"):
        want = UNARY_TORCH[op](t(EDGES)).numpy()
        if op == "sign":  # MIL's sign is np.sign: NaN stays NaN (torch gives 0)
            want = np.sign(EDGES)
    check(op, [("x", EDGES)], want, elementwise=True)


@pytest.mark.parametrize("op", ["sigmoid", "tanh", "exp", "sin", "sqrt", "gelu"])
def test_unary_fp16(op):
    """fp16 vars in as-declared mode: fp32 math, output rounded to fp16."""
    x = np.abs(normal(3, (4, 5))) if op == "sqrt" else normal(3, (4, 5))
    x16 = x.astype(np.float16).astype(np.float32)
    fn = F.gelu if op == "gelu" else UNARY_TORCH[op]
    outs, types = run_op(op, [("x", In(x, dtype="fp16"))], precision="as_declared")
    assert types[0]["dtype"] == "fp16"
    want = fn(t(x16)).numpy()
    assert_close(outs[0], want, TOL16)
    # the output is representable in fp16
    assert np.array_equal(outs[0], outs[0].astype(np.float16).astype(np.float32))


INT_CASES = np.array([0, 1, -1, 7, -7, 46341, -46341, 2**31 - 1, INT32_MIN], np.int32)


@pytest.mark.parametrize("op", ["abs", "sign", "square"])
def test_unary_int32(op):
    """int32 arithmetic wraps as NumPy's int32 does (abs(INT32_MIN),
    46341^2 > 2^31)."""
    fn = {"abs": np.abs, "sign": np.sign, "square": np.square}[op]
    with np.errstate(all="ignore"):
        want = fn(INT_CASES)
    check(op, [("x", INT_CASES)], want, dtype="int32")


def test_exp2_int32():
    """int32 exp2 is 2^x as a float converted as NumPy's astype(int32):
    fractions truncate to 0, 2^31 is out of range (INT32_MIN on x86)."""
    x = np.arange(-3, 33, dtype=np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = np.exp2(x.astype(np.float64)).astype(np.int32)
    assert want[-1] == INT32_MIN  # what NumPy gives here, and milk's rule
    check("exp2", [("x", x)], want, dtype="int32")


@pytest.mark.parametrize("op,fn,dflt", [
    ("rsqrt", torch.rsqrt, 1e-12), ("log", torch.log, 1e-45),
    ("inverse", torch.reciprocal, 1e-4)])
def test_unary_epsilon(op, fn, dflt):
    x = np.abs(normal(5, (3, 4))) + np.float32(0.1)
    for eps in (1e-3, 0.5):
        check(op, [("x", x), ("epsilon", eps)], fn(t(x) + eps).numpy())
    # the default epsilon, added in fp32 as coremltools' value inference
    # does (fp32(1e-45) is the smallest subnormal, so log(0) is finite)
    z = np.array([0.0, 1.0, 2.5], np.float32)
    want = fn(t(z) + torch.tensor(dflt, dtype=torch.float32)).numpy()
    check(op, [("x", z)], want, elementwise=True)


def test_unary_epsilon_fp16_default():
    """For fp16 x the default epsilon is a constant of x's dtype, as
    coremltools materializes it: fp16(1e-45) and fp16(1e-12) are 0, so
    log(0) = -inf and rsqrt(0) = inf; fp16(1e-4) is 1.0001659e-4."""
    z = np.array([0.0, 4.0], np.float32)
    kw = dict(precision="as_declared")
    check("log", [("x", In(z, dtype="fp16"))], [-np.inf, np.log(4.0)], TOL16, **kw)
    check("rsqrt", [("x", In(z, dtype="fp16"))], [np.inf, 0.5], TOL16, **kw)
    eps16 = float(np.float16(1e-4))
    check("inverse", [("x", In(z, dtype="fp16"))],
          np.float32([1 / eps16, 1 / (4 + eps16)]).astype(np.float16), 1e-3, **kw)
    # from iOS17 epsilon may be fp32 with fp16 x
    check("rsqrt", [("x", In(z, dtype="fp16")), ("epsilon", Value(0.25, dtype="fp32"))],
          [2.0, 1 / np.sqrt(4.25)], TOL16, target="ios17", **kw)
    with pytest.raises(RuntimeError, match="differs from x's fp16"):
        run_op("rsqrt", [("x", In(z, dtype="fp16")),
                         ("epsilon", Value(0.25, dtype="fp32"))], target="ios16")


def test_threshold():
    x = np.array([-3, -0.5, 0.25, 0.5, 2, np.nan, -np.inf], np.float32)
    check("threshold", [("x", x), ("alpha", 0.25)],
          torch.maximum(t(x), torch.tensor(0.25)).numpy())
    xi = np.array([-5, 0, 3, 7, INT32_MIN], np.int32)
    check("threshold", [("x", xi), ("alpha", 3)], np.maximum(xi, 3), dtype="int32")
    with pytest.raises(RuntimeError, match="alpha"):
        run_op("threshold", [("x", xi), ("alpha", 0.5)])


def test_unary_dtype_errors():
    with pytest.raises(RuntimeError, match="dtype int32 is not allowed"):
        run_op("floor", [("x", np.array([1, 2], np.int32))])
    with pytest.raises(RuntimeError, match="dtype fp32 is not allowed"):
        run_op("logical_not", [("x", np.ones(3, np.float32))])


def test_logical_not():
    x = np.array([[True, False], [False, True]])
    check("logical_not", [("x", x)], np.logical_not(x), dtype="bool")


# ---- binary arithmetic --------------------------------------------------------

BCAST = [((3, 4), (3, 4)), ((), (2, 3)), ((2, 3), ()), ((3, 4), (4,)),
         ((2, 1, 4), (3, 1)), ((2, 1, 3, 1, 2), (4, 1, 5, 1))]

BINARY_TORCH = {"add": torch.add, "sub": torch.sub, "mul": torch.mul,
                "real_div": torch.div, "pow": torch.pow,
                "maximum": torch.maximum, "minimum": torch.minimum}


@pytest.mark.parametrize("op", sorted(BINARY_TORCH))
@pytest.mark.parametrize("sa,sb", BCAST)
def test_binary_fp32(op, sa, sb):
    seed = seed_of(op, sa, sb)
    x, y = normal(seed, sa), normal(seed + 1, sb)
    if op == "pow":  # positive bases, moderate exponents
        x, y = np.abs(x) + np.float32(0.1), y / np.float32(3)
    if op == "real_div":
        y = np.where(np.abs(y) < 0.1, np.float32(0.5), y).astype(np.float32)
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    check(op, [("x", x), ("y", y)], BINARY_TORCH[op](t(x), t(y)).numpy(), dtype="fp32")


def test_binary_const_operand():
    x = normal(9, (2, 3))
    check("add", [("x", x), ("y", Const(np.float32([1, 2, 3])))], x + np.float32([1, 2, 3]))
    check("mul", [("x", Const(x)), ("y", np.float32([2, -1, 0.5]))], x * np.float32([2, -1, 0.5]))


def test_binary_float_edges():
    """IEEE division by zero, NaN through maximum/minimum, pow corners."""
    x = np.float32([1, -1, 0, np.nan, 2, -8, 0, -2, np.inf])
    y = np.float32([0, 0, 0, 1, np.nan, 1 / 3, -1, 3, 0])
    for op, fn in BINARY_TORCH.items():
        with np.errstate(all="ignore"):
            want = fn(t(x), t(y)).numpy()
        check(op, [("x", x), ("y", y)], want, elementwise=True)


@pytest.mark.parametrize("op,fn", [("floor_div", np.floor_divide), ("mod", np.remainder)])
@pytest.mark.parametrize("sa,sb", BCAST)
def test_floor_div_mod_fp32(op, fn, sa, sb):
    """MIL defines them by Python's // and % on NumPy arrays."""
    seed = seed_of(op, sa, sb)
    x, y = normal(seed, sa, 10), normal(seed + 1, sb)
    y = np.where(np.abs(y) < 0.1, np.float32(0.7), y).astype(np.float32)
    check(op, [("x", x), ("y", y)], fn(x, y))


def test_floor_div_mod_edges():
    x = np.float32([7, -7, 7, -7, 0, -0.0, 5, 0, -5, 1e-3, 6])
    y = np.float32([2, 2, -2, -2, 3, 3, 0, 0, np.inf, -1, 0.1])
    with np.errstate(all="ignore"):
        for op, fn in (("floor_div", np.floor_divide), ("mod", np.remainder)):
            check(op, [("x", x), ("y", y)], fn(x, y), elementwise=True)


BIG = np.int32(2**31 - 1)


def int_pairs():
    r = rng(4)
    x = r.integers(-50, 50, (4, 6)).astype(np.int32)
    y = r.integers(-9, 9, (6,)).astype(np.int32)
    return x, y


@pytest.mark.parametrize("op,fn", [
    ("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
    ("maximum", np.maximum), ("minimum", np.minimum),
    ("floor_div", np.floor_divide), ("mod", np.remainder)])
def test_binary_int32(op, fn):
    """Exact int32 results, wrapping as NumPy's int32 arithmetic; // and %
    by zero are 0 as in NumPy."""
    x, y = int_pairs()
    with np.errstate(all="ignore"):
        check(op, [("x", x), ("y", y)], fn(x, y), dtype="int32")
        xe = np.int32([BIG, INT32_MIN, INT32_MIN, 65536, -7, 7, 9])
        ye = np.int32([1, -1, 1, 65536, 0, -2, 3])
        check(op, [("x", xe), ("y", ye)], fn(xe, ye), dtype="int32")


def test_real_div_pow_int32():
    """int32 real_div truncates toward zero (NumPy's true division
    converted back), by zero gives 0 (milk's choice: NumPy's inf would
    convert to INT32_MIN); pow wraps as NumPy's int32 power; a negative
    exponent gives the truncated true value (NumPy refuses it)."""
    x = np.int32([7, -7, 7, -7, 1, 5])
    y = np.int32([2, 2, -2, -2, 3, 0])
    want = np.where(y == 0, 0, np.trunc(x / np.where(y == 0, 1, y))).astype(np.int32)
    check("real_div", [("x", x), ("y", y)], want, dtype="int32")
    xp = np.int32([3, 3, -2, 2, 0, 7])
    yp = np.int32([4, 25, 31, 40, 0, 1])
    check("pow", [("x", xp), ("y", yp)], np.power(xp, yp), dtype="int32")
    xn = np.int32([1, -1, -1, 2, 0, -5])
    yn = np.int32([-3, -3, -2, -1, -1, -2])
    check("pow", [("x", xn), ("y", yn)], np.int32([1, -1, 1, 0, 0, 0]))


def test_binary_fp16():
    x, y = normal(11, (3, 4)), normal(12, (4,))
    x16, y16 = (a.astype(np.float16).astype(np.float32) for a in (x, y))
    outs, types = run_op("mul", [("x", In(x, dtype="fp16")), ("y", In(y, dtype="fp16"))],
                         precision="as_declared")
    assert types[0]["dtype"] == "fp16"
    assert_close(outs[0], x16 * y16, TOL16)


def test_binary_errors():
    with pytest.raises(RuntimeError, match="differs from x's"):
        run_op("add", [("x", np.ones(2, np.float32)), ("y", np.ones(2, np.int32))])
    with pytest.raises(RuntimeError, match="do not broadcast"):
        run_op("mod", [("x", np.ones((2, 3), np.float32)), ("y", np.ones(2, np.float32))])


# ---- comparisons, logic, select ---------------------------------------------------

COMPARE = {"equal": torch.eq, "not_equal": torch.ne, "less": torch.lt,
           "less_equal": torch.le, "greater": torch.gt, "greater_equal": torch.ge}


@pytest.mark.parametrize("op", sorted(COMPARE))
@pytest.mark.parametrize("sa,sb", [((3, 4), (4,)), ((), (2, 3)), ((2, 1, 3, 1, 2), (4, 1, 5, 1))])
def test_compare_fp32(op, sa, sb):
    r = rng(seed_of(op, sa, sb))
    # small integers as floats, so that equal values occur
    x = np.asarray(r.integers(-2, 3, sa), dtype=np.float32)
    y = np.asarray(r.integers(-2, 3, sb), dtype=np.float32)
    check(op, [("x", x), ("y", y)], COMPARE[op](t(x), t(y)).numpy(), dtype="bool")


@pytest.mark.parametrize("op", sorted(COMPARE))
def test_compare_nan_and_int32(op):
    """A NaN operand makes every comparison false except not_equal."""
    x = np.float32([np.nan, 1, np.nan, np.inf, -0.0])
    y = np.float32([1, np.nan, np.nan, np.inf, 0.0])
    check(op, [("x", x), ("y", y)], COMPARE[op](t(x), t(y)).numpy())
    xi, yi = np.int32([[INT32_MIN, 0, 5]]), np.int32([[INT32_MIN], [5]])
    check(op, [("x", xi), ("y", yi)], COMPARE[op](t(xi), t(yi)).numpy(), dtype="bool")


@pytest.mark.parametrize("op,fn", [("logical_and", np.logical_and),
                                   ("logical_or", np.logical_or),
                                   ("logical_xor", np.logical_xor)])
def test_logical(op, fn):
    r = rng(7)
    for sa, sb in [((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((), (5,))]:
        x, y = np.asarray(r.random(sa) < 0.5), np.asarray(r.random(sb) < 0.5)
        check(op, [("x", np.asarray(x)), ("y", np.asarray(y))], fn(x, y), dtype="bool")
    with pytest.raises(RuntimeError, match="not allowed"):
        run_op(op, [("x", np.ones(2, np.int32)), ("y", np.ones(2, np.int32))])


@pytest.mark.parametrize("dt", [np.float32, np.int32, bool])
def test_select(dt):
    """np.where: all three shapes broadcast, cond's included."""
    r = rng(8)
    for sc, sa, sb in [((3, 4), (3, 4), (3, 4)), ((2, 1, 3), (4, 1), ()),
                       ((2, 3, 4), (4,), (3, 1)), ((5,), (), ())]:
        c = np.asarray(r.random(sc) < 0.5)
        a = np.asarray(r.integers(-100, 100, sa)).astype(dt)
        b = np.asarray(np.asarray(r.integers(-100, 100, sb)).astype(dt))
        check("select", [("cond", c), ("a", a), ("b", b)], np.where(c, a, b))


def test_select_errors():
    with pytest.raises(RuntimeError, match="cond"):
        run_op("select", [("cond", np.ones(2, np.float32)), ("a", np.ones(2, np.float32)),
                          ("b", np.ones(2, np.float32))])
    with pytest.raises(RuntimeError, match="differs"):
        run_op("select", [("cond", np.ones(2, bool)), ("a", np.ones(2, np.float32)),
                          ("b", np.ones(2, np.int32))])


# ---- activations ----------------------------------------------------------------

ACT_SHAPES = [(), (6,), (2, 3, 4), (2, 3, 2, 2, 2)]


def act_input(shape, seed):
    x = normal(seed, shape)
    if x.size >= 4:  # exact values where branches switch
        x.flat[:4] = [0.0, -0.0, 0.3, 6.0]
    return x


ALPHA_BETA = {
    "leaky_relu": ([("alpha", 0.2)], lambda x: F.leaky_relu(x, 0.2)),
    "elu": ([("alpha", 1.5)], lambda x: F.elu(x, 1.5)),
    # coremltools' value inference: y[y < alpha] = 0 (NaN stays NaN)
    "thresholded_relu": ([("alpha", 0.3)],
                         lambda x: torch.where(x < 0.3, torch.zeros_like(x), x)),
    "linear_activation": ([("alpha", -1.5), ("beta", 0.25)], lambda x: -1.5 * x + 0.25),
    "scaled_tanh": ([("alpha", 2.5), ("beta", 0.5)], lambda x: 2.5 * torch.tanh(0.5 * x)),
    "sigmoid_hard": ([("alpha", 0.2), ("beta", 0.5)],
                     lambda x: torch.clamp(0.2 * x + 0.5, 0, 1)),
    "clamped_relu": ([("alpha", 0.1), ("beta", f32(2.0))],
                     lambda x: torch.where(x >= 0, torch.clamp(x, max=2.0),
                                           torch.clamp(0.1 * x, max=2.0))),
    "clip": ([("alpha", f32(-1.0)), ("beta", f32(2.0))], lambda x: torch.clamp(x, -1.0, 2.0)),
    "relu6": ([], F.relu6),
    "softplus": ([], F.softplus),
    "softsign": ([], F.softsign),
}


@pytest.mark.parametrize("op", sorted(ALPHA_BETA))
@pytest.mark.parametrize("shape", ACT_SHAPES)
def test_activation(op, shape):
    params, fn = ALPHA_BETA[op]
    x = act_input(shape, seed_of(op, shape))
    check(op, [("x", x)] + params, fn(t(x)).numpy(), dtype="fp32")


@pytest.mark.parametrize("op", sorted(ALPHA_BETA))
def test_activation_edges(op):
    params, fn = ALPHA_BETA[op]
    x = np.float32([np.nan, np.inf, -np.inf, 50.0, -50.0, 1e-20, 0.0])
    with np.errstate(all="ignore"):
        want = fn(t(x)).numpy()
    check(op, [("x", x)] + params, want, elementwise=True)


def test_activation_param_dtypes():
    """alpha has x's dtype before iOS17, its own float dtype from iOS17."""
    x = normal(13, (2, 3))
    alpha16 = Value(0.2, dtype="fp16")
    want = F.elu(t(x), float(np.float16(0.2))).numpy()
    check("elu", [("x", x), ("alpha", alpha16)], want, target="ios17")
    with pytest.raises(RuntimeError, match="allowed from iOS17 on"):
        run_op("elu", [("x", x), ("alpha", alpha16)], target="ios16")
    with pytest.raises(RuntimeError, match="expected a scalar"):
        run_op("scaled_tanh", [("x", x), ("alpha", Value([1.0, 2.0], dtype="fp32")),
                               ("beta", f32(1.0))])
    with pytest.raises(RuntimeError, match="must be below beta"):
        run_op("clip", [("x", x), ("alpha", f32(2.0)), ("beta", f32(1.0))], target="ios17")
    # before iOS17 alpha > beta is accepted: min(max(x, 2), 1) = 1
    check("clip", [("x", x), ("alpha", f32(2.0)), ("beta", f32(1.0))], np.ones_like(x),
          target="ios16")


@pytest.mark.parametrize("mode", [None, "EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"])
@pytest.mark.parametrize("shape", [(), (3, 7), (2, 3, 4, 5)])
def test_gelu(mode, shape):
    x = normal(14, shape)
    x.flat[:1] = 0.0
    xt = t(x)
    if mode == "SIGMOID_APPROXIMATION":
        want = xt * torch.sigmoid(1.702 * xt)
    else:
        want = F.gelu(xt, approximate="tanh" if mode == "TANH_APPROXIMATION" else "none")
    params = [("mode", mode)] if mode else []
    check("gelu", [("x", x)] + params, want.numpy())


def test_gelu_bad_mode():
    with pytest.raises(RuntimeError, match="not one of"):
        run_op("gelu", [("x", np.ones(2, np.float32)), ("mode", "tanh")])


@pytest.mark.parametrize("shape,axis", [((5,), None), ((3, 4), 0), ((3, 4), -1),
                                        ((2, 3, 4), 1), ((2, 3, 2, 2, 3), -3),
                                        ((2, 3, 2, 2, 3), 4)])
def test_softmax(shape, axis):
    x = normal(15, shape)
    params = [("axis", axis)] if axis is not None else []
    want = torch.softmax(t(x), dim=-1 if axis is None else axis).numpy()
    check("softmax", [("x", x)] + params, want)


def test_softmax_stable():
    """Subtracting the max: huge logits neither overflow nor lose the small
    ones; -inf gives 0; a NaN makes its slice NaN."""
    x = np.float32([[1000, 999, -1000], [-np.inf, 0, 1], [1, np.nan, 2], [88, 89, 90]])
    want = torch.softmax(t(x), dim=-1).numpy()
    check("softmax", [("x", x)], want, elementwise=True)


def test_softmax_fp16():
    x = normal(16, (4, 6)) * 4
    x16 = x.astype(np.float16).astype(np.float32)
    outs, _ = run_op("softmax", [("x", In(x, dtype="fp16"))], precision="as_declared")
    assert_close(outs[0], torch.softmax(t(x16), -1).numpy(), TOL16)


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 4), (1, 3, 2, 2, 2)])
def test_prelu(shape):
    x = normal(17, shape)
    alpha = np.float32([0.1, -0.3, 2.0]) if len(shape) == 4 else np.float32([0.25] * 3)
    check("prelu", [("x", x), ("alpha", Const(alpha))], F.prelu(t(x), t(alpha)).numpy())


def test_prelu_errors():
    with pytest.raises(RuntimeError, match="one alpha for every channel"):
        run_op("prelu", [("x", normal(1, (2, 3, 5))),
                         ("alpha", Const(np.float32([0.1, 0.2, 0.3])))])
    with pytest.raises(RuntimeError, match=r"expected shape \[3\]"):
        run_op("prelu", [("x", normal(1, (2, 3, 2, 2))), ("alpha", Const(np.float32([0.1, 0.2])))])
    with pytest.raises(RuntimeError, match="rank 2"):
        run_op("prelu", [("x", normal(1, (2, 3))), ("alpha", Const(np.float32([0.1] * 3)))])


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 4), (1, 3, 2, 2, 2)])
def test_softplus_parametric(shape):
    x = normal(18, shape) * 10  # large |beta x|: no overflow
    alpha, beta = np.float32([0.5, 1.0, 2.0]), np.float32([1.0, -3.0, 10.0])
    bshape = (1, 3) + (1,) * (len(shape) - 2)
    a, b = t(alpha).reshape(bshape), t(beta).reshape(bshape)
    want = (a * F.softplus(b * t(x))).numpy()
    check("softplus_parametric", [("x", x), ("alpha", Const(alpha)), ("beta", Const(beta))], want)


# ---- cast -------------------------------------------------------------------------

def test_cast_float_to_int():
    """In range: truncation toward zero, as NumPy's astype."""
    x = np.float32([0, 0.9, -0.9, 2.5, -2.5, 1e6 + 0.5, -2147483520.0, 2147483520.0])
    check("cast", [("x", x), ("dtype", "int32")], x.astype(np.int32), dtype="int32")


def test_cast_float_to_int_out_of_range():
    """NaN, +-inf and values beyond int32 give INT32_MIN (NumPy's astype on
    x86, milk's documented rule on every machine)."""
    x = np.float32([np.nan, np.inf, -np.inf, 2**31, -3e9, 1e20])
    check("cast", [("x", x), ("dtype", "int32")], np.full(6, INT32_MIN, np.int32))


@pytest.mark.parametrize("to,npt", [("int8", np.int8), ("uint8", np.uint8),
                                    ("int16", np.int16), ("uint16", np.uint16)])
def test_cast_small_ints(to, npt):
    """iOS17's small integer dtypes: truncate to int32, keep the low bits
    (NumPy's astype)."""
    x = np.float32([0, 1.9, -1.9, 127, -128, 255, 300.7, -1, 70000, -40000])
    want = x.astype(npt).astype(np.int32)
    check("cast", [("x", x), ("dtype", to)], want, dtype=to, target="ios17")
    xi = np.int32([0, 255, 256, -1, 65535, 65536, -32769, INT32_MIN])
    check("cast", [("x", xi), ("dtype", to)], xi.astype(npt).astype(np.int32), target="ios17")
    # out of int32's range first becomes INT32_MIN, whose low bits are 0
    check("cast", [("x", np.float32([1e10, np.nan])), ("dtype", to)], np.int32([0, 0]),
          target="ios17")
    with pytest.raises(RuntimeError, match="from iOS17"):
        run_op("cast", [("x", x), ("dtype", to)], target="ios16")


def test_cast_bool_and_float():
    x = np.float32([0, -0.0, 0.1, -3, np.nan, np.inf])
    check("cast", [("x", x), ("dtype", "bool")], x.astype(bool), dtype="bool")
    b = np.array([True, False, True])
    check("cast", [("x", b), ("dtype", "fp32")], b.astype(np.float32), dtype="fp32")
    check("cast", [("x", b), ("dtype", "int32")], b.astype(np.int32), dtype="int32")
    xi = np.int32([0, 3, -2, 16777217, INT32_MIN])
    check("cast", [("x", xi), ("dtype", "fp32")], xi.astype(np.float32), dtype="fp32")
    check("cast", [("x", xi), ("dtype", "bool")], xi.astype(bool), dtype="bool")
    u8 = np.uint8([0, 200, 255])
    check("cast", [("x", u8), ("dtype", "fp32")], u8.astype(np.float32), target="ios17")


def test_cast_fp16():
    """fp32 -> fp16 rounds to nearest even (as-declared mode); 70000
    overflows to inf; int32 -> fp16 likewise."""
    x = np.float32([1 / 3, 65504, 70000, -2.5e-8, 1e-3, 2049])
    outs, types = run_op("cast", [("x", x), ("dtype", "fp16")], precision="as_declared")
    assert types[0]["dtype"] == "fp16"
    with np.errstate(over="ignore"):
        assert_close(outs[0], x.astype(np.float16).astype(np.float32), 0)
    xi = np.int32([2049, 65519, 65520, -3])
    outs, _ = run_op("cast", [("x", xi), ("dtype", "fp16")], precision="as_declared")
    with np.errstate(over="ignore"):
        assert_close(outs[0], xi.astype(np.float16).astype(np.float32), 0)
    h = np.float32([0.1, -7.25])
    outs, types = run_op("cast", [("x", In(h, dtype="fp16")), ("dtype", "fp32")],
                         precision="as_declared")
    assert types[0]["dtype"] == "fp32"
    assert_close(outs[0], h.astype(np.float16).astype(np.float32), 0)


def test_every_op_under_asan():
    """Every op of this file once through the ASan/UBSan build, in one
    helper process: bounds, leaks and undefined behaviour on the edge paths
    (int32 wrapping, out-of-range casts, NaN, broadcasting up to rank 5)."""
    x5, y5 = normal(51, (2, 1, 3, 1, 2)), normal(52, (4, 1, 5, 1))
    ok = EDGES[np.isfinite(EDGES) & (np.abs(EDGES) < 100)]
    cases = []
    with np.errstate(all="ignore"):
        for op, fn in UNARY_TORCH.items():
            want = np.sign(EDGES) if op == "sign" else fn(t(EDGES)).numpy()
            cases.append((op, [("x", EDGES)], want))
        for op in ("abs", "sign", "square"):
            fn = {"abs": np.abs, "sign": np.sign, "square": np.square}[op]
            cases.append((op, [("x", INT_CASES)], fn(INT_CASES)))
        for op, fn in [("rsqrt", torch.rsqrt), ("log", torch.log), ("inverse", torch.reciprocal)]:
            a = np.abs(ok)
            cases.append((op, [("x", a), ("epsilon", 0.5)], fn(t(a) + 0.5).numpy()))
        cases.append(("threshold", [("x", EDGES), ("alpha", 0.25)],
                      torch.maximum(t(EDGES), torch.tensor(0.25)).numpy()))
        for op, fn in BINARY_TORCH.items():
            a = np.abs(x5) + np.float32(0.1) if op == "pow" else x5
            cases.append((op, [("x", a), ("y", y5)], fn(t(a), t(y5)).numpy()))
        xi = np.int32([2**31 - 1, INT32_MIN, INT32_MIN, 65536, -7, 7])
        yi = np.int32([1, -1, 0, 65536, 0, -2])
        for op, fn in [("add", np.add), ("mul", np.multiply), ("floor_div", np.floor_divide),
                       ("mod", np.remainder)]:
            cases.append((op, [("x", xi), ("y", yi)], fn(xi, yi)))
        cases.append(("pow", [("x", np.int32([3, -3, 2])), ("y", np.int32([40, -2, 31]))],
                      np.int32([np.power(np.int32([3]), 40)[0], 0, INT32_MIN])))
        for op, fn in [("floor_div", np.floor_divide), ("mod", np.remainder)]:
            cases.append((op, [("x", x5), ("y", y5)], fn(x5, y5)))
        for op, fn in COMPARE.items():
            cases.append((op, [("x", x5), ("y", y5)], fn(t(x5), t(y5)).numpy()))
        b5, c5 = x5 > 0, y5 > 0
        for op, fn in [("logical_and", np.logical_and), ("logical_or", np.logical_or),
                       ("logical_xor", np.logical_xor)]:
            cases.append((op, [("x", b5), ("y", c5)], fn(b5, c5)))
        cases.append(("logical_not", [("x", b5)], ~b5))
        cases.append(("select", [("cond", b5), ("a", y5), ("b", np.asarray(-1, np.float32))],
                      np.where(b5, y5, np.float32(-1))))
        for op, (params, fn) in ALPHA_BETA.items():
            cases.append((op, [("x", x5)] + params, fn(t(x5)).numpy()))
        cases.append(("gelu", [("x", x5), ("mode", "TANH_APPROXIMATION")],
                      F.gelu(t(x5), approximate="tanh").numpy()))
        cases.append(("softmax", [("x", x5), ("axis", 2)], torch.softmax(t(x5), 2).numpy()))
        al = np.float32([0.25] * 3)
        x3 = normal(53, (2, 3, 5))
        cases.append(("prelu", [("x", x3), ("alpha", Const(al))], F.prelu(t(x3), t(al)).numpy()))
        cases.append(("softplus_parametric", [("x", x3), ("alpha", Const(al)), ("beta", Const(al))],
                      (0.25 * F.softplus(0.25 * t(x3))).numpy()))
        big = np.float32([1e20, np.nan, -2.5, 300.7, -np.inf])
        cases.append(("cast", [("x", big), ("dtype", "int32")],
                      np.int32([INT32_MIN, INT32_MIN, -2, 300, INT32_MIN])))
        cases.append(("cast", [("x", big), ("dtype", "uint8")], np.int32([0, 0, 254, 44, 0]),
                      {"target": "ios17"}))
        cases.append(("cast", [("x", big), ("dtype", "bool")], big != 0))
    check_batch(cases, asan=True)
