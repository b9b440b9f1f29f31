"""Conversion options for deployment: the Core ML defect rules applied by
`milk convert` for the compute units (--compute-units, --disable-rule,
--enable-rule), mixed precision (--keep-fp32) and the search for the ops
to keep in fp32 (`milk verify MODEL.onnx --suggest-fp32`).

Models are PyTorch modules exported at test time; expected values are
PyTorch's outputs. fp16 programs must match within 2e-2 relative (max
|err| / max |expected|)."""
import json
import re
import subprocess

import numpy as np
import pytest

from milkop import rel_err

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

FP16_TOL = 2e-2


def milk_cmd(milk, *args):
    return subprocess.run([milk, *map(str, args)], capture_output=True, text=True)


def mil_name(onnx_name):
    """coremltools' sanitizing rule (docs/coreml-format.md section 6)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", onnx_name)
    return s if re.match(r"[A-Za-z_]", s) else "var_" + s


def export(module, x, path):
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, x, str(path), opset_version=17,
                          input_names=["x"], output_names=["y"])
        return module(x).numpy()


def convert(milk, model, pkg, *args):
    r = milk_cmd(milk, "convert", model, "-o", pkg, *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def run_y(milk, pkg, x_path, tmp):
    r = milk_cmd(milk, "run", pkg, "--input", f"x={x_path}", "--output", tmp / "out.npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp / "out.npz") as z:
        return z["y"].astype(np.float64)


def node_output(model_path, op_type, nth=0):
    """The output tensor of the nth node of op_type, read with onnx."""
    nodes = [n for n in onnx.load(str(model_path)).graph.node if n.op_type == op_type]
    return nodes[nth].output[0], nodes[nth].name


def ops_of(milk, pkg, op_type):
    """(dtype, rank) of each op_type op in the package, from `milk dump`."""
    r = milk_cmd(milk, "dump", pkg)
    assert r.returncode == 0, r.stderr
    pat = re.compile(r"tensor<(\w+), \[([^\]]*)\]> \S+ = " + op_type + r"\(")
    return [(m.group(1), len(m.group(2).split(","))) for m in pat.finditer(r.stdout)]


# ---- mixed precision: a planted fp16 overflow -------------------------------------------


class Planted(torch.nn.Module):
    """Linear scaling up by ~1000, ReLU, Linear scaling down by ~1000: the
    input (|x| < 200) and the output (|y| < 100) are well inside fp16's
    range, the middle activation (up to ~1e5) is not."""

    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(16, 32)
        self.down = torch.nn.Linear(32, 8)
        with torch.no_grad():
            self.up.weight.copy_(1000 * torch.randn(32, 16) / 4)
            self.down.weight.copy_(1e-3 * torch.randn(8, 32) / 6)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    torch.manual_seed(0)
    module = Planted()
    x = 50 * torch.randn(4, 16)
    want = export(module, x, tmp / "p.onnx")
    np.save(tmp / "x.npy", x.numpy())
    with torch.no_grad():
        hidden = module.up(x).numpy()
    # the planted condition, checked with PyTorch's values
    assert np.abs(hidden).max() > 65504 and np.abs(x.numpy()).max() < 65504
    assert np.abs(want).max() < 1000
    up_out, up_node = node_output(tmp / "p.onnx", "Gemm", 0)
    return {"dir": tmp, "onnx": tmp / "p.onnx", "x": tmp / "x.npy", "want": want,
            "n_big": int((np.abs(hidden) > 65504).sum()),
            "up": mil_name(up_out), "up_onnx": up_out, "up_node": up_node}


def test_audit_names_the_overflowing_op(milk, planted):
    r = milk_cmd(milk, "verify", planted["onnx"], "--precision", "fp16",
                 "--input", f"x={planted['x']}", "--json")
    assert r.returncode == 1, r.stderr
    res = json.loads(r.stdout)
    first = res["fp16"][0]
    row = next(row for row in res["rows"] if row["op"] == first["op"])
    assert row["var"] == planted["up"]
    assert first["overflow"] == planted["n_big"]
    text = milk_cmd(milk, "verify", planted["onnx"], "--precision", "fp16",
                    "--input", f"x={planted['x']}").stdout
    assert f"fp16: op '{first['op']}' (linear): {planted['n_big']} values beyond 65504" in text


@pytest.fixture(scope="module")
def suggestion(milk, planted):
    r = milk_cmd(milk, "verify", planted["onnx"], "--precision", "fp16",
                 "--input", f"x={planted['x']}", "--suggest-fp32")
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^suggested: --keep-fp32 (\S+)$", r.stdout, re.M)
    assert m, r.stdout
    return m.group(1), r.stdout


def test_suggest_fp32_returns_a_set(milk, planted, suggestion):
    names, log = suggestion
    kept = names.split(",")
    assert planted["up"] in kept  # the overflowing op comes first
    assert log.index(f"1. {planted['up']} (linear): fp16 overflow") > 0
    # the first round's table is printed: the fp16 audit
    assert "fp16 audit:" in log
    # JSON: the same set
    r = milk_cmd(milk, "verify", planted["onnx"], "--input", f"x={planted['x']}",
                 "--suggest-fp32", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["found"] and res["keep_fp32"] == names
    assert res["steps"][0]["name"] == planted["up"] and res["steps"][0]["before"] is None
    # the comparison with the set kept matches (exit 0)
    r = milk_cmd(milk, "verify", planted["onnx"], "--input", f"x={planted['x']}",
                 "--keep-fp32", names)
    assert r.returncode == 0, r.stdout


def test_keep_fp32_matches_pytorch(milk, planted, suggestion, tmp_path):
    names, _ = suggestion
    plain = tmp_path / "plain.mlpackage"
    convert(milk, planted["onnx"], plain, "--precision", "fp16")
    got = run_y(milk, plain, planted["x"], tmp_path)
    assert not np.all(np.isfinite(got)) or rel_err(got, planted["want"]) > FP16_TOL
    mixed = tmp_path / "mixed.mlpackage"
    log = convert(milk, planted["onnx"], mixed, "--precision", "fp16", "--keep-fp32", names)
    n = len(names.split(","))
    assert f"kept fp32:      {n} op" in log
    got = run_y(milk, mixed, planted["x"], tmp_path)
    assert rel_err(got, planted["want"]) < FP16_TOL
    # the kept ops compute in fp32, the program is still fp16 elsewhere
    assert ("fp32", 2) in ops_of(milk, mixed, "linear")
    r = milk_cmd(milk, "dump", mixed)
    assert "tensor<fp16, [4, 16]> x" in r.stdout


def test_keep_fp32_names(milk, planted, tmp_path):
    """A node by ONNX node name, ONNX output tensor or MIL var name: the
    same op kept in fp32; the others stay fp16."""
    dumps = []
    for name in (planted["up_node"], planted["up_onnx"], planted["up"]):
        pkg = tmp_path / "k.mlpackage"
        log = convert(milk, planted["onnx"], pkg, "--keep-fp32", name)
        assert "kept fp32:      1 op," in log, log
        assert sorted(ops_of(milk, pkg, "linear")) == [("fp16", 2), ("fp32", 2)]
        dumps.append(milk_cmd(milk, "dump", pkg).stdout)
    assert dumps[0] == dumps[1] == dumps[2]
    # names that designate nothing computed: exit 2, every name listed, no output
    pkg = tmp_path / "bad.mlpackage"
    r = milk_cmd(milk, "convert", planted["onnx"], "-o", pkg,
                 "--keep-fp32", f"nope,{planted['up']},x", "--keep-fp32", "other")
    assert r.returncode == 2
    assert "no ONNX node, ONNX tensor or MIL var is named 'nope', 'other'" in r.stderr
    assert "a model input or a constant): 'x'" in r.stderr
    assert not pkg.exists()


class Cancel(torch.nn.Module):
    """(3x + 1000) - 1000: no overflow, but fp16 keeps 0.5 of resolution
    near 1000, and the cancellation leaves the error against values of
    about 3; tanh shows it at the output."""

    def forward(self, x):
        return torch.tanh((x * 3 + 1000) - 1000)


def test_suggest_fp32_without_overflow(milk, tmp_path):
    torch.manual_seed(3)
    x = torch.randn(2, 64)
    want = export(Cancel(), x, tmp_path / "c.onnx")
    np.save(tmp_path / "x.npy", x.numpy())
    add = mil_name(node_output(tmp_path / "c.onnx", "Add")[0])
    sub = mil_name(node_output(tmp_path / "c.onnx", "Sub")[0])
    r = milk_cmd(milk, "verify", tmp_path / "c.onnx", "--input", f"x={tmp_path / 'x.npy'}",
                 "--suggest-fp32", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    # the sub diverges first; kept in fp32 it still diverges, because its
    # input was rounded to fp16: the add comes next
    assert [s["name"] for s in res["steps"]] == [sub, add]
    assert sorted(res["keep_fp32"].split(",")) == sorted([add, sub])
    plain, mixed = tmp_path / "plain.mlpackage", tmp_path / "mixed.mlpackage"
    convert(milk, tmp_path / "c.onnx", plain)
    assert rel_err(run_y(milk, plain, tmp_path / "x.npy", tmp_path), want) > FP16_TOL
    convert(milk, tmp_path / "c.onnx", mixed, "--keep-fp32", res["keep_fp32"])
    assert rel_err(run_y(milk, mixed, tmp_path / "x.npy", tmp_path), want) < FP16_TOL


def test_suggest_fp32_errors(milk, planted):
    for args, text in [(["--precision", "fp32"], "not with --precision fp32"),
                       (["--keep-fp32", "nope"], "'nope'")]:
        r = milk_cmd(milk, "verify", planted["onnx"], "--suggest-fp32", *args)
        assert r.returncode == 2 and text in r.stderr, (args, r.stderr)
    r = milk_cmd(milk, "verify", planted["dir"] / "none.mlpackage", "--reference", "r.npz",
                 "--suggest-fp32")
    assert r.returncode == 2 and "are for ONNX models" in r.stderr


# ---- rules in the converter: a BigVGAN-style upsampler ----------------------------------


class Upsampler(torch.nn.Module):
    """BigVGAN's upsampling stack, small: ConvTranspose1d (kernel 2s,
    padding s/2), LeakyReLU(0.1), Conv1d(k=7), twice."""

    def __init__(self):
        super().__init__()
        layers = []
        for cin, cout, s in [(32, 16, 4), (16, 8, 2)]:
            layers += [torch.nn.ConvTranspose1d(cin, cout, 2 * s, s, padding=s // 2),
                       torch.nn.LeakyReLU(0.1), torch.nn.Conv1d(cout, cout, 7, padding=3)]
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def upsampler(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("upsampler")
    torch.manual_seed(1)
    x = torch.randn(1, 32, 40)
    want = export(Upsampler(), x, tmp / "u.onnx")
    np.save(tmp / "x.npy", x.numpy())
    return {"onnx": tmp / "u.onnx", "x": tmp / "x.npy", "want": want}


def lint_json(milk, pkg, *args):
    r = milk_cmd(milk, "lint", pkg, "--json", *args)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def test_upsampler_default_is_lint_clean(milk, upsampler, tmp_path):
    pkg = tmp_path / "u.mlpackage"
    log = convert(milk, upsampler["onnx"], pkg)
    assert "compute units all: 2 rewrites, 0 warnings" in log
    assert log.count("fixed    convt1d-bias") == 2 and "rewrite: created expand_dims" in log
    rc, res = lint_json(milk, pkg)
    assert rc == 0 and res["errors"] == 0 and res["warnings"] == 0
    assert [h for h in res["hits"] if h["rule"].startswith("convt")] == []
    assert ops_of(milk, pkg, "conv_transpose") == [("fp16", 4), ("fp16", 4)]
    got = run_y(milk, pkg, upsampler["x"], tmp_path)
    assert rel_err(got, upsampler["want"]) < FP16_TOL


def test_upsampler_cpu_only_stays_1d(milk, upsampler, tmp_path):
    pkg = tmp_path / "u.mlpackage"
    log = convert(milk, upsampler["onnx"], pkg, "--compute-units", "cpu_only")
    assert "compute units cpu_only: 0 rewrites, 0 warnings" in log
    assert ops_of(milk, pkg, "conv_transpose") == [("fp16", 3), ("fp16", 3)]
    rc, _ = lint_json(milk, pkg, "--compute-units", "cpu_only")
    assert rc == 0
    rc, res = lint_json(milk, pkg)  # the Neural Engine would compute it wrongly
    assert rc == 1 and {h["rule"] for h in res["hits"]} == {"convt1d-bias"}
    got = run_y(milk, pkg, upsampler["x"], tmp_path)
    assert rel_err(got, upsampler["want"]) < FP16_TOL


def test_rule_switches(milk, upsampler, tmp_path):
    pkg = tmp_path / "u.mlpackage"
    log = convert(milk, upsampler["onnx"], pkg, "--disable-rule", "convt1d-bias")
    assert "convt1d-bias" not in log and "0 rewrites" in log
    assert ops_of(milk, pkg, "conv_transpose") == [("fp16", 3), ("fp16", 3)]
    rc, res = lint_json(milk, pkg)
    assert rc == 1 and {h["rule"] for h in res["hits"]} == {"convt1d-bias"}
    log = convert(milk, upsampler["onnx"], pkg, "--compute-units", "cpu_only",
                  "--enable-rule", "convt1d-bias")
    assert log.count("fixed    convt1d-bias") == 2
    assert ops_of(milk, pkg, "conv_transpose") == [("fp16", 4), ("fp16", 4)]
    log = convert(milk, upsampler["onnx"], pkg, "--disable-rule", "all")
    assert "0 rewrites, 0 warnings" in log
    got = run_y(milk, pkg, upsampler["x"], tmp_path)
    assert rel_err(got, upsampler["want"]) < FP16_TOL
    for args, text in [(["--enable-rule", "nope"], "unknown rule id 'nope'"),
                       (["--disable-rule", "nope"], "unknown rule id 'nope'"),
                       (["--enable-rule", "all"], "unknown rule id 'all'"),
                       (["--compute-units", "npu"], "--compute-units is all")]:
        r = milk_cmd(milk, "convert", upsampler["onnx"], "-o", tmp_path / "o.mlpackage", *args)
        assert r.returncode == 2 and text in r.stderr, (args, r.stderr)
        assert not (tmp_path / "o.mlpackage").exists()


def test_warning_rules_are_printed(milk, tmp_path):
    """A rule that only warns (fp16-general: exp computed in fp16) is
    printed with the op it concerns; the conversion succeeds."""
    class Exp(torch.nn.Module):
        def forward(self, x):
            return torch.exp(x) * 0.5

    x = torch.randn(2, 8)
    want = export(Exp(), x, tmp_path / "e.onnx")
    np.save(tmp_path / "x.npy", x.numpy())
    exp_out, _ = node_output(tmp_path / "e.onnx", "Exp")
    pkg = tmp_path / "e.mlpackage"
    log = convert(milk, tmp_path / "e.onnx", pkg)
    assert re.search(r"info +fp16-general +op '%s' \(exp\)" % re.escape(mil_name(exp_out)), log)
    assert "0 rewrites, 1 warning" in log
    assert rel_err(run_y(milk, pkg, tmp_path / "x.npy", tmp_path), want) < FP16_TOL


def test_refused_pattern_leaves_no_output(milk, tmp_path):
    """A tensor of rank 6: Core ML refuses it on every compute unit, so the
    conversion fails and writes nothing, unless the rule is disabled."""
    class Rank6(torch.nn.Module):
        def forward(self, x):
            return (x.reshape(1, 2, 3, 4, 5, 6) * 2).reshape(1, 720)
    x = torch.randn(1, 720)
    export(Rank6(), x, tmp_path / "r6.onnx")
    pkg = tmp_path / "r6.mlpackage"
    for units in ("cpu_and_ne", "all", "cpu_only"):
        r = milk_cmd(milk, "convert", tmp_path / "r6.onnx", "-o", pkg, "--compute-units", units)
        assert r.returncode == 2, r.stdout
        assert "Core ML refuses" in r.stderr and f"compute units {units}" in r.stderr
        assert "rank-gt-5" in r.stderr
        assert not pkg.exists() and list(tmp_path.glob("r6.mlpackage*")) == []
    convert(milk, tmp_path / "r6.onnx", pkg, "--disable-rule", "rank-gt-5")
    assert pkg.exists()


def test_long_dimension_is_a_warning(milk, tmp_path):
    """A dimension above 16384 cannot run on the GPU or the Neural Engine:
    Core ML places the op on the CPU, so milk warns (for compute units that
    include them) and converts; the result still matches PyTorch."""
    torch.manual_seed(2)
    x = torch.randn(1, 1, 20000)
    want = export(torch.nn.Conv1d(1, 2, 3, padding=1), x, tmp_path / "long.onnx")
    np.save(tmp_path / "x.npy", x.numpy())
    for units, warned in (("all", True), ("cpu_and_ne", True), ("cpu_only", False)):
        pkg = tmp_path / f"long_{units}.mlpackage"
        r = milk_cmd(milk, "convert", tmp_path / "long.onnx", "-o", pkg, "--compute-units", units)
        assert r.returncode == 0, r.stderr
        assert ("dim-16384" in r.stdout) == warned, r.stdout
        assert rel_err(run_y(milk, pkg, tmp_path / "x.npy", tmp_path), want) < FP16_TOL


def test_identity_ops_are_simplified_away(milk, tmp_path):
    """A Reshape to the shape it already has is removed by the conversion's
    simplification; the ops around it keep their ONNX names."""
    class Same(torch.nn.Module):
        def forward(self, x):
            return torch.relu(torch.sigmoid(x).reshape(2, 8)) * 2

    x = torch.randn(2, 8)
    want = export(Same(), x, tmp_path / "s.onnx")
    np.save(tmp_path / "x.npy", x.numpy())
    sig_out, _ = node_output(tmp_path / "s.onnx", "Sigmoid")
    pkg = tmp_path / "s.mlpackage"
    log = convert(milk, tmp_path / "s.onnx", pkg, "--precision", "fp32")
    assert "1 identity-like ops removed" in log
    assert ops_of(milk, pkg, "reshape") == []
    r = milk_cmd(milk, "run", pkg, "--input", f"x={tmp_path / 'x.npy'}", "--output",
                 tmp_path / "all.npz", "--keep-all")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "all.npz") as z:
        np.testing.assert_allclose(z[mil_name(sig_out)], torch.sigmoid(x).numpy(), rtol=1e-6)
        assert rel_err(z["y"], want) < 1e-6


def test_no_leaks_under_asan(milk_asan, planted, tmp_path):
    """The search, mixed precision and a refusal under ASan and UBSan."""
    runs = [["verify", planted["onnx"], "--input", f"x={planted['x']}", "--suggest-fp32"],
            ["convert", planted["onnx"], "-o", tmp_path / "k.mlpackage",
             "--keep-fp32", f"{planted['up_node']},y"],
            ["convert", planted["onnx"], "-o", tmp_path / "n.mlpackage", "--keep-fp32", "nope"],
            ["convert", tmp_path / "r6.onnx", "-o", tmp_path / "r.mlpackage",
             "--compute-units", "cpu_and_ne", "--disable-rule", "fp16-general"]]

    class Rank6(torch.nn.Module):
        def forward(self, x):
            return (x.reshape(1, 2, 3, 4, 5, 6) * 2).reshape(1, 720)
    export(Rank6(), torch.randn(1, 720), tmp_path / "r6.onnx")
    for args, rc in zip(runs, (0, 0, 2, 2)):
        r = milk_cmd(milk_asan, *args)
        assert r.returncode == rc, r.stderr
        assert "AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
