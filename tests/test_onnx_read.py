"""milk's ONNX reader (src/onnx/read_*.c) against Python's onnx package.

The helper tests/tools/onnx_summary.c, built with ASan and UBSan, prints
what milk parsed from each .onnx file as one line of JSON: opsets, graph
inputs/outputs/value_info with shapes, nodes with their inputs, outputs and
attributes, initializers with dtype, dims and the CRC-32 of their bytes read
back through milk_onnx_tensor_read(). This test builds the same summary
from onnx.load() of the same file and requires them to be equal, for the
coremltools fixtures, every ONNX node conformance model, a torchvision
resnet18 exported at test time, and models saved with external data (whose
recorded file ranges must hold the tensors' bytes). Then it damages files
(truncations, byte flips, hostile external data locations, absurd dims):
each must load or fail with a message naming the file, with no sanitizer
report."""
import json
import os
import pathlib
import random
import struct
import subprocess
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("MILK_BUILD", ROOT / "build"))
HELPER = BUILD / "asan" / "tools" / "onnx_summary"
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "coremltools").glob("*/model.onnx"))
NODE_TESTS = sorted(pathlib.Path("/usr/share/libonnx-testdata/data/node").glob("*/model.onnx"))

# Sanitizer exits get their own codes so that they cannot pass for the
# helper's ordinary error exit (1).
ENV = dict(os.environ,
           ASAN_OPTIONS="detect_leaks=1:exitcode=99",
           UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer")


def run_helper(paths):
    """Run the helper on paths: (exit status, {path: summary}, stderr)."""
    assert HELPER.exists(), f"{HELPER} is missing: run make pytest"
    proc = subprocess.run([str(HELPER)] + [str(p) for p in paths],
                          capture_output=True, env=ENV, timeout=600)
    err = proc.stderr.decode("latin-1")  # bytes as code points, as in the JSON
    for mark in SANITIZER_MARKS:
        assert mark not in err, err[-4000:]
    assert proc.returncode in (0, 1), f"exit {proc.returncode}: {err[-4000:]}"
    out = {}
    for line in proc.stdout.decode().splitlines():
        d = json.loads(line)
        out[d.pop("file")] = d
    assert sorted(out) == sorted(set(str(p) for p in paths))
    return proc.returncode, out, err


# ---- the summary, from Python's onnx ----------------------------------------------

def latin(s):
    """A string as the helper prints it: its UTF-8 bytes as code points."""
    return s.encode("utf-8").decode("latin-1")


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


# Types stored one per int32_data entry, and their little-endian layout.
# (float16 and bfloat16 entries hold the bit patterns: ONNX IR spec.)
INT32_DATA = {TensorProto.INT32: "<i4", TensorProto.INT16: "<i2",
              TensorProto.INT8: "i1", TensorProto.UINT16: "<u2",
              TensorProto.UINT8: "u1", TensorProto.FLOAT16: "<u2",
              TensorProto.BFLOAT16: "<u2"}


def tensor_bytes(t):
    """The tensor's elements as little-endian bytes of its type, from the
    fields onnx parsed: raw_data as is, else the typed field."""
    dt = t.data_type
    if t.HasField("raw_data"):
        return t.raw_data
    if dt in (TensorProto.FLOAT, TensorProto.COMPLEX64):
        return np.array(t.float_data, "<f4").tobytes()
    if dt in (TensorProto.DOUBLE, TensorProto.COMPLEX128):
        return np.array(t.double_data, "<f8").tobytes()
    if dt == TensorProto.INT64:
        return np.array(t.int64_data, "<i8").tobytes()
    if dt in (TensorProto.UINT32, TensorProto.UINT64):
        width = "<u4" if dt == TensorProto.UINT32 else "<u8"
        return np.array(t.uint64_data, np.uint64).astype(width).tobytes()
    if dt == TensorProto.BOOL:
        return (np.array(t.int32_data, np.int64) != 0).astype("u1").tobytes()
    if dt in INT32_DATA:
        return np.array(t.int32_data, np.int64).astype(INT32_DATA[dt]).tobytes()
    raise AssertionError(f"tensor '{t.name}': no expectation for type {dt}")


def tensor_summary(t):
    d = {"name": latin(t.name), "dtype": t.data_type, "dims": list(t.dims),
         "count": int(np.prod(list(t.dims), dtype=np.int64))}
    if t.data_type == TensorProto.STRING:
        d["strings"] = [s.hex() for s in t.string_data]
        return d
    data = tensor_bytes(t)
    d["nbytes"] = len(data)
    d["crc"] = zlib.crc32(data)
    return d


def attr_type(a):
    """a.type, or for files without one (IR version 1) the type of the
    field present, as onnx.proto says to do; lists first, then scalars."""
    if a.type != onnx.AttributeProto.UNDEFINED:
        return a.type
    A = onnx.AttributeProto
    for present, t in ((a.floats, A.FLOATS), (a.ints, A.INTS),
                       (a.strings, A.STRINGS), (a.tensors, A.TENSORS),
                       (a.HasField("f"), A.FLOAT), (a.HasField("i"), A.INT),
                       (a.HasField("s"), A.STRING), (a.HasField("t"), A.TENSOR),
                       (a.HasField("g") or a.graphs, A.GRAPH)):
        if present:
            return t
    return A.UNDEFINED


def attr_summary(a):
    A = onnx.AttributeProto
    d = {"name": latin(a.name), "type": attr_type(a)}
    if d["type"] == A.FLOAT:
        d["f"] = f32_bits(a.f)
    elif d["type"] == A.INT:
        d["i"] = a.i
    elif d["type"] == A.STRING:
        d["s"] = a.s.hex()
    elif d["type"] == A.TENSOR:
        d["t"] = tensor_summary(a.t) if a.HasField("t") else None
    elif d["type"] == A.FLOATS:
        d["floats"] = [f32_bits(x) for x in a.floats]
    elif d["type"] == A.INTS:
        d["ints"] = list(a.ints)
    elif d["type"] == A.STRINGS:
        d["strings"] = [s.hex() for s in a.strings]
    elif d["type"] == A.TENSORS:
        d["tensors"] = [tensor_summary(t) for t in a.tensors]
    d["graphs"] = int(a.HasField("g")) + len(a.graphs)
    d["sparse"] = int(a.HasField("sparse_tensor")) + len(a.sparse_tensors)
    d["tps"] = int(a.HasField("tp")) + len(a.type_protos)
    return d


KINDS = {"tensor_type": "tensor", "sequence_type": "sequence", "map_type": "map",
         "optional_type": "optional", "sparse_tensor_type": "sparse_tensor",
         "opaque_type": "opaque"}


def dim_summary(dim):
    if dim.HasField("dim_value"):
        return dim.dim_value
    return latin(dim.dim_param) if dim.HasField("dim_param") else None


def value_info_summary(v):
    which = v.type.WhichOneof("value") if v.HasField("type") else None
    d = {"name": latin(v.name), "kind": KINDS.get(which, "none"), "elem": 0,
         "rank": -1, "dims": []}
    if d["kind"] in ("tensor", "sparse_tensor"):
        tt = getattr(v.type, which)
        d["elem"] = tt.elem_type
        if tt.HasField("shape"):
            d["rank"] = len(tt.shape.dim)
            d["dims"] = [dim_summary(x) for x in tt.shape.dim]
    return d


def node_summary(n):
    return {"name": latin(n.name), "op": latin(n.op_type), "domain": latin(n.domain),
            "inputs": [latin(x) for x in n.input],
            "outputs": [latin(x) for x in n.output],
            "attrs": [attr_summary(a) for a in n.attribute]}


def model_summary(m):
    g = m.graph
    default = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    return {
        "ir_version": m.ir_version,
        "producer": [latin(m.producer_name), latin(m.producer_version)],
        "default_opset": default[0] if default else 0,
        "opsets": [[latin(o.domain), o.version] for o in m.opset_import],
        "graph": latin(g.name),
        "inputs": [value_info_summary(v) for v in g.input],
        "outputs": [value_info_summary(v) for v in g.output],
        "value_info": [value_info_summary(v) for v in g.value_info],
        "nodes": [node_summary(n) for n in g.node],
        "initializers": [tensor_summary(t) for t in g.initializer],
    }


# ---- comparing --------------------------------------------------------------------

def file_tensors(summary):
    """Every tensor of a milk summary: initializers and attribute values."""
    yield from summary.get("initializers", [])
    for n in summary.get("nodes", []):
        for a in n["attrs"]:
            if a.get("t"):
                yield a["t"]
            yield from a.get("tensors", [])


def strip_ranges(summary):
    """Drop where the data lies (checked on its own) from milk's summary."""
    for t in file_tensors(summary):
        for k in ("path", "offset", "external"):
            t.pop(k, None)
    return summary


def first_difference(got, want, where=""):
    if type(got) != type(want):
        return f"{where}: milk {got!r}, onnx {want!r}"
    if isinstance(want, dict):
        for k in sorted(set(got) | set(want)):
            if k not in got or k not in want:
                return f"{where}.{k}: only in {'onnx' if k in want else 'milk'}"
            d = first_difference(got[k], want[k], f"{where}.{k}")
            if d:
                return d
    elif isinstance(want, list):
        if len(got) != len(want):
            return f"{where}: milk has {len(got)} items, onnx {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            d = first_difference(g, w, f"{where}[{i}]")
            if d:
                return d
    elif got != want:
        return f"{where}: milk {got!r}, onnx {want!r}"
    return None


def compare_all(paths):
    """Summaries of paths by milk and by onnx must agree; returns milk's."""
    rc, got, err = run_helper(paths)
    assert rc == 0, err[-4000:]
    bad = []
    for p in paths:
        want = model_summary(onnx.load(str(p)))
        d = first_difference(strip_ranges(dict(got[str(p)])), want)
        if d:
            bad.append(f"{p}: {d}")
    assert not bad, f"{len(bad)} of {len(paths)} differ:\n" + "\n".join(bad[:20])
    _, got, _ = run_helper(paths)  # again, with the ranges kept
    return got


def check_raw_ranges(path, summary):
    """Tensors stored as raw_data must be file ranges of the .onnx file that
    hold exactly the raw_data bytes (never copied into memory)."""
    m = onnx.load(str(path))
    blob = pathlib.Path(path).read_bytes()
    real = os.path.realpath(path)
    for t, g in zip(m.graph.initializer, summary["initializers"]):
        if not t.HasField("raw_data"):
            continue
        assert g.get("path") == real and g["external"] is False, g
        assert blob[g["offset"]:g["offset"] + g["nbytes"]] == t.raw_data, t.name


# ---- well-formed models -------------------------------------------------------------

def test_fixtures():
    assert len(FIXTURES) >= 6
    got = compare_all(FIXTURES)
    for p in FIXTURES:
        check_raw_ranges(p, got[str(p)])


def test_node_conformance_models():
    assert len(NODE_TESTS) > 900, "libonnx-testdata is missing"
    compare_all(NODE_TESTS)


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    import torch
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()  # random weights
    path = tmp_path_factory.mktemp("resnet18") / "model.onnx"
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), str(path),
                      opset_version=13, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    return path


def test_resnet18(resnet18):
    got = compare_all([resnet18])[str(resnet18)]
    assert got["inputs"][0]["dims"] == ["batch", 3, 224, 224]
    assert sum(t["nbytes"] for t in got["initializers"]) > 40_000_000
    check_raw_ranges(resnet18, got)


def check_external(model_path, location):
    """Every tensor onnx put in the external file must be a range of it
    that holds the tensor's bytes at the offset and length onnx recorded."""
    raw = onnx.load(str(model_path), load_external_data=False)
    ext = model_path.parent / location
    blob = ext.read_bytes()
    got = compare_all([model_path])[str(model_path)]
    stored = [t for t in raw.graph.initializer] + \
             [a.t for n in raw.graph.node for a in n.attribute if a.HasField("t")]
    mine = list(got["initializers"]) + \
        [a["t"] for n in got["nodes"] for a in n["attrs"] if a.get("t")]
    n_external = 0
    for t, g in zip(stored, mine):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        assert info["location"] == location
        assert g["external"] is True and g["path"] == os.path.realpath(ext)
        assert g["offset"] == int(info.get("offset", "0"))
        assert g["nbytes"] == int(info["length"])
        assert zlib.crc32(blob[g["offset"]:g["offset"] + g["nbytes"]]) == g["crc"]
        n_external += 1
    return n_external


def test_external_data(resnet18, tmp_path):
    out = tmp_path / "model.onnx"
    m = onnx.load(str(resnet18))
    onnx.save_model(m, str(out), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin",
                    size_threshold=0)
    assert check_external(out, "weights.bin") == len(m.graph.initializer) > 20


def test_external_data_in_attributes(tmp_path):
    """Constant nodes' tensors moved out too (convert_attribute)."""
    src = FIXTURES[[p.parent.name for p in FIXTURES].index("attention")]
    out = tmp_path / "model.onnx"
    m = onnx.load(str(src))
    n_constants = sum(1 for n in m.graph.node for a in n.attribute
                      if a.HasField("t") and a.t.HasField("raw_data"))
    assert n_constants > 0
    onnx.save_model(m, str(out), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="w.data",
                    size_threshold=0, convert_attribute=True)
    assert check_external(out, "w.data") >= len(m.graph.initializer) + n_constants


# ---- damaged and hostile files -------------------------------------------------------

def check_clean_failures(paths, summaries, err):
    """Each file loaded, or failed with a message naming it (also on
    stderr). Returns how many failed."""
    failed = 0
    for p in paths:
        s = summaries[str(p)]
        if "error" not in s:
            continue
        failed += 1
        assert s["error"].startswith(f"{p}: "), s["error"]
        assert s["status"] in ("parse error", "invalid model", "unsupported",
                               "i/o error"), s
        assert s["error"] in err
    return failed


def test_truncations(tmp_path):
    rng = random.Random(7)
    paths = []
    for src in FIXTURES:
        data = src.read_bytes()
        cuts = range(len(data)) if len(data) < 2000 else \
            sorted(set(rng.randrange(len(data)) for _ in range(150)) | set(range(64)))
        for n in cuts:
            p = tmp_path / f"{src.parent.name}_{n}.onnx"
            p.write_bytes(data[:n])
            paths.append(p)
    rc, got, err = run_helper(paths)
    failed = check_clean_failures(paths, got, err)
    assert rc == 1 and failed > 0.9 * len(paths), (failed, len(paths))


def test_byte_flips(tmp_path):
    """A few hundred files with one to four bytes changed at random: each
    loads or fails cleanly. When milk loads one and onnx can parse it too,
    they must agree on what it holds."""
    rng = random.Random(1234)
    sources = [p for p in FIXTURES if p.stat().st_size < 60000]
    paths = []
    for i in range(400):
        data = bytearray(rng.choice(sources).read_bytes())
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        p = tmp_path / f"flip_{i}.onnx"
        p.write_bytes(bytes(data))
        paths.append(p)
    rc, got, err = run_helper(paths)
    failed = check_clean_failures(paths, got, err)
    assert failed > 0
    agreed = 0
    for p in paths:
        s = got[str(p)]
        if "error" in s:
            continue
        try:
            want = model_summary(onnx.load(str(p)))
        except Exception:  # onnx rejects what milk accepted: no reference
            continue
        d = first_difference(strip_ranges(dict(s)), want)
        assert d is None, f"{p}: {d}"
        agreed += 1
    assert agreed > 0


def tiny_model(init, nodes=None):
    """y = x + w, with w the given initializer."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    node = helper.make_node("Add", ["x", init.name], ["y"], name="add")
    g = helper.make_graph(nodes or [node], "g", [x], [y], initializer=[init])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def external_tensor(location, offset=None, length=None):
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


def expect_failure(path, *words):
    """One helper process on path: exit 1, the message naming the file and
    holding words, on stderr, and no sanitizer report."""
    rc, got, err = run_helper([path])
    msg = got[str(path)].get("error", "")
    assert rc == 1 and msg.startswith(f"{path}: "), (rc, got)
    assert msg in err
    for w in words:
        assert w in msg, msg


@pytest.fixture
def model_dir(tmp_path):
    """tmp/m holds the models; tmp/x and tmp/outside.bin lie outside it."""
    d = tmp_path / "m"
    d.mkdir()
    (tmp_path / "x").write_bytes(bytes(16))
    (tmp_path / "outside.bin").write_bytes(bytes(16))
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "w.bin").write_bytes(bytes(16))
    (d / "w.bin").write_bytes(bytes(range(32)))
    return d


@pytest.mark.parametrize("tensor, words", [
    (external_tensor("../x"), ["location '../x'", "'..' component"]),
    (external_tensor("sub/../../x"), ["'..' component"]),
    (external_tensor("/etc/passwd"), ["'/etc/passwd' is an absolute path"]),
    (external_tensor("link.bin"), ["outside the model's directory"]),
    (external_tensor("linkdir/w.bin"), ["outside the model's directory"]),
    (external_tensor("w.bin", 24, 16), ["offset 24 + length 16 runs past the end"]),
    (external_tensor("w.bin", 40), ["offset 40 is past the end"]),
    (external_tensor("w.bin", 8, 2**64 - 1), ["runs past the end"]),
    (external_tensor("w.bin", -8, 16), ["offset '-8' is not a non-negative integer"]),
    (external_tensor("w.bin", 0, 12), ["length 12, expected 16"]),
    (external_tensor("none.bin"), ["cannot open"]),
    (external_tensor(""), ["no location"]),
])
def test_hostile_external_data(model_dir, tensor, words):
    os.symlink(model_dir.parent / "outside.bin", model_dir / "link.bin")
    os.symlink(model_dir.parent / "outdir", model_dir / "linkdir")
    path = model_dir / "model.onnx"
    path.write_bytes(tiny_model(tensor).SerializeToString())
    expect_failure(path, "graph.initializer[0] 'w'", *words)


def test_external_data_inside_is_fine(model_dir):
    """The same setup with a good location loads: the failures above are
    the checks, not the setup."""
    path = model_dir / "model.onnx"
    path.write_bytes(tiny_model(external_tensor("w.bin", 16, 16)).SerializeToString())
    rc, got, _ = run_helper([path])
    t = got[str(path)]["initializers"][0]
    assert rc == 0 and t["offset"] == 16 and t["external"] is True
    assert t["crc"] == zlib.crc32(bytes(range(16, 32)))


def raw_tensor(dims, nbytes=0, dtype=TensorProto.FLOAT):
    t = TensorProto(name="w", data_type=dtype)
    t.dims.extend(dims)
    t.raw_data = bytes(nbytes)
    return t


@pytest.mark.parametrize("tensor, words", [
    (raw_tensor([2, -4]), ["'w': dims[1] = -4"]),
    (raw_tensor([-1]), ["dims[0] = -1"]),
    (raw_tensor([2**40, 2**40]), ["more than 2^40 elements"]),
    (raw_tensor([2**62, 2**62, 2**62]), ["more than 2^40 elements"]),
    (raw_tensor([2**63 - 1, 2]), ["more than 2^40 elements"]),
    (raw_tensor([1] * 9, 4), ["rank above 8"]),
    (raw_tensor([2, 2], 12), ["raw_data has 12 bytes, expected 16"]),
    (raw_tensor([4], 16, dtype=99), ["data_type = 99"]),
    (raw_tensor([4], 16, dtype=0), ["data_type is missing"]),
])
def test_hostile_dims(tmp_path, tensor, words):
    path = tmp_path / "model.onnx"
    path.write_bytes(tiny_model(tensor).SerializeToString())
    expect_failure(path, "graph.initializer[0] 'w'", *words)


def test_not_onnx(tmp_path):
    """Files that are not ONNX at all fail cleanly too."""
    cases = {"empty.onnx": b"", "text.onnx": b"hello, world\n",
             "zeros.onnx": bytes(100), "ones.onnx": b"\xff" * 100}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        expect_failure(tmp_path / name)
    expect_failure(tmp_path / "absent.onnx", "cannot open")
    expect_failure(tmp_path, "not a regular file")
