"""`milk convert`: ONNX models exported by PyTorch at test time (and the
coremltools fixtures' model.onnx) converted to ML Programs, run with
`milk run`, and compared with PyTorch's own output (expected values never
come from milk). fp32 programs must match within 1e-4 relative (max |err|
/ max |expected|), fp16 programs within 2e-2."""
import json
import re
import subprocess

import numpy as np
import pytest

from conftest import CASES, FIXTURES
from milkop import rel_err

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

TOL = {"fp32": 1e-4, "fp16": 2e-2}


def run_cmd(args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True)


def convert(milk, model, out, *args, check=True):
    r = run_cmd([milk, "convert", model, "-o", out, *args])
    if check:
        assert r.returncode == 0, r.stderr
    return r


def run_pkg(milk, pkg, inputs, tmp, *args):
    """Run pkg on {name: array}; returns the .npz contents as a dict."""
    cmd = [milk, "run", pkg, "--output", tmp / "out.npz", *args]
    for name, arr in inputs.items():
        path = tmp / f"in_{len(cmd)}.npy"
        np.save(path, arr)
        cmd += ["--input", f"{name}={path}"]
    r = run_cmd(cmd)
    assert r.returncode == 0, r.stderr
    with np.load(tmp / "out.npz") as z:
        return {k: z[k] for k in z.files}


def mil_name(onnx_name):
    """coremltools' NameSanitizer (coremltools/converters/mil/mil/passes/
    defs/preprocess.py): replace, then prefix what does not start with a
    letter or '_'."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", onnx_name)
    return s if re.match(r"[A-Za-z_]", s) else "var_" + s


def calibrate_batch_norm(module, shape):
    """Random weights leave BatchNorm's running statistics at 0 and 1, and
    activations shrink layer after layer (to 1e-9 at the end of
    mobilenet_v2, below fp16's range): set them from a few random inputs,
    as training would. Variances are floored at 1e-2: a channel ReLU6
    nearly killed would otherwise fold into conv weights thousands of times
    larger than the rest, and fp16 weights (which is what fp16 conversion
    means) would lose the cancellations the output depends on."""
    bns = [m for m in module.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        module(torch.randn(8, *shape[1:]))
    module.eval()
    for m in bns:
        m.running_var.clamp_(min=1e-2)


def export(module, x, path, opset, **kw):
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, x, str(path), opset_version=opset,
                          input_names=["x"], output_names=["y"], **kw)
        return module(x).numpy()


def check_model(milk, onnx_path, x, want, tmp, precision, target="ios17",
                extra=()):
    pkg = tmp / f"m_{precision}_{target}.mlpackage"
    r = convert(milk, onnx_path, pkg, "--precision", precision,
                "--target", target, *extra)
    out = run_pkg(milk, pkg, {"x": x}, tmp)
    got = out["y"]
    err = rel_err(got.astype(np.float32), want)
    assert err < TOL[precision], f"{precision}: relative error {err}\n{r.stdout}"
    return got, r.stdout


# ---- the coremltools fixtures' ONNX models ---------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES)
def test_fixture_models(milk, tmp_path, case, precision):
    d = FIXTURES / case
    meta = json.loads((d / "case.json").read_text())
    x = np.load(d / "x.npy")
    want = np.load(d / "expected.npy")
    got, log = check_model(milk, d / "model.onnx", x, want, tmp_path, precision,
                           target=meta["target"])
    # fp16 model I/O from iOS16 on, fp32 for iOS15 (coremltools' defaults)
    io16 = precision == "fp16" and meta["target"] != "ios15"
    assert got.dtype == (np.float16 if io16 else np.float32)
    assert "ONNX nodes in" in log and "MIL ops out" in log


# ---- torchvision classifiers ------------------------------------------------------


@pytest.fixture(scope="module")
def vision_models(tmp_path_factory):
    tv = pytest.importorskip("torchvision")
    tmp = tmp_path_factory.mktemp("vision")
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    made = {}
    for name, opset in [("resnet18", 13), ("mobilenet_v2", 15),
                        ("squeezenet1_1", 17)]:
        m = getattr(tv.models, name)()
        calibrate_batch_norm(m, x.shape)
        path = tmp / f"{name}.onnx"
        made[name] = (path, x.numpy(), export(m, x, path, opset))
    return made


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "squeezenet1_1"])
def test_torchvision(milk, tmp_path, vision_models, name, precision):
    path, x, want = vision_models[name]
    check_model(milk, path, x, want, tmp_path, precision)


# ---- a GPT-2-style block with a causal mask ------------------------------------------


class GPT2Block(torch.nn.Module):
    def __init__(self, C=64, H=4, T=16):
        super().__init__()
        nn = torch.nn
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attn, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fc2 = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.H, self.C = H, C
        self.register_buffer("bias", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

    @staticmethod
    def gelu(x):  # GPT-2's tanh approximation
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3.0))))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.attn(self.ln1(x)).split(self.C, dim=2)
        hs = C // self.H
        q = q.view(B, T, self.H, hs).transpose(1, 2)
        k = k.view(B, T, self.H, hs).transpose(1, 2)
        v = v.view(B, T, self.H, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / hs ** 0.5)
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        y = (torch.softmax(att, dim=-1) @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.proj(y)
        return x + self.fc2(self.gelu(self.fc(self.ln2(x))))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(1)
    m = GPT2Block().eval()
    x = torch.randn(1, 16, 64)
    static = tmp / "static.onnx"
    want = export(m, x, static, 17)
    dynamic = tmp / "dynamic.onnx"  # Shape/Gather/Concat chains to fold
    export(m, x, dynamic, 17, dynamic_axes={"x": {0: "batch", 1: "seq"},
                                            "y": {0: "batch", 1: "seq"}})
    unfolded = tmp / "unfolded.onnx"  # opset 13, LayerNorm decomposed
    export(m, x, unfolded, 13, do_constant_folding=False)
    with torch.no_grad():
        ln1 = m.ln1(x).numpy()
    return {"static": static, "dynamic": dynamic, "unfolded": unfolded,
            "x": x.numpy(), "want": want, "ln1": ln1}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("variant", ["static", "unfolded"])
def test_gpt2_block(milk, tmp_path, gpt2, variant, precision):
    check_model(milk, gpt2[variant], gpt2["x"], gpt2["want"], tmp_path, precision)


def test_gpt2_dynamic_axes_need_input_shape(milk, tmp_path, gpt2):
    pkg = tmp_path / "dyn.mlpackage"
    r = convert(milk, gpt2["dynamic"], pkg, check=False)
    assert r.returncode != 0
    assert "input 'x'" in r.stderr and "dynamic" in r.stderr
    assert "--input-shape x=?,?,64" in r.stderr
    assert not pkg.exists()
    _, log = check_model(milk, gpt2["dynamic"], gpt2["x"], gpt2["want"], tmp_path,
                         "fp32", extra=["--input-shape", "x=1,16,64"])
    folded = int(log.split("ops folded")[0].split("(")[-1])
    assert folded > 10  # the exporter's shape arithmetic became constants
    for op in ("gather", "concat", "shape"):
        assert f" {op} " not in log.split("MIL ops out")[1].split("\n")[0]


def test_names_follow_onnx_tensors(milk, tmp_path, gpt2):
    """The var computing ONNX tensor T is named after T (sanitized), so an
    intermediate can be read by its ONNX name."""
    pkg = tmp_path / "g.mlpackage"
    convert(milk, gpt2["static"], pkg, "--precision", "fp32")
    out = run_pkg(milk, pkg, {"x": gpt2["x"]}, tmp_path, "--keep-all")
    name = mil_name("/ln1/LayerNormalization_output_0")
    assert name == "_ln1_LayerNormalization_output_0"
    assert name in out, sorted(out)[:20]
    assert rel_err(out[name], gpt2["ln1"]) < 1e-4
    graph = onnx.load(str(gpt2["static"])).graph
    mapped = [n.output[0] for n in graph.node if n.op_type in ("MatMul", "Softmax")]
    for t in mapped:
        assert mil_name(t) in out


# ---- a BigVGAN-style upsampler and transposed-convolution corners -------------------


class Upsampler(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.pre = nn.Conv1d(20, 32, 7, padding=3)
        self.up1 = nn.ConvTranspose1d(32, 16, 16, stride=8, padding=4)
        self.res = nn.Conv1d(16, 16, 3, dilation=3, padding=3)
        self.up2 = nn.ConvTranspose1d(16, 8, 4, stride=2, padding=1)
        self.post = nn.Conv1d(8, 1, 7, padding=3)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x):
        x = self.up1(self.act(self.pre(x)))
        x = x + self.res(self.act(x))
        x = self.up2(self.act(x))
        return torch.tanh(self.post(self.act(x)))


class ConvTransposeCorners(torch.nn.Module):
    """output_padding beyond the end pad (bias-only tail), groups, 2-D."""
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.a = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
        self.b = nn.ConvTranspose2d(6, 4, (3, 2), stride=(2, 3), padding=(0, 1),
                                    groups=2)
        self.c = nn.ConvTranspose2d(4, 2, 2, stride=2, padding=0, output_padding=1,
                                    dilation=2)

    def forward(self, x):
        return self.c(self.b(self.a(x)))


class Pools(torch.nn.Module):
    """avg_pool with ceil_mode and count_include_pad (a known trap), max_pool
    with ceil_mode, a constant Pad, global pooling."""
    def forward(self, x):
        nn = torch.nn.functional
        a = nn.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True)
        b = nn.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
        c = nn.max_pool2d(x, 3, 2, 0, ceil_mode=True)
        d = nn.avg_pool2d(nn.pad(x, (1, 2, 0, 1)), 2, 2)
        return torch.cat([a.flatten(1), b.flatten(1), c.flatten(1), d.flatten(1),
                          x.mean(dim=(2, 3))], 1)


class ShapeOps(torch.nn.Module):
    """Slices (steps, negative steps), Gather with a negative index,
    Unsqueeze/Expand, Transpose/Reshape, reductions, reflect and edge Pad:
    the exporter's Shape/ConstantOfShape/Where chains fold."""
    def forward(self, x):  # [2, 6, 8]
        F = torch.nn.functional
        a = x[:, 1:-1, ::2]
        b = x.flip(-1)[:, :4, 1:6:2]
        c = x[:, -1, :]
        d = c.unsqueeze(1).expand(2, 3, 8)
        e = x.transpose(1, 2).reshape(2, 48)
        f = x.sum(dim=-1, keepdim=True) + x.amax(dim=1).unsqueeze(-1).mean(1, keepdim=True)
        g = F.pad(x.unsqueeze(1), (2, 1, 1, 0), mode="reflect")[:, 0]
        h = F.pad(x.unsqueeze(1), (1, 2, 0, 1), mode="replicate")[:, 0]
        return torch.cat([t.flatten(1) for t in (a, b, c, d, e, f, g, h)], 1)


class Elementwise(torch.nn.Module):
    def forward(self, x):
        F = torch.nn.functional
        a = x.abs()
        y = torch.sigmoid(x) + torch.exp(-a) + torch.log(a + 1) + torch.reciprocal(a + 1)
        y = y + torch.sqrt(a) + torch.erf(x) - torch.tanh(x) * torch.relu(x)
        y = y + x.clamp(min=-0.5) + x.clamp(max=0.3) + F.leaky_relu(x, 0.2)
        y = y - (-x) ** 2 / 3 + F.relu6(x)
        return torch.softmax(y, dim=1)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("module,shape,opset", [
    (Upsampler, (1, 20, 24), 17),
    (ConvTransposeCorners, (1, 4, 5, 7), 14),
    (Pools, (1, 3, 10, 9), 16),
    (ShapeOps, (2, 6, 8), 13),
    (ShapeOps, (2, 6, 8), 11),  # axes as attributes
    (Elementwise, (2, 5, 7), 14),
])
def test_modules(milk, tmp_path, module, shape, opset, precision):
    torch.manual_seed(2)
    x = torch.randn(*shape)
    want = export(module(), x, tmp_path / "m.onnx", opset)
    check_model(milk, tmp_path / "m.onnx", x.numpy(), want, tmp_path, precision,
                target="ios18")


def test_ios15_fp16_keeps_fp32_io(milk, tmp_path):
    torch.manual_seed(3)
    x = torch.randn(1, 20, 24)
    want = export(Upsampler(), x, tmp_path / "u.onnx", 17)
    got, _ = check_model(milk, tmp_path / "u.onnx", x.numpy(), want, tmp_path,
                         "fp16", target="ios15")
    assert got.dtype == np.float32


# ---- single nodes built by hand (what PyTorch does not export) -------------------


def single_node(tmp_path, node, x, inits=(), opset=17, out_shape=None):
    path = tmp_path / "node.onnx"
    write_model(path, [node], [vi("x", list(x.shape))],
                [vi("y", out_shape)], inits, opset)
    return path


def init(name, a):
    a = np.asarray(a)
    dt = TensorProto.INT64 if a.dtype == np.int64 else TensorProto.FLOAT
    return helper.make_tensor(name, dt, list(a.shape), a.ravel().tolist())


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_gemm_general(milk, tmp_path, precision):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3)).astype(np.float32)  # transA: A is [K, M]
    b = rng.standard_normal((6, 5)).astype(np.float32)
    c = rng.standard_normal((1, 5)).astype(np.float32)
    node = helper.make_node("Gemm", ["x", "b", "c"], ["y"], transA=1, alpha=0.5,
                            beta=2.0)
    path = single_node(tmp_path, node, x, [init("b", b), init("c", c)])
    check_model(milk, path, x, 0.5 * x.T @ b + 2.0 * c, tmp_path, precision)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_auto_pad(milk, tmp_path, auto_pad):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 8, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 2)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad,
                            strides=[2, 2])
    path = single_node(tmp_path, node, x, [init("w", w)])
    # out = ceil(in / 2): H 8 -> 4 and W 5 -> 3 each need one pad, at the
    # end (UPPER) or at the start (LOWER); F.pad takes (left, right, top, bottom)
    pads = (0, 1, 0, 1) if auto_pad == "SAME_UPPER" else (1, 0, 1, 0)
    xp = torch.nn.functional.pad(torch.from_numpy(x), pads)
    want = torch.nn.functional.conv2d(xp, torch.from_numpy(w), stride=2).numpy()
    # iOS15 has no same_lower: the pads must be explicit
    check_model(milk, path, x, want, tmp_path, "fp32", target="ios15")


def test_softmax_before_opset_13(milk, tmp_path):
    """Before opset 13 Softmax normalizes over every dim from axis on."""
    x = np.random.default_rng(6).standard_normal((2, 3, 4)).astype(np.float32)
    node = helper.make_node("Softmax", ["x"], ["y"], axis=1)
    path = single_node(tmp_path, node, x, opset=11)
    e = np.exp(x.reshape(2, 12) - x.reshape(2, 12).max(1, keepdims=True))
    check_model(milk, path, x, (e / e.sum(1, keepdims=True)).reshape(2, 3, 4),
                tmp_path, "fp32")


def test_split_num_outputs_and_range(milk, tmp_path):
    """Split by num_outputs (opset 18: the last piece smaller), Range and a
    Cast of its int64 result, all folded or lowered."""
    x = np.arange(2 * 8, dtype=np.float32).reshape(2, 8)
    nodes = [helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3),
             helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["c", "rf"], ["c2"]),
             helper.make_node("Concat", ["c2", "b", "a"], ["y"], axis=1)]
    inits = [init("start", np.array(3, np.int64)), init("limit", np.array(7, np.int64)),
             init("delta", np.array(2, np.int64))]
    write_model(tmp_path / "s.onnx", nodes, [vi("x", [2, 8])], [vi("y", [2, 8])],
                inits, opset=18)
    want = np.concatenate([x[:, 6:] + np.array([3, 5]), x[:, 3:6], x[:, :3]], 1)
    check_model(milk, tmp_path / "s.onnx", x, want, tmp_path, "fp32")


def test_no_ops(milk, tmp_path):
    """Dropout and Identity pass their input on (a graph output among them
    takes the output's name); Neg and Flatten at a negative axis."""
    x = np.random.default_rng(9).standard_normal((2, 3, 4)).astype(np.float32)
    nodes = [helper.make_node("Neg", ["x"], ["n"]),
             helper.make_node("Dropout", ["n"], ["d"], ratio=0.5),
             helper.make_node("Identity", ["d"], ["i"]),
             helper.make_node("Flatten", ["i"], ["y"], axis=-1)]
    write_model(tmp_path / "n.onnx", nodes, [vi("x", [2, 3, 4])], [vi("y", [6, 4])],
                opset=12)
    check_model(milk, tmp_path / "n.onnx", x, -x.reshape(6, 4), tmp_path, "fp32")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_opset_20(milk, tmp_path, approximate):
    x = np.random.default_rng(7).standard_normal((3, 10)).astype(np.float32)
    node = helper.make_node("Gelu", ["x"], ["y"], approximate=approximate)
    path = single_node(tmp_path, node, x, opset=20)
    want = torch.nn.functional.gelu(torch.from_numpy(x), approximate=approximate)
    check_model(milk, path, x, want.numpy(), tmp_path, "fp32")


def test_external_data(milk, tmp_path):
    """Weights in an external data file are referenced there, not copied."""
    torch.manual_seed(8)
    x = torch.randn(1, 20, 24)
    want = export(Upsampler(), x, tmp_path / "inline.onnx", 17)
    m = onnx.load(str(tmp_path / "inline.onnx"))
    sub = tmp_path / "ext"
    sub.mkdir()
    onnx.save(m, str(sub / "m.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="m.weights", size_threshold=0)
    assert (sub / "m.weights").stat().st_size > 20000
    check_model(milk, sub / "m.onnx", x.numpy(), want, tmp_path, "fp16")


# ---- failures --------------------------------------------------------------------------


def write_model(path, nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(m, str(path))


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_unsupported_nodes_all_listed(milk, tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
        helper.make_node("NotARealOp", ["a"], ["b"], name="bad_one"),
        helper.make_node("Relu", ["b"], ["c"], name="after_bad"),
        helper.make_node("MaxPool", ["x"], ["d"], name="dilated_pool",
                         kernel_shape=[2, 2], dilations=[2, 2]),
        helper.make_node("FancyOp", ["x"], ["e"], name="contrib",
                         domain="com.microsoft"),
        helper.make_node("AlsoNotReal", ["x"], ["f"]),
    ]
    write_model(tmp_path / "bad.onnx", nodes, [vi("x", [1, 2, 8, 8])],
                [vi("c", [1, 2, 8, 8]), vi("d", [1, 2, 6, 6]),
                 vi("e", [1, 2, 8, 8]), vi("f", [1, 2, 8, 8])])
    pkg = tmp_path / "bad.mlpackage"
    r = convert(milk, tmp_path / "bad.onnx", pkg, check=False)
    assert r.returncode != 0
    assert "4 nodes cannot be converted" in r.stderr, r.stderr
    assert "node 'bad_one' (NotARealOp): unknown op" in r.stderr
    assert "node 'dilated_pool' (MaxPool): attribute 'dilations'" in r.stderr
    assert "node 'contrib' (com.microsoft::FancyOp)" in r.stderr
    assert "(AlsoNotReal, output 'f'): unknown op" in r.stderr
    assert "after_bad" not in r.stderr and "ok_relu" not in r.stderr
    assert not pkg.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("bad.mlpackage")]


def _semantic_cases():
    x = vi("x", [1, 2, 5, 5])
    y = vi("y", None)
    i64 = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)
    return {
        "undefined input": ([helper.make_node("Relu", ["nope"], ["y"], name="r")],
                            [x], [y], [], "input 0 ('nope') is not a graph input"),
        "defined twice": ([helper.make_node("Relu", ["x"], ["y"]),
                           helper.make_node("Relu", ["x"], ["y"], name="again")],
                          [x], [y], [], "output 'y' is already defined"),
        "weight rank": ([helper.make_node("Conv", ["x", "w"], ["y"], name="c")], [x], [y],
                        [helper.make_tensor("w", TensorProto.FLOAT, [3, 2, 3], [0.0] * 18)],
                        "weight of rank 3"),
        "run-time shape": ([helper.make_node("Reshape", ["x", "s"], ["y"])],
                           [x, vi("s", [2], TensorProto.INT64)], [y], [],
                           "must be a constant, but is computed at run time"),
        "index range": ([helper.make_node("Gather", ["x", "i"], ["y"], axis=2)], [x], [y],
                        [i64("i", [7])], "index 7 out of range"),
        "slice step": ([helper.make_node("Slice", ["x", "a", "b", "c", "d"], ["y"])],
                       [x], [y], [i64("a", [0]), i64("b", [2]), i64("c", [1]),
                                  i64("d", [0])], "step 0"),
        "split sizes": ([helper.make_node("Split", ["x", "p"], ["y", "z"], axis=2)],
                        [x], [y], [i64("p", [2, 2])], "do not add up"),
        "concat axis": ([helper.make_node("Concat", ["x", "x"], ["y"], axis=5)], [x], [y],
                        [], "'axis': 5 is outside"),
        "no producer": ([helper.make_node("Relu", ["x"], ["a"])], [x], [vi("zz", None)],
                        [], "output 'zz' is not computed"),
        "int64 range": ([helper.make_node("Add", ["k", "k"], ["k2"]),
                         helper.make_node("Reshape", ["x", "k2"], ["y"])], [x], [y],
                        [i64("k", [2 ** 40])], "does not fit int32"),
    }


@pytest.mark.parametrize("case", sorted(_semantic_cases()))
def test_semantic_errors(milk_asan, tmp_path, case):
    """Valid protobuf, inconsistent model: a clean error naming the cause,
    no output, no sanitizer report."""
    nodes, inputs, outputs, inits, text = _semantic_cases()[case]
    write_model(tmp_path / "m.onnx", nodes, inputs, outputs, inits)
    r = convert(milk_asan, tmp_path / "m.onnx", tmp_path / "m.mlpackage", check=False)
    assert r.returncode == 2, r.stderr
    assert text in r.stderr and "Sanitizer" not in r.stderr, r.stderr
    assert not (tmp_path / "m.mlpackage").exists()


def test_old_opset_refused(milk, tmp_path):
    write_model(tmp_path / "o.onnx", [helper.make_node("Relu", ["x"], ["y"])],
                [vi("x", [2])], [vi("y", [2])], opset=5)
    r = convert(milk, tmp_path / "o.onnx", tmp_path / "o.mlpackage", check=False)
    assert r.returncode == 2 and "opset 5" in r.stderr


def test_malformed_onnx(milk, milk_asan, tmp_path):
    good = FIXTURES / "conv2d_edge" / "model.onnx"
    data = good.read_bytes()
    cases = {"garbage.onnx": b"\x0a\xff\xff\xff\xff\x0f this is not protobuf",
             "truncated.onnx": data[: len(data) // 2],
             "empty.onnx": b""}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        for exe in (milk, milk_asan):
            pkg = tmp_path / (name + ".mlpackage")
            r = convert(exe, tmp_path / name, pkg, check=False)
            assert r.returncode == 2, (name, r.stderr)
            assert r.stderr.startswith("milk: ") and name in r.stderr
            assert "Sanitizer" not in r.stderr and not pkg.exists()
    r = convert(milk, tmp_path / "missing.onnx", tmp_path / "m.mlpackage", check=False)
    assert r.returncode == 2 and "missing.onnx" in r.stderr


def test_asan_conversion(milk_asan, tmp_path, gpt2):
    """Conversions under AddressSanitizer and UBSan (leaks included): both
    precisions, and the dynamic-axes export whose shape arithmetic folds,
    then run."""
    d = FIXTURES / "attention"
    for precision in ("fp32", "fp16"):
        r = convert(milk_asan, d / "model.onnx", tmp_path / f"{precision}.mlpackage",
                    "--precision", precision, check=False)
        assert r.returncode == 0, r.stderr
    pkg = tmp_path / "dyn.mlpackage"
    r = convert(milk_asan, gpt2["dynamic"], pkg, "--input-shape", "x=1,16,64",
                "--target", "ios15", check=False)
    assert r.returncode == 0, r.stderr
    out = run_pkg(milk_asan, pkg, {"x": gpt2["x"]}, tmp_path)
    assert rel_err(out["y"], gpt2["want"]) < TOL["fp16"]


def test_bad_input_shape_and_options(milk, tmp_path):
    model = FIXTURES / "conv2d_edge" / "model.onnx"
    for args, text in [
        (["--input-shape", "nosuch=1,2"], "'nosuch', which is not a graph input"),
        (["--input-shape", "x=1,2,5"], "rank 4"),
        (["--input-shape", "x=1,2,5,0"], "positive integers"),
        (["--target", "ios14"], "--target"),
        (["--precision", "int8"], "--precision"),
    ]:
        r = convert(milk, model, tmp_path / "o.mlpackage", *args, check=False)
        assert r.returncode == 2 and text in r.stderr, (args, r.stderr)
        assert not (tmp_path / "o.mlpackage").exists()


def test_int64_io_becomes_int32(milk, tmp_path):
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
             helper.make_node("Add", ["ids", "one"], ["next"])]
    table = np.arange(40, dtype=np.float32).reshape(10, 4)
    inits = [helper.make_tensor("table", TensorProto.FLOAT, [10, 4], table.ravel()),
             helper.make_tensor("one", TensorProto.INT64, [], [1])]
    write_model(tmp_path / "e.onnx", nodes, [vi("ids", [2, 3], TensorProto.INT64)],
                [vi("emb", [2, 3, 4]), vi("next", [2, 3], TensorProto.INT64)], inits)
    pkg = tmp_path / "e.mlpackage"
    r = convert(milk, tmp_path / "e.onnx", pkg, "--precision", "fp32")
    assert "int64 became int32" in r.stdout and "input 'ids'" in r.stdout
    ids = np.array([[0, 9, 3], [2, 2, 7]], dtype=np.int32)
    out = run_pkg(milk, pkg, {"ids": ids}, tmp_path)
    np.testing.assert_array_equal(out["emb"], table[ids])
    np.testing.assert_array_equal(out["next"], ids + 1)


def test_list_ops(milk):
    r = run_cmd([milk, "convert", "--list-ops"])
    assert r.returncode == 0
    rows = dict(line.split(None, 1) for line in r.stdout.splitlines())
    for op in ("Conv", "ConvTranspose", "Gemm", "Slice", "LayerNormalization",
               "Gelu", "Where", "Shape"):
        assert op in rows and rows[op].strip()
