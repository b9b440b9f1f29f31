"""Compressing weights: `milk compress` and `milk convert --compress`.

A CNN and a transformer block made with PyTorch are converted (iOS16 and
iOS18, fp16 and fp32) and compressed every way milk offers. Each package is
then checked without milk: tests/compress_ref.py reads model.mlmodel and
weight.bin with Google's protobuf and numpy and expands every compressed
weight by coremltools' definitions of the constexpr ops. That expansion
must equal milk's (its interpreter, bit for bit), stay within a stated SNR
of the dense weight, and the model's output within a stated SNR of the
dense model's output. Compression is deterministic, and compressing a
converted package gives the same bytes as converting with --compress.
"""
import json
import subprocess

import numpy as np
import pytest
import torch

from compress_ref import Package

SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error")


def milk_cmd(exe, *args):
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    assert not any(s in r.stderr for s in SANITIZER), r.stderr
    return r


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(8, 32, 3, padding=1)
        self.c2 = torch.nn.Conv2d(32, 64, 3, padding=1)
        self.t = torch.nn.ConvTranspose2d(64, 32, 2, stride=2)
        self.fc = torch.nn.Linear(32 * 16 * 16, 64)
        self.out = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        x = torch.relu(self.t(x))
        return self.out(torch.relu(self.fc(x.flatten(1))))


class Block(torch.nn.Module):
    """Pre-norm transformer block: attention and an MLP."""

    def __init__(self, d=64, heads=4):
        super().__init__()
        self.h, self.d = heads, d
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ff1, self.ff2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2) / (d // self.h) ** 0.5, dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.ff2(torch.nn.functional.gelu(self.ff1(self.ln2(x))))


MODELS = {"cnn": (CNN, (1, 8, 8, 8)), "block": (Block, (1, 16, 64))}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """model name -> (model.onnx, x.npy)."""
    d = tmp_path_factory.mktemp("models")
    out = {}
    for name, (cls, shape) in MODELS.items():
        torch.manual_seed(7)
        m = cls().eval()
        x = torch.randn(*shape)
        onnx = d / f"{name}.onnx"
        torch.onnx.export(m, x, str(onnx), opset_version=17, input_names=["x"],
                          output_names=["y"])
        np.save(d / f"{name}_x.npy", x.numpy())
        out[name] = (onnx, d / f"{name}_x.npy")
    return out


def convert(milk, onnx, out, target, precision, *extra):
    r = milk_cmd(milk, "convert", onnx, "-o", out, "--target", target,
                 "--precision", precision, *extra)
    assert r.returncode == 0, r.stderr
    return r


def run_all(milk, pkg, x, tmp):
    out = tmp / (pkg.name + ".npz")
    r = milk_cmd(milk, "run", pkg, "--input", f"x={x}", "--output", out, "--keep-all",
                 "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        return dict(z)


def snr(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    noise = np.sum((got - want) ** 2)
    return np.inf if noise == 0 else 10 * np.log10(np.sum(want ** 2) / noise)


# spec, extra options, targets, SNR bound (dB) on each weight and on the
# output of both models
CASES = [
    ("int8", [], ["ios16", "ios18"], 40, 40),
    ("uint8", ["--mode", "affine"], ["ios16", "ios18"], 40, 40),
    ("uint8", ["--granularity", "per-tensor"], ["ios16", "ios18"], 30, 30),
    ("int4", ["--granularity", "per-block:32"], ["ios18"], 17, 17),
    ("uint4", ["--mode", "affine", "--granularity", "per-block:16"], ["ios18"], 18, 18),
    ("palette:4", [], ["ios16", "ios18"], 20, 20),
    ("palette:4", ["--mode", "uniform"], ["ios16", "ios18"], 17, 17),
    ("palette:3", ["--granularity", "per-grouped-channel:16"], ["ios18"], 14, 14),
    ("palette:8", [], ["ios16", "ios18"], 40, 40),
    ("palette:2", [], ["ios16", "ios18"], 8, 8),
    ("prune:0.5", [], ["ios16", "ios18"], 5, 3),
    ("prune:2:4", [], ["ios16", "ios18"], 4, 2),
    ("prune:0.5+palette:4", [], ["ios18"], 5, 3),
    ("prune:0.3+int8", [], ["ios18"], 8, 5),
    ("palette:4+int8", ["--granularity", "per-grouped-channel:8"], ["ios18"], 20, 20),
]
PARAMS = [(m, s, list(e), t, p, wb, ob)
          for s, e, targets, wb, ob in CASES for t in targets
          for p in ("fp32", "fp16") for m in MODELS]


@pytest.mark.parametrize("model,spec,extra,target,precision,wbound,obound", PARAMS,
                         ids=[f"{p[0]}-{p[1]}{''.join(p[2])}-{p[3]}-{p[4]}" for p in PARAMS])
def test_compress(milk, models, tmp_path, model, spec, extra, target, precision, wbound,
                  obound):
    onnx, x = models[model]
    dense = tmp_path / "dense.mlpackage"
    comp = tmp_path / "comp.mlpackage"
    convert(milk, onnx, dense, target, precision)
    r = convert(milk, onnx, comp, target, precision, "--compress", spec, *extra, "--report")
    assert "compressed:" in r.stdout
    # what the package holds, expanded without milk
    pkg = Package(comp)
    ref = pkg.decompress()
    dense_w = Package(dense).consts()
    final = {k: v for k, v in ref.items() if k in dense_w}
    assert final, r.stdout
    ours = run_all(milk, comp, x, tmp_path)
    want = run_all(milk, dense, x, tmp_path)
    for name, w in final.items():
        assert w.dtype == dense_w[name].dtype and w.shape == dense_w[name].shape
        assert np.array_equal(ours[name].astype(w.dtype).view(np.uint8),
                              np.ascontiguousarray(w).view(np.uint8)), name
        assert snr(w, dense_w[name]) >= wbound, (name, snr(w, dense_w[name]))
    assert snr(ours["y"], want["y"]) >= obound, snr(ours["y"], want["y"])
    # the report's error is the weight's
    row = next(line for line in r.stdout.splitlines() if line.strip().startswith(
        next(iter(final))))
    assert ("exact" in row or "dB" in r.stdout), row


def test_ops_by_target(milk, models, tmp_path):
    onnx, _ = models["cnn"]
    forms = {("int8", "ios16"): {"constexpr_affine_dequantize"},
             ("int8", "ios18"): {"constexpr_blockwise_shift_scale"},
             ("palette:4", "ios16"): {"constexpr_lut_to_dense"},
             ("prune:0.5", "ios17"): {"constexpr_sparse_to_dense"},
             ("prune:0.5+palette:4", "ios18"): {"constexpr_lut_to_sparse",
                                                "constexpr_sparse_to_dense"},
             ("prune:0.5+int8", "ios18"): {"constexpr_sparse_blockwise_shift_scale",
                                           "constexpr_sparse_to_dense"},
             ("palette:4+int8", "ios18"): {"constexpr_blockwise_shift_scale",
                                           "constexpr_lut_to_dense"}}
    for (spec, target), ops in forms.items():
        out = tmp_path / f"{spec}-{target}.mlpackage".replace(":", "_")
        convert(milk, onnx, out, target, "fp16", "--compress", spec)
        used = {t for t in Package(out).op_types() if t.startswith("constexpr_")}
        assert used == ops, (spec, target, used)


def test_deterministic_and_same_as_convert(milk, models, tmp_path):
    """Compressing twice gives the same bytes; compressing a converted
    package gives what converting with --compress gives."""
    onnx, _ = models["block"]
    for spec in ("palette:4", "int4", "prune:0.5+palette:3"):
        a, b, dense, c = (tmp_path / f"{n}.mlpackage" for n in "abdc")
        convert(milk, onnx, a, "ios18", "fp16", "--compress", spec, "--seed", "3")
        convert(milk, onnx, b, "ios18", "fp16", "--compress", spec, "--seed", "3")
        convert(milk, onnx, dense, "ios18", "fp16")
        r = milk_cmd(milk, "compress", dense, "-o", c, spec, "--seed", "3")
        assert r.returncode == 0, r.stderr
        wa, wb, wc = ((p / "Data/com.apple.CoreML/weights/weight.bin").read_bytes()
                      for p in (a, b, c))
        assert wa == wb and wa == wc, spec
        assert Package(a).model == Package(c).model


def test_filters_and_min_size(milk, models, tmp_path):
    onnx, _ = models["cnn"]
    dense = tmp_path / "d.mlpackage"
    convert(milk, onnx, dense, "ios18", "fp32")
    names = [n for n, v in Package(dense).consts().items() if v.ndim >= 2 and v.size > 2048]
    # only the weights of linear ops
    out = tmp_path / "lin.mlpackage"
    r = milk_cmd(milk, "compress", dense, "-o", out, "int8", "--op-types", "linear",
                 "--report")
    assert r.returncode == 0, r.stderr
    comp = {o.outputs[0].name for o in Package(out).ops if o.type.startswith("constexpr_")}
    readers = {}
    for op in Package(dense).ops:
        for arg in op.inputs.values():
            for b in arg.arguments:
                readers.setdefault(b.name, set()).add(op.type)
    assert comp == {n for n in names if readers[n] == {"linear"}}
    assert "not among the op types given" in r.stdout
    # by name
    out = tmp_path / "one.mlpackage"
    r = milk_cmd(milk, "compress", dense, "-o", out, "int8", "--op-names", names[0])
    assert r.returncode == 0, r.stderr
    comp = {o.outputs[0].name for o in Package(out).ops if o.type.startswith("constexpr_")}
    assert comp == {names[0]}
    # nothing below the minimum size
    out = tmp_path / "big.mlpackage"
    r = milk_cmd(milk, "compress", dense, "-o", out, "int8", "--min-size", "10000000")
    assert r.returncode == 0 and "0 weights" in r.stdout, r.stdout


def test_report(milk, models, tmp_path):
    onnx, x = models["cnn"]
    out = tmp_path / "c.mlpackage"
    r = convert(milk, onnx, out, "ios18", "fp32", "--compress", "int8", "--report")
    lines = r.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if "SNR dB" in line)
    assert "PSNR dB" in lines[head] and "before" in lines[head] and "after" in lines[head]
    ref = Package(out).decompress()
    dense = tmp_path / "d.mlpackage"
    convert(milk, onnx, dense, "ios18", "fp32")
    dw = Package(dense).consts()
    rows = [line.split() for line in lines[head + 1:] if line.strip() and
            line.split()[0] in dw and "dense:" not in line]
    assert rows
    for row in rows:
        name = row[0]
        got = snr(ref[name], dw[name])
        snr_col = float(row[row.index("int8") - 2])  # ... max err, SNR, PSNR, how
        assert abs(snr_col - got) < 0.06, (name, snr_col, got)


BAD = [
    (["int4"], "ios17", "4-bit quantization (constexpr_blockwise_shift_scale): needs "
                        "target ios18 or later; the program's is ios17"),
    (["palette:3"], "ios16", "3-bit LUTs"),
    (["palette:4", "--granularity", "per-grouped-channel:4"], "ios17", "needs target ios18"),
    (["prune:0.5+palette:4"], "ios16", "needs target ios18"),
    (["palette:4+int8"], "ios17", "int8 LUTs"),
    (["int8"], "ios15", "needs target ios16 or later"),
    (["palette:5"], "ios18", "LUTs have 1, 2, 3, 4, 6 or 8 bits"),
    (["prune:1.5"], "ios18", "prune:F takes the fraction"),
    (["int3"], "ios18", "unknown item 'int3'"),
    (["int8", "--mode", "kmeans"], "ios18", "--mode kmeans"),
    (["palette:4", "--granularity", "per-block:32"], "ios18", "per-block granularity is "
                                                              "for quantization"),
    (["int8", "--granularity", "per-block:0"], "ios18", "--granularity"),
]


@pytest.mark.parametrize("args,target,msg", BAD, ids=[" ".join(b[0]) + b[1] for b in BAD])
def test_bad_requests(milk, models, tmp_path, args, target, msg):
    onnx, _ = models["cnn"]
    dense = tmp_path / "d.mlpackage"
    convert(milk, onnx, dense, target, "fp32")
    out = tmp_path / "o.mlpackage"
    r = milk_cmd(milk, "compress", dense, "-o", out, *args)
    assert r.returncode == 2 and msg in r.stderr, r.stderr
    assert not out.exists()
    r = milk_cmd(milk, "convert", onnx, "-o", out, "--target", target, "--compress", *args)
    assert r.returncode == 2 and msg in r.stderr, r.stderr
    assert not out.exists()


def test_skips_what_does_not_fit(milk, models, tmp_path):
    """A block size that does not divide the input channels leaves the
    weight dense and says why, as coremltools does."""
    onnx, _ = models["cnn"]
    out = tmp_path / "o.mlpackage"
    r = convert(milk, onnx, out, "ios18", "fp32", "--compress", "int4", "--granularity",
                "per-block:48", "--report")
    assert "block size 48 does not divide the input axis" in r.stdout


def test_asan_compress(milk_asan, models, tmp_path):
    """Every generator, under the sanitizers."""
    onnx, x = models["block"]
    for spec in ("int4", "palette:3", "prune:2:4+palette:2", "prune:0.5+uint4",
                 "palette:6+int8"):
        out = tmp_path / "o.mlpackage"
        r = milk_cmd(milk_asan, "convert", onnx, "-o", out, "--target", "ios18",
                     "--compress", spec, "--granularity",
                     "per-grouped-channel:16" if "palette" in spec else "per-block:16",
                     "--report")
        assert r.returncode == 0, r.stderr
        r = milk_cmd(milk_asan, "run", out, "--input", f"x={x}", "--output",
                     tmp_path / "o.npz")
        assert r.returncode == 0, r.stderr
