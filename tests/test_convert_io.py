"""The model's boundary in `milk convert`: outputs no op computes
(constants, graph inputs passed through, the tensor of another output)
produced by MIL's identity op; bool inputs and outputs declared int32 and
scalar ones [1], converted inside; graph inputs frozen with --freeze. Each
model is converted, run with `milk run`, and compared with values computed
here with NumPy from the ONNX spec (never from milk); errors are checked on
the ASan build (a clear message, exit 2, no package left). The identity
kernel is checked against its input through the opcheck helper."""
import re
import subprocess

import numpy as np
import pytest

from milkop import Const, In, run_ops

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

RNG = np.random.RandomState(77)


def run_cmd(args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


def write_model(path, nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(m, str(path))
    return path


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def convert(milk, model, pkg, *args):
    r = run_cmd([milk, "convert", model, "-o", pkg, *args])
    assert r.returncode == 0, r.stderr
    return r.stdout


def run_pkg(milk, pkg, inputs, tmp):
    """Run pkg on {name: array}; the .npz contents as a dict."""
    cmd = [milk, "run", pkg, "--output", tmp / "out.npz"]
    for name, arr in inputs.items():
        path = tmp / f"in_{name}.npy"
        np.save(path, arr)
        cmd += ["--input", f"{name}={path}"]
    r = run_cmd(cmd)
    assert r.returncode == 0, r.stderr
    with np.load(tmp / "out.npz") as z:
        return {k: z[k] for k in z.files}


def signature(milk, pkg):
    """main's inputs as `milk dump` prints them: "tensor<int32, [4]> b, ..."."""
    r = run_cmd([milk, "dump", pkg])
    assert r.returncode == 0, r.stderr
    return re.search(r"func main<\w+>\((.*)\) \{", r.stdout).group(1)


def producers(milk, pkg):
    """{var: the type of the op computing it} from `milk dump`."""
    r = run_cmd([milk, "dump", pkg])
    assert r.returncode == 0, r.stderr
    return dict(re.findall(r"> (\w+) = (\w+)\(", r.stdout))


# ---- the identity op ----------------------------------------------------------------

def test_identity_op():
    """identity returns x: every storage dtype, a scalar, a constant."""
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    cases = [
        ([("x", x)], x),
        ([("x", In(x, dtype="fp16"))], x.astype(np.float16).astype(np.float32)),
        ([("x", Const(x))], x),
        ([("x", RNG.randint(-50, 50, (5,)).astype(np.int32))], None),
        ([("x", RNG.rand(3, 2) < 0.5)], None),
        ([("x", np.array(2.5, np.float32))], np.array(2.5, np.float32)),
    ]
    results = run_ops([("identity", inputs, {"target": "ios15"}) for inputs, _ in cases],
                      asan=True)
    for (inputs, want), res in zip(cases, results):
        assert not isinstance(res, Exception), res
        (got,), _ = res
        v = inputs[0][1]
        want = np.asarray(v.array if hasattr(v, "array") else v) if want is None else want
        assert got.shape == want.shape and got.dtype == want.dtype, (got, want)
        np.testing.assert_array_equal(got, want)
    bad = run_ops([("identity", [("x", "text")])], asan=True)[0]
    assert isinstance(bad, Exception) and "dtype string is not allowed" in str(bad)


# ---- outputs no op computes ---------------------------------------------------------------

def pass_through_model(path):
    k = helper.make_tensor("kv", TensorProto.FLOAT, [2], [1.5, -2.0])
    nodes = [helper.make_node("Identity", ["x"], ["y"]),           # a graph input
             helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Identity", ["r"], ["r2"]),          # output r again
             helper.make_node("Constant", [], ["k"], value=k),     # a constant
             helper.make_node("Shape", ["x"], ["s"])]              # folded
    outputs = [vi("y", [2, 3]), vi("r", [2, 3]), vi("r2", [2, 3]), vi("k", [2]),
               vi("s", [2], TensorProto.INT64), vi("w", [3])]      # w: an initializer
    w = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    return write_model(path, nodes, [vi("x", [2, 3])], outputs, [w])


@pytest.mark.parametrize("args", [["--precision", "fp32"], [], ["--target", "ios15"]],
                         ids=["fp32", "fp16", "fp16-ios15"])
def test_constant_and_pass_through_outputs(milk, tmp_path, args):
    model = pass_through_model(tmp_path / "p.onnx")
    pkg = tmp_path / "p.mlpackage"
    out = convert(milk, model, pkg, *args)
    assert "produced by identity" in out
    for what in ("output 'y' (graph input 'x')", "output 'r2' (the tensor of output 'r')",
                 "output 'k' (a constant)", "output 's' (a constant)",
                 "output 'w' (a constant)"):
        assert what in out, out
    made = producers(milk, pkg)
    # every output is an op's (iOS15: the fp16 pass's casts to fp32 I/O)
    for name in ("y", "r2", "k", "s", "w"):
        assert made[name] == ("cast" if "ios15" in args and name != "s" else "identity"), made
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    got = run_pkg(milk, pkg, {"x": x}, tmp_path)
    # fp16 rounds x (iOS15 keeps fp32 I/O, casting inside); everything
    # here is x, relu(x) or constants exact in fp16
    xr = x if "fp32" in args else x.astype(np.float16).astype(np.float32)
    want = {"y": xr, "r": np.maximum(xr, 0), "r2": np.maximum(xr, 0),
            "k": np.array([1.5, -2.0], np.float32), "s": np.array([2, 3], np.int32),
            "w": np.array([1.0, 2.0, 3.0], np.float32)}
    assert sorted(got) == sorted(want)
    for name, w in want.items():
        assert got[name].shape == w.shape, name
        np.testing.assert_array_equal(got[name].astype(w.dtype), w, err_msg=name)


@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.BOOL])
def test_output_that_is_an_input_by_name_refused(milk_asan, tmp_path, dtype):
    """ONNX lets a graph output be a graph input itself; a Core ML model
    cannot have an input and an output of one name."""
    model = write_model(tmp_path / "m.onnx", [], [vi("x", [2], dtype)],
                        [vi("x", [2], dtype)])
    r = run_cmd([milk_asan, "convert", model, "-o", tmp_path / "m.mlpackage"])
    assert r.returncode == 2 and "output 'x' is graph input 'x' itself" in r.stderr
    assert "Sanitizer" not in r.stderr and not (tmp_path / "m.mlpackage").exists()


# ---- bool and scalar inputs and outputs -------------------------------------------------------

def bool_scalar_model(path):
    flag = helper.make_tensor("fv", TensorProto.BOOL, [], [True])
    nodes = [helper.make_node("Not", ["b"], ["nb"]),
             helper.make_node("Identity", ["b"], ["bsame"]),
             helper.make_node("Mul", ["x", "s"], ["xs"]),
             helper.make_node("ReduceSum", ["x"], ["tot"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["pos"]),
             helper.make_node("Constant", [], ["flag"], value=flag)]
    inputs = [vi("b", [4], TensorProto.BOOL), vi("x", [2, 2]), vi("s", [])]
    outputs = [vi("nb", [4], TensorProto.BOOL), vi("bsame", [4], TensorProto.BOOL),
               vi("xs", [2, 2]), vi("tot", []), vi("pos", [], TensorProto.BOOL),
               vi("flag", [], TensorProto.BOOL)]
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    return write_model(path, nodes, inputs, outputs, [zero])


def test_bool_and_scalar_io(milk, tmp_path):
    pkg = tmp_path / "b.mlpackage"
    out = convert(milk, bool_scalar_model(tmp_path / "b.onnx"), pkg, "--precision", "fp32")
    assert re.search(r"bool I/O declared int32.*input 'b', output 'nb', output 'bsame', "
                     r"output 'pos', output 'flag'", out), out
    assert re.search(r"scalar I/O declared \[1\].*input 's', output 'tot', output 'pos', "
                     r"output 'flag'", out), out
    assert signature(milk, pkg) == ("tensor<int32, [4]> b, tensor<fp32, [2, 2]> x, "
                                    "tensor<fp32, [1]> s")
    b = np.array([True, False, False, True])
    x = RNG.standard_normal((2, 2)).astype(np.float32)
    for s in (np.float32(-0.75), np.float32(1.25)):
        got = run_pkg(milk, pkg, {"b": b.astype(np.int32), "x": x,
                                  "s": np.array([s], np.float32)}, tmp_path)
        want = {"nb": np.logical_not(b).astype(np.int32), "bsame": b.astype(np.int32),
                "pos": np.array([int(s > 0)], np.int32), "flag": np.array([1], np.int32)}
        for name, w in want.items():
            assert got[name].dtype == np.int32 and got[name].shape == w.shape, name
            np.testing.assert_array_equal(got[name], w, err_msg=name)
        np.testing.assert_allclose(got["xs"], x * s, rtol=1e-6)
        assert got["tot"].shape == (1,)
        np.testing.assert_allclose(got["tot"], [x.astype(np.float64).sum()], rtol=1e-6)
    # the boundary is int32: bool data is refused, naming the declared type
    np.save(tmp_path / "bb.npy", b)
    r = run_cmd([milk, "run", pkg, "--input", f"b={tmp_path / 'bb.npy'}", "--output",
                 tmp_path / "o.npz"])
    assert r.returncode == 2 and "expected tensor<int32, [4]>" in r.stderr


@pytest.mark.parametrize("rules", [["--disable-rule", "io-types"], ["--disable-rule", "all"]],
                         ids=["io-types off", "all off"])
def test_boundary_without_the_rule(milk, tmp_path, rules):
    """The boundary is the converter's own, not the io-types rule's: with
    the rule (or every rule) disabled the model still has int32 and [1]
    I/O, and computes the same values."""
    pkg = tmp_path / "b.mlpackage"
    out = convert(milk, bool_scalar_model(tmp_path / "b.onnx"), pkg, "--precision", "fp32",
                  *rules)
    assert "bool I/O declared int32" in out and "scalar I/O declared [1]" in out
    assert signature(milk, pkg) == ("tensor<int32, [4]> b, tensor<fp32, [2, 2]> x, "
                                    "tensor<fp32, [1]> s")
    b = np.array([False, True, True, False])
    x = RNG.standard_normal((2, 2)).astype(np.float32)
    got = run_pkg(milk, pkg, {"b": b.astype(np.int32), "x": x,
                              "s": np.array([0.5], np.float32)}, tmp_path)
    np.testing.assert_array_equal(got["nb"], np.logical_not(b).astype(np.int32))
    np.testing.assert_array_equal(got["pos"], np.array([1], np.int32))
    np.testing.assert_array_equal(got["flag"], np.array([1], np.int32))
    np.testing.assert_allclose(got["xs"], x * np.float32(0.5), rtol=1e-6)
    assert got["tot"].shape == (1,)


# ---- --freeze -------------------------------------------------------------------------------------

def freeze_model(path):
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"]),
             helper.make_node("Pad", ["x", "pads", "cval"], ["p"], mode="constant")]
    inputs = [vi("x", [2, 6]), vi("shape", [2], TensorProto.INT64),
              vi("pads", [4], TensorProto.INT64), vi("cval", [])]
    return write_model(path, nodes, inputs, [vi("y", None), vi("p", None)])


def test_freeze(milk, tmp_path):
    model = freeze_model(tmp_path / "f.onnx")
    pkg = tmp_path / "f.mlpackage"
    r = run_cmd([milk, "convert", model, "-o", pkg])
    assert r.returncode == 2 and "give its value with --freeze shape=FILE.npy" in r.stderr
    files = {"shape": np.array([3, 4], np.int64), "pads": np.array([0, 1, 2, 0], np.int32),
             "cval": np.array(-1.5, np.float32)}
    args = ["--precision", "fp32"]
    for name, v in files.items():
        np.save(tmp_path / f"{name}.npy", v)
        args += ["--freeze", f"{name}={tmp_path / name}.npy"]
    out = convert(milk, model, pkg, *args)
    assert re.search(r"frozen: +shape = \S*shape.npy \(int64 \[2\]\), now a constant", out)
    assert re.search(r"pads = \S*pads.npy \(int32 \[4\]\)", out)
    assert signature(milk, pkg) == "tensor<fp32, [2, 6]> x"
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    got = run_pkg(milk, pkg, {"x": x}, tmp_path)
    np.testing.assert_array_equal(got["y"], x.reshape(3, 4))
    # ONNX pads: [x1_begin, x2_begin, x1_end, x2_end]
    np.testing.assert_array_equal(got["p"], np.pad(x, ((0, 2), (1, 0)),
                                                   constant_values=-1.5))


@pytest.mark.parametrize("case", ["unknown", "shape", "rank", "dtype", "range", "twice",
                                  "with input-shape", "no file", "no value"])
def test_freeze_errors(milk_asan, tmp_path, case):
    model = freeze_model(tmp_path / "f.onnx")
    good = ["--freeze", f"pads={tmp_path / 'pads.npy'}", "--freeze",
            f"cval={tmp_path / 'cval.npy'}"]
    np.save(tmp_path / "pads.npy", np.zeros(4, np.int64))
    np.save(tmp_path / "cval.npy", np.array(0, np.float32))
    if case == "range":  # starts and ends are int32 here
        model = write_model(tmp_path / "f.onnx",
                            [helper.make_node("Slice", ["x", "shape", "e"], ["y"])],
                            [vi("x", [6]), vi("shape", [1], TensorProto.INT32)],
                            [vi("y", None)],
                            [helper.make_tensor("e", TensorProto.INT32, [1], [5])])
        good = []
    values = {"unknown": np.zeros(2, np.int64), "shape": np.array([3, 4, 1], np.int64),
              "rank": np.array([[3, 4]], np.int64), "dtype": np.array([3.0, 4.0]),
              "range": np.array([2 ** 40], np.int64), "twice": np.array([3, 4]),
              "with input-shape": np.array([3, 4])}
    text = {"unknown": "--freeze names 'nosuch', which is not a graph input",
            "shape": "--freeze 'shape' (", "rank": "the input has rank 1",
            "dtype": "the value is fp64, the input INT64 (give integer values)",
            "range": "element 0 is 1099511627776, which does not fit INT32",
            "twice": "input 'shape' is given twice",
            "with input-shape": "input 'shape' is given both --freeze and --input-shape",
            "no file": "nothing.npy", "no value": "--freeze takes NAME=FILE.npy"}[case]
    path = tmp_path / "v.npy"
    if case in values:
        np.save(path, values[case])
    name = "nosuch" if case == "unknown" else "shape"
    args = {"no file": ["--freeze", f"shape={tmp_path / 'nothing.npy'}"],
            "no value": ["--freeze", "shape"],
            "twice": ["--freeze", f"shape={path}", "--freeze", f"shape={path}"],
            "with input-shape": ["--freeze", f"shape={path}", "--input-shape", "shape=2"],
            }.get(case, ["--freeze", f"{name}={path}"])
    pkg = tmp_path / "f.mlpackage"
    r = run_cmd([milk_asan, "convert", model, "-o", pkg, *good, *args])
    assert r.returncode == 2, r.stdout
    assert text in r.stderr and "Sanitizer" not in r.stderr, r.stderr
    if case == "shape":
        assert "the value has shape [3], the input's dim 0 is 2" in r.stderr
    assert not pkg.exists()


def test_freeze_every_input(milk, tmp_path):
    """A model left without inputs is what Core ML takes from iOS18 on
    (its validator: "Empty input is only valid in specification version
    >= 9"): milk says so below iOS18, and converts it for iOS18."""
    model = freeze_model(tmp_path / "f.onnx")
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    args = ["--precision", "fp32"]
    for name, v in {"x": x, "shape": np.array([4, 3], np.int64),
                    "pads": np.array([1, 0, 0, 0], np.int64),
                    "cval": np.array(7.0, np.float32)}.items():
        np.save(tmp_path / f"{name}.npy", v)
        args += ["--freeze", f"{name}={tmp_path / name}.npy"]
    pkg = tmp_path / "f.mlpackage"
    r = run_cmd([milk, "convert", model, "-o", pkg, *args])
    assert r.returncode == 2 and "no input left" in r.stderr and "--target ios18" in r.stderr
    assert not pkg.exists()
    out = convert(milk, model, pkg, *args, "--target", "ios18")
    assert "output 'y' (a constant)" in out and "output 'p' (a constant)" in out
    assert signature(milk, pkg) == ""
    got = run_pkg(milk, pkg, {}, tmp_path)
    np.testing.assert_array_equal(got["y"], x.reshape(4, 3))
    np.testing.assert_array_equal(got["p"], np.pad(x, ((1, 0), (0, 0)), constant_values=7.0))
