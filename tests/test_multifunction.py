"""milk merge: several packages into one multifunction package whose
functions share their weights. A prefill and a decode version of one
PyTorch model (same weights, other sequence lengths), exported to ONNX and
converted by milk, merge into a package whose weight.bin holds the weights
once; each function computes what its source package computes, and both
match PyTorch."""
import pathlib
import subprocess

import numpy as np
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "coremltools2"


def run(*args, ok=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(64, 256)
        self.down = torch.nn.Linear(256, 64)
        self.norm = torch.nn.LayerNorm(64)

    def forward(self, x):
        return self.norm(x + self.down(torch.nn.functional.gelu(self.up(x))))


@pytest.fixture(scope="module")
def pair(tmp_path_factory, milk):
    """prefill.mlpackage (length 8) and decode.mlpackage (length 1), fp32."""
    d = tmp_path_factory.mktemp("mf")
    torch.manual_seed(7)
    m = Block().eval()
    out = {}
    for name, t in (("prefill", 8), ("decode", 1)):
        x = torch.randn(1, t, 64)
        torch.onnx.export(m, (x,), str(d / f"{name}.onnx"), input_names=["x"],
                          output_names=["y"], opset_version=17)
        run(milk, "convert", d / f"{name}.onnx", "-o", d / f"{name}.mlpackage",
            "--precision", "fp32", "--target", "ios18")
        np.save(d / f"x_{name}.npy", x.numpy())
        out[name] = m(x).detach().numpy()
    return d, out


def weights(pkg):
    f = pkg / "Data/com.apple.CoreML/weights/weight.bin"
    return f.stat().st_size if f.exists() else 0


def test_merge_shares_weights(milk_asan, milk, pair, tmp_path):
    d, want = pair
    out = tmp_path / "both.mlpackage"
    r = run(milk_asan, "merge", d / "prefill.mlpackage", d / "decode.mlpackage", "-o", out,
            "--default", "decode")
    assert "2 functions (default 'decode', target ios18)" in r.stdout
    one, merged = weights(d / "prefill.mlpackage"), weights(out)
    assert weights(d / "decode.mlpackage") == one > 100_000  # 64x256 and 256x64 fp32
    # the weights once (plus nothing but the small consts), not twice
    assert merged == one, (merged, one)
    text = run(milk, "dump", out).stdout
    assert "func prefill<ios18>(tensor<fp32, [1, 8, 64]> x)" in text
    assert "func decode<ios18>(tensor<fp32, [1, 1, 64]> x)" in text
    for fn in ("prefill", "decode"):
        src = tmp_path / f"{fn}_src.npz"
        got = tmp_path / f"{fn}_merged.npz"
        run(milk, "run", d / f"{fn}.mlpackage", "--input", f"x={d / f'x_{fn}.npy'}",
            "--output", src)
        run(milk, "run", out, "--function", fn, "--input", f"x={d / f'x_{fn}.npy'}",
            "--output", got)
        with np.load(src) as a, np.load(got) as b:
            assert np.array_equal(a["y"], b["y"])
            assert np.abs(b["y"] - want[fn]).max() < 1e-4
    # the default function runs without --function
    run(milk, "run", out, "--input", f"x={d / 'x_decode.npy'}", "--output", tmp_path / "d.npz")
    # and reading the merged package back gives the same description
    import Model_pb2
    m = Model_pb2.Model()
    m.ParseFromString((out / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    assert m.specificationVersion == 9
    assert [f.name for f in m.description.functions] == ["prefill", "decode"]
    assert m.description.defaultFunctionName == "decode"
    assert not m.description.input and not m.description.output
    assert sorted(m.mlProgram.functions) == ["decode", "prefill"]


def test_merge_function_names(milk, pair, tmp_path):
    """--function NAME=PKG[:FN] names what it takes; a function of a
    multifunction package by its name; clashes and unknown names fail."""
    d, _ = pair
    out = tmp_path / "named.mlpackage"
    run(milk, "merge", "--function", f"step={d / 'decode.mlpackage'}",
        "--function", f"emb={FIX / 'mf_two_heads' / 'model.mlpackage'}:embed", "-o", out)
    text = run(milk, "dump", out).stdout
    assert "func step<ios18>(" in text and "func emb<ios18>(" in text
    r = run(milk, "merge", d / "decode.mlpackage", d / "decode.mlpackage", "-o",
            tmp_path / "x.mlpackage", ok=False)
    assert r.returncode == 2 and "function 'decode' already exists" in r.stderr
    assert not (tmp_path / "x.mlpackage").exists()
    r = run(milk, "merge", "--function", f"a={FIX / 'mf_seqlen' / 'model.mlpackage'}:len4",
            "-o", tmp_path / "x.mlpackage", ok=False)
    assert "no function 'len4' (the program's functions: 'len16', 'len8'" in r.stderr
    r = run(milk, "merge", d / "decode.mlpackage", "--default", "nope", "-o",
            tmp_path / "x.mlpackage", ok=False)
    assert "no function 'nope' to make the default" in r.stderr


def test_merge_keeps_coremltools_sharing(milk, tmp_path):
    """Merging coremltools' own multifunction package with itself under
    new names keeps one copy of the shared backbone."""
    pkg = FIX / "mf_two_heads" / "model.mlpackage"
    out = tmp_path / "m.mlpackage"
    run(milk, "merge", "--function", f"a={pkg}:main", "--function", f"b={pkg}:embed",
        "--function", f"c={pkg}:main", "-o", out)
    assert weights(out) == weights(pkg)
