"""`milk convert` op by op: the rows of the lowering table (src/onnx/lower.def)
added with ONNX's conformance work, each converted at fp32 from a small
PyTorch module or a hand-built ONNX graph, run with `milk run`, and compared
with a reference computed outside milk: PyTorch at test time, or NumPy
written here from the ONNX spec. Floats must match within 1e-4 relative
(max |err| / max |expected|), integers and bools exactly."""
import subprocess

import numpy as np
import pytest

from milkop import rel_err

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TOL = 1e-4
F, I32, I64, B = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
RNG = np.random.default_rng(20)


# ---- helpers ------------------------------------------------------------------------


def run_cmd(args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def const(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def graph_model(path, nodes, inputs, outputs, inits=(), opset=17):
    """Save an ONNX model; inputs and outputs are (name, dtype, shape)."""
    g = helper.make_graph(nodes, "g", [vi(*i) for i in inputs],
                          [vi(*o) for o in outputs], initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(m, str(path))
    return path


def convert_run(milk, model, feeds, tmp, check=True, target="ios17"):
    """Convert at fp32 and run on feeds {name: array}; the .npz contents."""
    pkg = tmp / "m.mlpackage"
    r = run_cmd([milk, "convert", model, "-o", pkg, "--precision", "fp32",
                 "--target", target])
    if not check:
        return r
    assert r.returncode == 0, r.stderr
    cmd = [milk, "run", pkg, "--output", tmp / "out.npz"]
    for k, (name, a) in enumerate(feeds.items()):
        np.save(tmp / f"in{k}.npy", a)
        cmd += ["--input", f"{name}={tmp / f'in{k}.npy'}"]
    r = run_cmd(cmd)
    assert r.returncode == 0, r.stderr
    with np.load(tmp / "out.npz") as z:
        return {k: z[k] for k in z.files}


def check_float(got, want):
    err = rel_err(got.astype(np.float32), np.asarray(want, np.float32))
    assert err < TOL, f"relative error {err}"


def one_node(milk, tmp, node, feeds, out_dtype, out_shape, want, inits=(),
             opset=17, exact=False):
    """A graph of one node with inputs feeds (all graph inputs) and output
    'y', compared with want."""
    dt = {np.dtype(np.float32): F, np.dtype(np.int32): I32, np.dtype(np.int64): I64}
    ins = [(k, dt[v.dtype], list(v.shape)) for k, v in feeds.items()]
    path = graph_model(tmp / "n.onnx", [node], ins, [("y", out_dtype, out_shape)],
                       inits, opset)
    got = convert_run(milk, path, feeds, tmp)["y"]
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        check_float(got, want)
    return got


def export(module, args, path, opset=17, names=("x",)):
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), opset_version=opset,
                          input_names=list(names), output_names=["y"])
        out = module(*args)
    return out


def check_module(milk, tmp, module, *args, opset=17):
    """Export module, convert, run, compare output y with PyTorch's."""
    want = export(module, args, tmp / "m.onnx", opset,
                  names=[f"x{i}" for i in range(len(args))])
    feeds = {f"x{i}": a.numpy() for i, a in enumerate(args)}
    got = convert_run(milk, tmp / "m.onnx", feeds, tmp)["y"]
    check_float(got, want.numpy())


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


# ---- element-wise math ---------------------------------------------------------------


UNARY = {  # op: (NumPy reference, input range)
    "Floor": (np.floor, (-3, 3)), "Ceil": (np.ceil, (-3, 3)),
    "Round": (np.round, (-3, 3)), "Sign": (np.sign, (-3, 3)),
    "Sin": (np.sin, (-3, 3)), "Cos": (np.cos, (-3, 3)), "Tan": (np.tan, (-1.2, 1.2)),
    "Asin": (np.arcsin, (-0.99, 0.99)), "Acos": (np.arccos, (-0.99, 0.99)),
    "Atan": (np.arctan, (-5, 5)), "Sinh": (np.sinh, (-3, 3)), "Cosh": (np.cosh, (-3, 3)),
    "Atanh": (np.arctanh, (-0.95, 0.95)), "Asinh": (np.arcsinh, (-50, 50)),
    "Acosh": (np.arccosh, (1.01, 50)),
    "Softplus": (lambda x: np.log1p(np.exp(x)), (-20, 20)),
    "Softsign": (lambda x: x / (1 + np.abs(x)), (-5, 5)),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary(milk, tmp_path, op):
    ref, (lo, hi) = UNARY[op]
    x = RNG.uniform(lo, hi, (3, 4, 5)).astype(np.float32)
    if op == "Round":  # halves go to the even neighbour
        x[0, 0, :4] = [0.5, 1.5, 2.5, -0.5]
    one_node(milk, tmp_path, helper.make_node(op, ["x"], ["y"]), {"x": x}, F,
             [3, 4, 5], ref(x.astype(np.float64)))


def test_round_halves_to_even(milk, tmp_path):
    x = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5]], np.float32)
    one_node(milk, tmp_path, helper.make_node("Round", ["x"], ["y"]), {"x": x}, F,
             [1, 7], np.array([[-2, -2, -0, 0, 2, 2, 4]], np.float32), exact=True)


@pytest.mark.parametrize("op,ref", [
    ("Less", np.less), ("LessOrEqual", np.less_equal), ("Greater", np.greater),
    ("GreaterOrEqual", np.greater_equal), ("Equal", np.equal)])
def test_compare(milk, tmp_path, op, ref):
    """Bool results leave the graph through a Cast to int32 (Core ML has
    no bool outputs); y broadcasts against x."""
    x = RNG.integers(-3, 3, (2, 3, 4)).astype(np.int32)
    y = RNG.integers(-3, 3, (3, 1)).astype(np.int32)
    nodes = [helper.make_node(op, ["x", "y"], ["b"]),
             helper.make_node("Cast", ["b"], ["z"], to=I32)]
    path = graph_model(tmp_path / "c.onnx", nodes, [("x", I32, [2, 3, 4]), ("y", I32, [3, 1])],
                       [("z", I32, [2, 3, 4])], opset=16)
    got = convert_run(milk, path, {"x": x, "y": y}, tmp_path)["z"]
    np.testing.assert_array_equal(got, ref(x, y).astype(np.int32))


@pytest.mark.parametrize("op,ref", [
    ("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor),
    ("Equal", np.equal), ("Not", None)])
def test_logic(milk, tmp_path, op, ref):
    """Bools made inside the graph (x > 0, y > 0), combined, cast out."""
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    y = RNG.standard_normal((1, 5)).astype(np.float32)
    zero = const("zero", np.float32(0))
    nodes = [helper.make_node("Greater", ["x", "zero"], ["a"]),
             helper.make_node("Greater", ["y", "zero"], ["b"]),
             helper.make_node(op, ["a"] if op == "Not" else ["a", "b"], ["c"]),
             helper.make_node("Cast", ["c"], ["z"], to=F)]
    path = graph_model(tmp_path / "l.onnx", nodes, [("x", F, [4, 5]), ("y", F, [1, 5])],
                       [("z", F, [4, 5])], [zero])
    got = convert_run(milk, path, {"x": x, "y": y}, tmp_path)["z"]
    want = np.logical_not(x > 0) if op == "Not" else ref(x > 0, y > 0)
    np.testing.assert_array_equal(got, want.astype(np.float32))


def test_isnan_isinf(milk, tmp_path):
    x = np.array([[1.0, np.nan, np.inf, -np.inf, 0.0, -2.0]], np.float32)
    nodes = [helper.make_node("IsNaN", ["x"], ["n"]),
             helper.make_node("IsInf", ["x"], ["i"]),
             helper.make_node("IsInf", ["x"], ["p"], detect_negative=0),
             helper.make_node("IsInf", ["x"], ["q"], detect_positive=0),
             helper.make_node("Concat", ["n", "i", "p", "q"], ["c"], axis=0),
             helper.make_node("Cast", ["c"], ["y"], to=I32)]
    path = graph_model(tmp_path / "i.onnx", nodes, [("x", F, [1, 6])], [("y", I32, [4, 6])])
    got = convert_run(milk, path, {"x": x}, tmp_path)["y"]
    want = np.stack([np.isnan(x[0]), np.isinf(x[0]), np.isposinf(x[0]), np.isneginf(x[0])])
    np.testing.assert_array_equal(got, want.astype(np.int32))


@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_integers(milk, tmp_path, fmod):
    x = RNG.integers(-20, 20, (3, 8)).astype(np.int32)
    y = np.array([3, -3, 5, -5, 7, -7, 4, -4], np.int32)
    want = np.fmod(x, y) if fmod else np.mod(x, y)
    node = helper.make_node("Mod", ["x", "d"], ["y"], fmod=fmod)
    one_node(milk, tmp_path, node, {"x": x}, I32, [3, 8], want,
             inits=[const("d", y)], exact=True)


def test_mod_float_is_c_fmod(milk, tmp_path):
    """fmod=1 with floats: the dividend's sign, exactly C's fmod."""
    x = (RNG.standard_normal((4, 6)) * 10).astype(np.float32)
    d = np.array([1.5, -1.5, 2.25, -2.25, 0.7, -3.1], np.float32)
    node = helper.make_node("Mod", ["x", "d"], ["y"], fmod=1)
    got = one_node(milk, tmp_path, node, {"x": x}, F, [4, 6], np.fmod(x, d),
                   inits=[const("d", d)])
    np.testing.assert_array_equal(got, np.fmod(x, d))


@pytest.mark.parametrize("op,ref", [("Min", np.minimum), ("Max", np.maximum),
                                    ("Sum", np.add), ("Mean", None)])
def test_variadic(milk, tmp_path, op, ref):
    a = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    b = RNG.standard_normal((3, 1)).astype(np.float32)
    c = RNG.standard_normal((4,)).astype(np.float32)
    want = (a + b + c) / 3 if op == "Mean" else ref(ref(a, b), c)
    path = graph_model(tmp_path / "v.onnx", [helper.make_node(op, ["a", "b", "c"], ["y"])],
                       [("a", F, [2, 3, 4]), ("b", F, [3, 1]), ("c", F, [4])],
                       [("y", F, [2, 3, 4])], opset=13)
    check_float(convert_run(milk, path, {"a": a, "b": b, "c": c}, tmp_path)["y"], want)


# ---- activations ------------------------------------------------------------------------


@pytest.mark.parametrize("name,fn", [
    ("elu", torch.nn.ELU(0.7)), ("selu", torch.nn.SELU()), ("celu", torch.nn.CELU(1.3)),
    ("hardsigmoid", torch.nn.Hardsigmoid()), ("hardswish", torch.nn.Hardswish()),
    ("softplus", torch.nn.Softplus()), ("softsign", torch.nn.Softsign()),
    ("hardshrink", torch.nn.Hardshrink(0.3)), ("softshrink", torch.nn.Softshrink(0.4)),
    ("logsoftmax1", torch.nn.LogSoftmax(dim=1)), ("logsoftmax_last", torch.nn.LogSoftmax(-1)),
])
def test_activation_modules(milk, tmp_path, name, fn):
    torch.manual_seed(5)
    x = torch.randn(2, 5, 6) * 3
    check_module(milk, tmp_path, fn, x, opset=17 if name != "celu" else 12)


@pytest.mark.parametrize("bias,lambd", [(0.0, 0.5), (0.3, 1.0)])
def test_shrink(milk, tmp_path, bias, lambd):
    x = np.array([[-2.0, -1.0, -0.5, -0.2, 0.0, 0.5, 0.7, 1.0, 3.0]], np.float32)
    want = np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0))
    node = helper.make_node("Shrink", ["x"], ["y"], bias=bias, lambd=lambd)
    one_node(milk, tmp_path, node, {"x": x}, F, [1, 9], want)


def test_log_softmax_large_values(milk, tmp_path):
    """The stable form: exp of 1000 would overflow."""
    x = torch.tensor([[1000.0, 999.0, 0.0], [-1000.0, -1001.0, -1002.0]])
    check_module(milk, tmp_path, torch.nn.LogSoftmax(dim=1), x)


def test_log_softmax_and_hardmax_before_opset_13(milk, tmp_path):
    """Before opset 13 the axis flattens every dim from it on."""
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    flat = x.reshape(2, 12).astype(np.float64)
    ls = flat - flat.max(1, keepdims=True)
    ls = ls - np.log(np.exp(ls).sum(1, keepdims=True))
    one_node(milk, tmp_path, helper.make_node("LogSoftmax", ["x"], ["y"], axis=1),
             {"x": x}, F, [2, 3, 4], ls.reshape(2, 3, 4), opset=11)
    hm = np.zeros_like(flat)
    hm[np.arange(2), flat.argmax(1)] = 1
    one_node(milk, tmp_path, helper.make_node("Hardmax", ["x"], ["y"], axis=1),
             {"x": x}, F, [2, 3, 4], hm.reshape(2, 3, 4), opset=11, exact=True)


def test_hardmax_first_of_ties(milk, tmp_path):
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2], [0, -1, 5, 5]], np.float32)
    want = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]], np.float32)
    one_node(milk, tmp_path, helper.make_node("Hardmax", ["x"], ["y"]), {"x": x}, F,
             [3, 4], want, exact=True)


def test_thresholded_relu_boundary(milk, tmp_path):
    """ONNX keeps x > alpha only (x == alpha gives 0)."""
    x = np.array([[-1.0, 0.5, 1.0, 1.0001, 2.0, 0.999]], np.float32)
    node = helper.make_node("ThresholdedRelu", ["x"], ["y"], alpha=1.0)
    one_node(milk, tmp_path, node, {"x": x}, F, [1, 6], np.where(x > 1.0, x, 0), exact=True)


@pytest.mark.parametrize("shape,slope_shape", [
    ((2, 4, 5, 6), (4, 1, 1)),   # per channel, rank 4: MIL's prelu
    ((3, 4, 7), (4, 1)),         # per channel, rank 3
    ((3, 4), (4,)),              # rank 2
    ((2, 3, 4, 5, 6), (3, 1, 1, 1)),  # rank 5
    ((2, 4, 5, 6), (6,)),        # a [C]-long slope runs along the last dim
])
def test_prelu(milk, tmp_path, shape, slope_shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    s = RNG.uniform(0.05, 0.5, slope_shape).astype(np.float32)
    one_node(milk, tmp_path, helper.make_node("PRelu", ["x", "s"], ["y"]), {"x": x}, F,
             list(shape), np.where(x < 0, x * s, x), inits=[const("s", s)])


def test_prelu_run_time_slope(milk, tmp_path):
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    s = RNG.uniform(0.05, 0.5, (3, 1)).astype(np.float32)
    path = graph_model(tmp_path / "p.onnx", [helper.make_node("PRelu", ["x", "s"], ["y"])],
                       [("x", F, [2, 3, 4]), ("s", F, [3, 1])], [("y", F, [2, 3, 4])])
    got = convert_run(milk, path, {"x": x, "s": s}, tmp_path)["y"]
    check_float(got, np.where(x < 0, x * s, x))


def test_prelu_module(milk, tmp_path):
    torch.manual_seed(3)
    m = torch.nn.PReLU(6)
    with torch.no_grad():
        m.weight.uniform_(0.1, 0.6)
    check_module(milk, tmp_path, m, torch.randn(2, 6, 5, 5))


# ---- normalization ---------------------------------------------------------------------


def test_instance_norm_modules(milk, tmp_path):
    torch.manual_seed(4)
    for i, (m, x) in enumerate([(torch.nn.InstanceNorm1d(3, affine=True), torch.randn(2, 3, 10)),
                                (torch.nn.InstanceNorm2d(4, affine=True), torch.randn(2, 4, 5, 6)),
                                (torch.nn.InstanceNorm3d(2, affine=True), torch.randn(1, 2, 3, 4, 5))]):
        with torch.no_grad():
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-1, 1)
        sub = tmp_path / str(i)
        sub.mkdir()
        check_module(milk, sub, m, x)


def test_instance_norm_run_time_scale(milk, tmp_path):
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    s = RNG.uniform(0.5, 2, 3).astype(np.float32)
    b = RNG.standard_normal(3).astype(np.float32)
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)
    path = graph_model(tmp_path / "i.onnx", [node],
                       [("x", F, [2, 3, 4, 5]), ("s", F, [3]), ("b", F, [3])],
                       [("y", F, [2, 3, 4, 5])])
    m = x.mean((2, 3), keepdims=True)
    v = x.var((2, 3), keepdims=True)
    want = (x - m) / np.sqrt(v + 1e-3) * s[:, None, None] + b[:, None, None]
    check_float(convert_run(milk, path, {"x": x, "s": s, "b": b}, tmp_path)["y"], want)


@pytest.mark.parametrize("shape,size", [((2, 7, 5, 6), 3), ((2, 7, 5, 6), 4),
                                        ((2, 7, 9), 4), ((1, 6, 2, 3, 4), 3)])
def test_lrn(milk, tmp_path, shape, size):
    """NumPy from the spec: channel axis 1, the window [c - floor((size -
    1) / 2), c + ceil((size - 1) / 2)] (PyTorch exports LRN through an If
    and centres even windows the other way)."""
    x = RNG.standard_normal(shape).astype(np.float32)
    xn = x.astype(np.float64)
    sq = np.zeros_like(xn)
    for c in range(shape[1]):
        lo, hi = max(0, c - (size - 1) // 2), min(shape[1] - 1, c + size // 2)
        sq[:, c] = (xn[:, lo:hi + 1] ** 2).sum(1)
    want = xn / (1.5 + 2e-4 / size * sq) ** 0.75
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=2e-4, beta=0.75, bias=1.5)
    one_node(milk, tmp_path, node, {"x": x}, F, list(shape), want)


def test_batch_norm_run_time_statistics(milk, tmp_path):
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    p = {k: RNG.uniform(0.5, 1.5, 3).astype(np.float32) for k in ("s", "b", "m", "v")}
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                            epsilon=1e-3)
    ins = [("x", F, [2, 3, 4, 5])] + [(k, F, [3]) for k in p]
    path = graph_model(tmp_path / "b.onnx", [node], ins, [("y", F, [2, 3, 4, 5])])
    r = lambda a: a[:, None, None]
    want = (x - r(p["m"])) / np.sqrt(r(p["v"]) + 1e-3) * r(p["s"]) + r(p["b"])
    check_float(convert_run(milk, path, {"x": x, **p}, tmp_path)["y"], want)


def test_batch_norm_training_mode(milk, tmp_path):
    """training_mode=1 (opset 14): the batch's own statistics, and the
    running ones updated with momentum."""
    x = RNG.standard_normal((4, 3, 5)).astype(np.float32)
    s, b = RNG.uniform(0.5, 1.5, 3).astype(np.float32), RNG.standard_normal(3).astype(np.float32)
    m, v = RNG.standard_normal(3).astype(np.float32), RNG.uniform(0.5, 2, 3).astype(np.float32)
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"],
                            ["y", "rm", "rv"], training_mode=1, momentum=0.8)
    path = graph_model(tmp_path / "t.onnx", [node], [("x", F, [4, 3, 5])],
                       [("y", F, [4, 3, 5]), ("rm", F, [3]), ("rv", F, [3])],
                       [const("s", s), const("b", b), const("m", m), const("v", v)], opset=15)
    out = convert_run(milk, path, {"x": x}, tmp_path)
    bm, bv = x.mean((0, 2)), x.var((0, 2))
    want = (x - bm[:, None]) / np.sqrt(bv[:, None] + 1e-5) * s[:, None] + b[:, None]
    check_float(out["y"], want)
    check_float(out["rm"], m * 0.8 + bm * 0.2)
    check_float(out["rv"], v * 0.8 + bv * 0.2)


def test_layer_norm_statistics_outputs(milk, tmp_path):
    x = RNG.standard_normal((2, 3, 8)).astype(np.float32)
    g, b = RNG.uniform(0.5, 1.5, 8).astype(np.float32), RNG.standard_normal(8).astype(np.float32)
    node = helper.make_node("LayerNormalization", ["x", "g", "b"], ["y", "mean", "inv"],
                            axis=-1, epsilon=1e-4)
    path = graph_model(tmp_path / "ln.onnx", [node], [("x", F, [2, 3, 8])],
                       [("y", F, [2, 3, 8]), ("mean", F, [2, 3, 1]), ("inv", F, [2, 3, 1])],
                       [const("g", g), const("b", b)])
    out = convert_run(milk, path, {"x": x}, tmp_path)
    m, v = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    check_float(out["mean"], m)
    check_float(out["inv"], 1 / np.sqrt(v + 1e-4))
    check_float(out["y"], (x - m) / np.sqrt(v + 1e-4) * g + b)


def test_mean_variance_normalization(milk, tmp_path):
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    m = x.mean((0, 2, 3), keepdims=True)
    sd = np.sqrt((x ** 2).mean((0, 2, 3), keepdims=True) - m ** 2)
    one_node(milk, tmp_path, helper.make_node("MeanVarianceNormalization", ["x"], ["y"]),
             {"x": x}, F, [2, 3, 4, 5], (x - m) / (sd + 1e-9))


# ---- reductions, indices ---------------------------------------------------------------------


REDUCE = {
    "ReduceMin": lambda x, a: x.min(a, keepdims=True),
    "ReduceProd": lambda x, a: x.prod(a, keepdims=True),
    "ReduceL1": lambda x, a: np.abs(x).sum(a, keepdims=True),
    "ReduceL2": lambda x, a: np.sqrt((x ** 2).sum(a, keepdims=True)),
    "ReduceLogSum": lambda x, a: np.log(x.sum(a, keepdims=True)),
    "ReduceLogSumExp": lambda x, a: np.log(np.exp(x).sum(a, keepdims=True)),
    "ReduceSumSquare": lambda x, a: (x ** 2).sum(a, keepdims=True),
}


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("op", sorted(REDUCE))
def test_reductions(milk, tmp_path, op, opset):
    """Axes as an attribute (opset 13) or an input (opset 18), negative."""
    x = RNG.uniform(0.5, 1.5, (2, 3, 4)).astype(np.float32)
    want = REDUCE[op](x.astype(np.float64), (0, 2))
    if opset == 13:
        node, inits = helper.make_node(op, ["x"], ["y"], axes=[0, -1]), []
    else:
        node, inits = helper.make_node(op, ["x", "axes"], ["y"]), [const("axes", np.array([0, -1]))]
    one_node(milk, tmp_path, node, {"x": x}, F, [1, 3, 1], want, inits, opset)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("keep", [0, 1])
def test_arg_ties(milk, tmp_path, op, last, keep):
    x = RNG.integers(0, 3, (3, 5, 4)).astype(np.float32)  # many ties
    f = np.argmax if op == "ArgMax" else np.argmin
    want = f(x[:, ::-1], axis=1) if last else f(x, axis=1)
    if last:
        want = 4 - want
    if keep:
        want = want[:, None]
    node = helper.make_node(op, ["x"], ["y"], axis=-2, keepdims=keep, select_last_index=last)
    got = one_node(milk, tmp_path, node, {"x": x}, I64, list(want.shape), want, exact=True)
    assert got.dtype == np.int32


@pytest.mark.parametrize("largest", [True, False])
def test_topk(milk, tmp_path, largest):
    torch.manual_seed(7)
    x = torch.randn(3, 10)
    m = Fn(lambda t: torch.topk(t, 4, dim=1, largest=largest))
    m.eval()
    torch.onnx.export(m, (x,), str(tmp_path / "t.onnx"), opset_version=13,
                      input_names=["x"], output_names=["v", "i"])
    out = convert_run(milk, tmp_path / "t.onnx", {"x": x.numpy()}, tmp_path)
    v, i = torch.topk(x, 4, dim=1, largest=largest)
    check_float(out["v"], v.numpy())
    np.testing.assert_array_equal(out["i"], i.numpy())


def test_cumsum(milk, tmp_path):
    torch.manual_seed(8)
    check_module(milk, tmp_path, Fn(lambda t: torch.cumsum(t, dim=1)), torch.randn(2, 6, 3))


@pytest.mark.parametrize("exclusive,reverse", [(1, 0), (0, 1), (1, 1)])
def test_cumsum_exclusive_reverse(milk, tmp_path, exclusive, reverse):
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    y = x[:, ::-1] if reverse else x
    c = np.cumsum(y, 1)
    if exclusive:
        c = np.concatenate([np.zeros((2, 1), np.float32), c[:, :-1]], 1)
    want = c[:, ::-1] if reverse else c
    node = helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)
    one_node(milk, tmp_path, node, {"x": x}, F, [2, 6], want,
             inits=[const("axis", np.int64(-1))])


def test_gather_elements(milk, tmp_path):
    torch.manual_seed(9)
    x = torch.randn(3, 5, 4)
    idx = torch.randint(0, 5, (3, 2, 4))
    check_module(milk, tmp_path, Fn(lambda a, i: torch.gather(a, 1, i)), x, idx)


@pytest.mark.parametrize("target", ["ios16", "ios17"])
def test_gather_run_time_negative_indices(milk, tmp_path, target):
    """iOS17's gather ops refuse negative indices: wrapped with select;
    before, MIL's own gathers count them from the end."""
    x = RNG.standard_normal((6, 3)).astype(np.float32)
    i = np.array([[0, -1], [-6, 5]], np.int64)
    e = np.array([[-1, 0, 2], [5, -6, -3]], np.int64)
    nodes = [helper.make_node("Gather", ["x", "i"], ["y"]),
             helper.make_node("GatherElements", ["x", "e"], ["z"], axis=0)]
    path = graph_model(tmp_path / "g.onnx", nodes,
                       [("x", F, [6, 3]), ("i", I64, [2, 2]), ("e", I64, [2, 3])],
                       [("y", F, [2, 2, 3]), ("z", F, [2, 3])])
    out = convert_run(milk, path, {"x": x, "i": i, "e": e}, tmp_path, target=target)
    np.testing.assert_array_equal(out["y"], x[i])
    np.testing.assert_array_equal(out["z"], np.take_along_axis(x, e % 6, 0))


def test_one_hot(milk, tmp_path):
    idx = np.array([[1, -1, 4], [0, 7, -5]], np.int64)  # 7 is out of range
    node = helper.make_node("OneHot", ["i", "depth", "values"], ["y"], axis=1)
    path = graph_model(tmp_path / "o.onnx", [node], [("i", I64, [2, 3])], [("y", F, [2, 5, 3])],
                       [const("depth", np.int64(5)), const("values", np.array([-2.0, 3.0], np.float32))])
    got = convert_run(milk, path, {"i": idx}, tmp_path)["y"]
    want = np.full((2, 5, 3), -2.0, np.float32)
    for a in range(2):
        for b in range(3):
            k = idx[a, b]
            if -5 <= k < 5:
                want[a, k % 5, b] = 3.0
    np.testing.assert_array_equal(got, want)


def test_compress(milk, tmp_path):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    cond = np.array([True, False, True, True])
    node = helper.make_node("Compress", ["x", "c"], ["y"], axis=1)
    one_node(milk, tmp_path, node, {"x": x}, F, [3, 3], x[:, cond], inits=[const("c", cond)],
             exact=True)
    node = helper.make_node("Compress", ["x", "c"], ["y"])  # flattened
    one_node(milk, tmp_path, node, {"x": x}, F, [3], x.ravel()[:4][cond],
             inits=[const("c", cond)], exact=True)


@pytest.mark.parametrize("upper,k", [(True, 0), (False, 0), (True, -1), (False, 2)])
def test_trilu(milk, tmp_path, upper, k):
    torch.manual_seed(10)
    f = (lambda t: torch.triu(t, k)) if upper else (lambda t: torch.tril(t, k))
    check_module(milk, tmp_path, Fn(f), torch.randn(2, 4, 5), opset=14)


def test_einsum(milk, tmp_path):
    a = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = RNG.standard_normal((2, 5, 4, 6)).astype(np.float32)
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation="nchw,nwhu->nchu")
    path = graph_model(tmp_path / "e.onnx", [node], [("a", F, [2, 3, 4, 5]), ("b", F, [2, 5, 4, 6])],
                       [("y", F, [2, 3, 4, 6])], opset=12)
    got = convert_run(milk, path, {"a": a, "b": b}, tmp_path)["y"]
    check_float(got, np.einsum("nchw,nwhu->nchu", a, b))


# ---- layout, padding --------------------------------------------------------------------------


def test_tile_and_depth_space(milk, tmp_path):
    torch.manual_seed(11)
    x = torch.randn(1, 8, 3, 2)
    check_module(milk, tmp_path, Fn(lambda t: t.repeat(2, 1, 3, 2)), x)
    check_module(milk, tmp_path, torch.nn.PixelShuffle(2), x)  # DepthToSpace CRD


def test_depth_to_space_dcr_and_back(milk, tmp_path):
    x = RNG.standard_normal((1, 8, 2, 3)).astype(np.float32)
    b = 2
    n, c, h, w = x.shape  # DCR, as the ONNX spec writes it
    t = x.reshape(n, b, b, c // 4, h, w).transpose(0, 3, 4, 1, 5, 2)
    want = t.reshape(n, c // 4, h * b, w * b)
    nodes = [helper.make_node("DepthToSpace", ["x"], ["s"], blocksize=2),
             helper.make_node("SpaceToDepth", ["s"], ["y"], blocksize=2)]
    path = graph_model(tmp_path / "d.onnx", nodes, [("x", F, [1, 8, 2, 3])],
                       [("y", F, [1, 8, 2, 3]), ("s", F, [1, 2, 4, 6])])
    out = convert_run(milk, path, {"x": x}, tmp_path)
    np.testing.assert_array_equal(out["s"], want)
    np.testing.assert_array_equal(out["y"], x)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_integers(milk, tmp_path, mode):
    x = RNG.integers(-100, 100, (2, 3, 4)).astype(np.int32)
    pads = np.array([0, 1, 2, 1, 2, 1], np.int64)
    np_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge"}[mode]
    kw = {"constant_values": 7} if mode == "constant" else {}
    want = np.pad(x, [(0, 1), (1, 2), (2, 1)], mode=np_mode, **kw)
    inits = [const("p", pads), const("v", np.int32(7))]
    node = helper.make_node("Pad", ["x", "p", "v"] if mode == "constant" else ["x", "p"],
                            ["y"], mode=mode)
    one_node(milk, tmp_path, node, {"x": x}, I32, list(want.shape), want, inits, exact=True)


# ---- resampling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [
    dict(scale_factor=2, mode="nearest"),
    dict(size=(7, 5), mode="nearest"),
    dict(scale_factor=3, mode="bilinear", align_corners=False),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(5, 9), mode="bilinear", align_corners=False),
    dict(size=(3, 2), mode="bilinear", align_corners=False),
    dict(scale_factor=1.7, mode="bilinear", align_corners=False),  # matmul path
    dict(scale_factor=2, mode="bicubic", align_corners=False),
    dict(size=(7, 10), mode="bicubic", align_corners=True),
])
def test_interpolate(milk, tmp_path, kw):
    torch.manual_seed(12)
    x = torch.randn(1, 2, 4, 6)
    F_ = torch.nn.functional
    check_module(milk, tmp_path, Fn(lambda t: F_.interpolate(t, **kw)), x, opset=13)


def test_interpolate_1d_linear(milk, tmp_path):
    torch.manual_seed(13)
    F_ = torch.nn.functional
    check_module(milk, tmp_path, Fn(lambda t: F_.interpolate(t, scale_factor=2.5, mode="linear")),
                 torch.randn(2, 3, 8), opset=13)


def resize_ref_nearest(x, out, scale, transform, rounding):
    """ONNX's nearest resize along the last two axes (the spec's formulas)."""
    y = x
    for ax in (2, 3):
        n, m = x.shape[ax], out[ax]
        i = np.arange(m, dtype=np.float64)
        c = {"asymmetric": i / scale[ax], "half_pixel": (i + 0.5) / scale[ax] - 0.5,
             "align_corners": i * (n - 1) / (m - 1)}[transform]
        if rounding == "floor":
            k = np.floor(c)
        elif rounding == "ceil":
            k = np.ceil(c)
        elif rounding == "round_prefer_ceil":
            k = np.floor(c + 0.5)
        else:
            k = np.ceil(c - 0.5)
        y = np.take(y, np.clip(k, 0, n - 1).astype(int), axis=ax)
    return y


@pytest.mark.parametrize("transform,rounding,sizes", [
    ("asymmetric", "floor", (1, 2, 7, 9)),
    ("half_pixel", "round_prefer_floor", (1, 2, 6, 9)),
    ("half_pixel", "round_prefer_ceil", (1, 2, 5, 4)),
    ("align_corners", "ceil", (1, 2, 7, 7)),
])
def test_resize_nearest_modes(milk, tmp_path, transform, rounding, sizes):
    x = RNG.standard_normal((1, 2, 3, 4)).astype(np.float32)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                            coordinate_transformation_mode=transform, nearest_mode=rounding)
    scale = np.array(sizes) / np.array(x.shape)
    want = resize_ref_nearest(x, sizes, scale, transform, rounding)
    one_node(milk, tmp_path, node, {"x": x}, F, list(sizes), want,
             inits=[const("sizes", np.array(sizes, np.int64))], opset=13, exact=True)


def test_upsample_opset_9(milk, tmp_path):
    x = RNG.standard_normal((1, 1, 2, 3)).astype(np.float32)
    node = helper.make_node("Upsample", ["x", "s"], ["y"], mode="nearest")
    want = x.repeat(2, axis=2).repeat(3, axis=3)
    one_node(milk, tmp_path, node, {"x": x}, F, [1, 1, 4, 9], want, opset=9,
             inits=[const("s", np.array([1, 1, 2, 3], np.float32))], exact=True)


# ---- what the rows refuse ---------------------------------------------------------------------


@pytest.mark.parametrize("node,inputs,inits,text", [
    (helper.make_node("Mod", ["x", "x"], ["y"]), [("x", F, [2, 3])], [],
     "fmod=0 with float inputs"),
    (helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,jk->ik"),
     [("x", F, [3, 3])], [], "einsum"),
    (helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear", antialias=1),
     [("x", F, [1, 1, 4, 4])], [const("s", np.array([1, 1, 0.5, 0.5], np.float32))],
     "antialias"),
    (helper.make_node("TopK", ["x", "k"], ["y", "i"]), [("x", F, [2, 5]), ("k", I64, [1])], [],
     "input 1 ('k') must be a constant"),
    (helper.make_node("Dropout", ["x", "r", "t"], ["y"]), [("x", F, [2, 3])],
     [const("r", np.float32(0.5)), const("t", np.bool_(True))], "random mask"),
])
def test_refusals_name_the_reason(milk_asan, tmp_path, node, inputs, inits, text):
    path = graph_model(tmp_path / "r.onnx", [node], inputs, [("y", F, None)], inits, opset=18)
    r = convert_run(milk_asan, path, {}, tmp_path, check=False)
    assert r.returncode == 2, r.stderr
    assert text in r.stderr and "Sanitizer" not in r.stderr, r.stderr
    assert not (tmp_path / "m.mlpackage").exists()


def test_asan_new_rows(milk_asan, tmp_path):
    """A graph through several of the new rows under AddressSanitizer and
    UBSan, checked against PyTorch."""
    x = RNG.standard_normal((1, 2, 4, 6)).astype(np.float32)
    nodes = [helper.make_node("Resize", ["x", "", "s"], ["r"], mode="cubic"),
             helper.make_node("InstanceNormalization", ["r", "g", "b"], ["n"]),
             helper.make_node("LogSoftmax", ["n"], ["l"], axis=-1),
             helper.make_node("Mod", ["l", "d"], ["m"], fmod=1),
             helper.make_node("Max", ["m", "l"], ["y"])]
    inits = [const("s", np.array([1, 1, 1, 1.5], np.float32)),
             const("g", np.ones(2, np.float32)), const("b", np.zeros(2, np.float32)),
             const("d", np.float32(0.75))]
    path = graph_model(tmp_path / "a.onnx", nodes, [("x", F, [1, 2, 4, 6])],
                       [("y", F, [1, 2, 4, 9])], inits)
    got = convert_run(milk_asan, path, {"x": x}, tmp_path)["y"]
    F_ = torch.nn.functional
    t = F_.interpolate(torch.from_numpy(x), scale_factor=(1, 1.5), mode="bicubic",
                       align_corners=False)
    l = F_.log_softmax(F_.instance_norm(t), dim=-1)
    check_float(got, torch.maximum(torch.fmod(l, 0.75), l).numpy())


def test_integer_div_truncates_toward_zero(milk, tmp_path):
    """ONNX integer Div is C division (toward zero), not floor division."""
    import subprocess
    from onnx import TensorProto, helper
    vi = [helper.make_tensor_value_info(n, TensorProto.INT32, [8]) for n in "xyz"]
    g = helper.make_graph([helper.make_node("Div", ["x", "y"], ["z"])], "g", vi[:2], vi[2:])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]),
              str(tmp_path / "div.onnx"))
    a = np.array([7, -7, 7, -7, 0, 9, -9, 100], np.int32)
    b = np.array([2, 2, -2, -2, 3, 3, 3, -7], np.int32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    pkg = tmp_path / "div.mlpackage"
    subprocess.run([milk, "convert", str(tmp_path / "div.onnx"), "-o", str(pkg), "--precision", "fp32"],
                   check=True, capture_output=True)
    subprocess.run([milk, "run", str(pkg), "--input", f"x={tmp_path / 'a.npy'}",
                    "--input", f"y={tmp_path / 'b.npy'}", "--output", str(tmp_path / "o.npz")],
                   check=True, capture_output=True)
    want = np.trunc(a / b).astype(np.int32)  # C semantics: -7 / 2 = -3
    assert np.array_equal(np.load(tmp_path / "o.npz")["z"], want)
