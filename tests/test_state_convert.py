"""milk convert --state IN=OUT: ONNX decoders with a static KV cache (the
cache an input, the updated cache an output) become stateful Core ML
programs. A tiny GPT-style decoder written in PyTorch (tests/gpt_decoder.py,
buffers updated in place at a position input) is exported to ONNX,
converted with its four caches as states, and run for 32 decode steps in
milk: its logits match PyTorch's step by step (fp32 conversion 1e-4, fp16
2e-2, relative to the largest logit), and so do its caches. A prefill and a
decode conversion merged into one package share their weights and their
states. The three ways an export writes a cache (ScatterND, ScatterElements,
Slice and Concat) each become slice_update, checked against NumPy; the
errors name what is wrong."""
import json
import pathlib
import subprocess

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from gpt_decoder import GPT, export

STEPS = 32


def run(*args, ok=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def states(pairs):
    return [a for p in pairs for a in ("--state", p)]


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    """The model, its decode (T=1) and prefill (T=4) exports, and PyTorch's
    logits for 32 decode steps of random tokens from empty caches."""
    d = tmp_path_factory.mktemp("gpt")
    torch.manual_seed(0)
    g = GPT().eval()
    pairs = export(g, d / "decode.onnx", 1)
    export(g, d / "prefill.onnx", 4)
    toks = np.random.RandomState(1).randint(0, 64, STEPS)
    want = []
    with torch.no_grad():
        for p in range(STEPS):
            want.append(g(torch.tensor([[toks[p]]]), torch.tensor([p])).numpy())
    caches = {n: getattr(g, n).numpy().copy() for n in g.cache_names()}
    ins = {}
    for p in range(STEPS):
        ins[f"tok@{p}"] = np.array([[toks[p]]], np.int64)
        ins[f"pos@{p}"] = np.array([p], np.int64)
    np.savez(d / "inputs.npz", **ins)
    return {"dir": d, "model": g, "pairs": pairs, "toks": toks, "want": want,
            "caches": caches}


def rel(got, want):
    return np.abs(got.astype(np.float32) - want).max() / np.abs(want).max()


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-4), ("fp16", 2e-2)])
def test_gpt_32_decode_steps(milk, milk_asan, gpt, tmp_path, precision, tol):
    d = gpt["dir"]
    pkg = tmp_path / "gpt.mlpackage"
    r = run(milk_asan, "convert", d / "decode.onnx", "-o", pkg, "--target", "ios18",
            "--precision", precision, *states(gpt["pairs"]))
    assert "states: k0_in=k0_out (ScatterND as slice_update), v0_in=v0_out" in r.stdout
    text = run(milk, "dump", pkg).stdout
    assert text.count("= read_state(") == 4 and text.count("write_state(") == 4
    assert text.count("= slice_update(") == 4
    import Model_pb2
    m = Model_pb2.Model()
    m.ParseFromString((pkg / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    assert [s.name for s in m.description.state] == ["k0_in", "v0_in", "k1_in", "v1_in"]
    assert [o.name for o in m.description.output] == ["logits"]
    out = tmp_path / "out.npz"
    run(milk, "run", pkg, "--inputs", d / "inputs.npz", "--steps", STEPS, "--output", out,
        "--state-out", tmp_path / "kv.npz")
    with np.load(out) as o:
        errs = [rel(o[f"logits@{p}"], gpt["want"][p]) for p in range(STEPS)]
    assert max(errs) < tol, errs
    # the caches after 32 steps: PyTorch's buffers, as fp16 states hold them
    # (the state-align32 rewrite padded the head dim 16 to 32 with zeros)
    with np.load(tmp_path / "kv.npz") as kv:
        for n, want in gpt["caches"].items():
            got = kv[f"{n}_in"].astype(np.float32)
            assert got.shape == (1, 2, 32, 32) and not got[..., 16:].any()
            assert np.abs(got[..., :16] - want).max() <= (2e-2 if precision == "fp16" else 2e-3) * np.abs(want).max()


def test_gpt_verify_steps(milk, gpt, tmp_path):
    """milk verify --steps against PyTorch's logits of every step."""
    d = gpt["dir"]
    pkg = tmp_path / "gpt.mlpackage"
    run(milk, "convert", d / "decode.onnx", "-o", pkg, "--target", "ios18", "--precision",
        "fp32", *states(gpt["pairs"]))
    with np.load(d / "inputs.npz") as z:
        ref = {k: z[k] for k in z.files}
    for p in range(STEPS):
        ref[f"logits@{p}"] = gpt["want"][p]
    np.savez(tmp_path / "ref.npz", **ref)
    r = run(milk, "verify", pkg, "--reference", tmp_path / "ref.npz", "--steps", STEPS,
            "--rtol", "1e-4", "--atol", "1e-5", "--json")
    j = json.loads(r.stdout)
    assert j["ok"] and len(j["rows"]) == STEPS


def test_prefill_decode_merged(milk, gpt, tmp_path):
    """Prefill (4 tokens at once) and decode converted apart, merged: the
    weights once, the states shared; prefill then 4 decode steps, carried
    by --state-out/--state-in, match PyTorch."""
    d = gpt["dir"]
    for name in ("prefill", "decode"):
        run(milk, "convert", d / f"{name}.onnx", "-o", tmp_path / f"{name}.mlpackage",
            "--target", "ios18", "--precision", "fp32", *states(gpt["pairs"]))
    merged = tmp_path / "llm.mlpackage"
    run(milk, "merge", tmp_path / "prefill.mlpackage", tmp_path / "decode.mlpackage",
        "-o", merged, "--default", "decode")
    size = lambda p: (p / "Data/com.apple.CoreML/weights/weight.bin").stat().st_size
    a, b = size(tmp_path / "prefill.mlpackage"), size(tmp_path / "decode.mlpackage")
    # the weights once: no larger than either source (equal constants
    # inside one function are merged too), about half of both
    assert a > 100_000 and b > 100_000
    assert size(merged) <= min(a, b) and size(merged) < 0.55 * (a + b), (size(merged), a, b)
    toks = np.random.RandomState(5).randint(0, 64, 8)
    g = GPT().eval()
    g.load_state_dict(gpt["model"].state_dict())
    for n in g.cache_names():
        getattr(g, n).zero_()
    with torch.no_grad():
        want = [g(torch.tensor([toks[:4]]), torch.tensor([0])).numpy()]
        for p in range(4, 8):
            want.append(g(torch.tensor([[toks[p]]]), torch.tensor([p])).numpy())
    np.save(tmp_path / "tok.npy", toks[None, :4].astype(np.int64))
    np.save(tmp_path / "pos.npy", np.array([0], np.int64))
    run(milk, "run", merged, "--function", "prefill", "--input", f"tok={tmp_path / 'tok.npy'}",
        "--input", f"pos={tmp_path / 'pos.npy'}", "--output", tmp_path / "p.npz",
        "--state-out", tmp_path / "kv.npz")
    with np.load(tmp_path / "p.npz") as o:
        assert rel(o["logits"], want[0]) < 1e-4
    np.savez(tmp_path / "dec.npz", **{k: v for p in range(4) for k, v in
                                     ((f"tok@{p}", toks[None, 4 + p:5 + p].astype(np.int64)),
                                      (f"pos@{p}", np.array([4 + p], np.int64)))})
    run(milk, "run", merged, "--inputs", tmp_path / "dec.npz", "--steps", 4, "--state-in",
        tmp_path / "kv.npz", "--output", tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz") as o:
        for p in range(4):
            assert rel(o[f"logits@{p}"], want[1 + p]) < 1e-4


# ---- the three writes, against NumPy ------------------------------------------

H, S, D = 2, 8, 4


class Write(torch.nn.Module):
    """y = sum over positions of the cache with x written at pos."""

    def __init__(self, how):
        super().__init__()
        self.how = how

    def forward(self, x, pos, cache):
        if self.how == "scatter_nd":
            cache = cache.clone()
            cache[:, :, pos] = x
        elif self.how == "scatter_elements":
            cache = cache.scatter(2, pos.view(1, 1, 1, 1).expand(1, H, 1, D), x)
        else:
            cache = torch.cat([cache[:, :, :pos[0]], x, cache[:, :, pos[0] + 1:]], 2)
        return cache.sum(2) * 2, cache


@pytest.mark.parametrize("how,op", [("scatter_nd", "ScatterND"),
                                    ("scatter_elements", "ScatterElements"),
                                    ("slice_concat", "Slice and Concat")])
def test_cache_writes(milk_asan, milk, tmp_path, how, op):
    path = tmp_path / f"{how}.onnx"
    torch.onnx.export(Write(how), (torch.zeros(1, H, 1, D), torch.tensor([0]),
                                   torch.zeros(1, H, S, D)), str(path),
                      input_names=["x", "pos", "cache"], output_names=["y", "new"],
                      opset_version=17)
    pkg = tmp_path / "w.mlpackage"
    r = run(milk_asan, "convert", path, "-o", pkg, "--target", "ios18", "--precision", "fp32",
            "--state", "cache=new", "--compute-units", "cpu_only")
    assert f"cache=new ({op} as slice_update)" in r.stdout
    rng = np.random.RandomState(3)
    order = [3, 0, 7, 3, 5]
    xs = [rng.standard_normal((1, H, 1, D)).astype(np.float16).astype(np.float32)
          for _ in order]
    np.savez(tmp_path / "in.npz", **{k: v for i, p in enumerate(order) for k, v in
                                    ((f"x@{i}", xs[i]), (f"pos@{i}", np.array([p], np.int64)))})
    run(milk, "run", pkg, "--inputs", tmp_path / "in.npz", "--steps", len(order),
        "--output", tmp_path / "o.npz")
    cache = np.zeros((1, H, S, D), np.float32)
    with np.load(tmp_path / "o.npz") as o:
        for i, p in enumerate(order):
            cache[:, :, p] = xs[i][:, :, 0]
            assert np.array_equal(o[f"cache@{i}"].astype(np.float32), cache)
            assert np.abs(o[f"y@{i}"] - cache.sum(2) * 2).max() < 1e-5


def test_whole_write(milk, tmp_path):
    """A cache computed otherwise (here a Where on a one-hot mask) needs no
    rewrite: the state takes the output's value."""
    g = helper.make_graph(
        [helper.make_node("Range", ["zero", "len", "one"], ["r"]),
         helper.make_node("Equal", ["r", "pos"], ["hot"]),
         helper.make_node("Unsqueeze", ["hot", "ax"], ["hot2"]),
         helper.make_node("Where", ["hot2", "x", "cache"], ["new"]),
         helper.make_node("ReduceSum", ["new", "ax0"], ["y"], keepdims=0)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, D]),
         helper.make_tensor_value_info("pos", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("cache", TensorProto.FLOAT, [S, D])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [D]),
         helper.make_tensor_value_info("new", TensorProto.FLOAT, [S, D])],
        [helper.make_tensor("zero", TensorProto.INT64, [], [0]),
         helper.make_tensor("len", TensorProto.INT64, [], [S]),
         helper.make_tensor("one", TensorProto.INT64, [], [1]),
         helper.make_tensor("ax", TensorProto.INT64, [1], [1]),
         helper.make_tensor("ax0", TensorProto.INT64, [1], [0])])
    path = tmp_path / "where.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    pkg = tmp_path / "w.mlpackage"
    r = run(milk, "convert", path, "-o", pkg, "--target", "ios18", "--precision", "fp32",
            "--state", "cache=new", "--compute-units", "cpu_only")
    assert "cache=new (written whole)" in r.stdout
    xs = [np.full((1, D), v, np.float32) for v in (1.5, -2, 4)]
    np.savez(tmp_path / "in.npz", **{k: v for i, p in enumerate((2, 5, 2)) for k, v in
                                    ((f"x@{i}", xs[i]), (f"pos@{i}", np.array([p], np.int64)))})
    run(milk, "run", pkg, "--inputs", tmp_path / "in.npz", "--steps", 3, "--output", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as o:
        assert np.allclose(o["y@0"], 1.5) and np.allclose(o["y@1"], -0.5)
        assert np.allclose(o["y@2"], 2)  # position 2 rewritten: 4 - 2


# ---- errors -----------------------------------------------------------------

def graph(nodes, inputs, outputs, inits=(), path=None):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def vi(name, t, shape):
    return helper.make_tensor_value_info(name, t, shape)


def test_errors(milk, gpt, tmp_path):
    d = gpt["dir"]
    out = tmp_path / "x.mlpackage"
    cases = []
    # a pairing whose shapes differ
    cases.append(([d / "decode.onnx", "--state", "k0_in=logits"],
                  "--state k0_in=logits: input 'k0_in' is FLOAT [1, 2, 32, 16], output "
                  "'logits' is FLOAT [1, 1, 64]: a state is one tensor read and written, "
                  "so the pair must have the same shape and type"))
    # an integer "cache"
    cases.append(([d / "decode.onnx", "--state", "pos=logits"],
                  "--state pos=logits: 'pos' is int32: Core ML states are fp16"))
    cases.append(([d / "decode.onnx", "--state", "kv=k0_out"],
                  "--state kv=k0_out: 'kv' is not a graph input"))
    cases.append(([d / "decode.onnx", "--state", "k0_in=k0_out", "--state", "k0_in=v0_out"],
                  "'k0_in' is already paired"))
    cases.append(([d / "decode.onnx", "--state", "k0_in=k0_out", "--target", "ios17"],
                  "--state: Core ML states need deployment target iOS18"))
    # a growing cache: present = Concat(past, new)
    grow = graph([helper.make_node("Concat", ["past", "new"], ["present"], axis=1),
                  helper.make_node("ReduceSum", ["present"], ["y"], keepdims=0)],
                 [vi("past", TensorProto.FLOAT, [1, "t", 4]), vi("new", TensorProto.FLOAT, [1, 1, 4])],
                 [vi("y", TensorProto.FLOAT, []), vi("present", TensorProto.FLOAT, [1, "t1", 4])],
                 path=tmp_path / "grow.onnx")
    cases.append(([grow, "--state", "past=present", "--input-shape", "past=1,7,4"],
                  "--state past=present: 'present' is Concat('past', 'new') along axis 1: "
                  "a growing cache, one longer at every step"))
    # ScatterND writing two positions apart: not one block
    gap = graph([helper.make_node("Add", ["pos", "two"], ["pos2"]),
                 helper.make_node("Concat", ["pos", "pos2"], ["idx1"], axis=0),
                 helper.make_node("Unsqueeze", ["idx1", "ax"], ["idx"]),
                 helper.make_node("ScatterND", ["cache", "idx", "x"], ["new"]),
                 helper.make_node("ReduceSum", ["new"], ["y"], keepdims=0)],
                [vi("x", TensorProto.FLOAT, [2, 4]), vi("pos", TensorProto.INT64, [1]),
                 vi("cache", TensorProto.FLOAT, [8, 4])],
                [vi("y", TensorProto.FLOAT, []), vi("new", TensorProto.FLOAT, [8, 4])],
                [helper.make_tensor("two", TensorProto.INT64, [1], [2]),
                 helper.make_tensor("ax", TensorProto.INT64, [1], [1])],
                path=tmp_path / "gap.onnx")
    cases.append(([gap, "--state", "cache=new"],
                  "ScatterND node '' at position 0: its indices do not fill a block; milk "
                  "writes a state with slice_update"))
    # indices given as an input: nothing to prove them by
    given = graph([helper.make_node("ScatterND", ["cache", "idx", "x"], ["new"]),
                   helper.make_node("ReduceSum", ["new"], ["y"], keepdims=0)],
                  [vi("x", TensorProto.FLOAT, [1, 4]), vi("idx", TensorProto.INT64, [1, 1]),
                   vi("cache", TensorProto.FLOAT, [8, 4])],
                  [vi("y", TensorProto.FLOAT, []), vi("new", TensorProto.FLOAT, [8, 4])],
                  path=tmp_path / "given.onnx")
    cases.append(([given, "--state", "cache=new"], "are the graph input 'idx'"))
    for args, msg in cases:
        target = [] if "--target" in args else ["--target", "ios18"]
        r = run(milk, "convert", *args, "-o", out, *target, ok=False)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert msg in r.stderr, (msg, r.stderr)
        assert not out.exists()
