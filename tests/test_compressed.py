"""Compressed weights: the constexpr_* ops and quantize/dequantize.

1. Every package of tests/fixtures/coremltools2/cmp_* (made by coremltools'
   optimize API: quantized, palettized, pruned and jointly compressed, iOS16
   and iOS18 forms) loads, its constexpr outputs equal coremltools' own
   decompressed weights (weights_decompressed.npz) bit for bit, its output
   matches PyTorch's (expected.npy), and it is read and written again by
   milk into the same model.mlmodel message and the same weight.bin bytes.
2. Each op on its own, in fp32 and fp16, against a numpy transcription of
   coremltools' definitions (the `decompress` methods of
   ops/defs/iOS16/constexpr_ops.py and iOS18/compression.py, and
   optimize/_utils.py), bit for bit.
3. Bad input gets an error naming the op and the field.
"""
import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import conftest
import Model_pb2
from milkop import Const, In, Value, run_op, run_ops

FIX2 = conftest.ROOT / "tests" / "fixtures" / "coremltools2"
CMP = sorted(p.name for p in FIX2.iterdir() if p.name.startswith("cmp_"))
MODEL = pathlib.Path("Data/com.apple.CoreML/model.mlmodel")
WEIGHTS = pathlib.Path("Data/com.apple.CoreML/weights/weight.bin")
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error")


def milk_cmd(exe, *args):
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    assert not any(s in r.stderr for s in SANITIZER), r.stderr
    return r


def case_meta(case):
    return json.loads((FIX2 / case / "case.json").read_text())


# ---- 1. coremltools' packages ---------------------------------------------------

@pytest.mark.parametrize("case", CMP)
def test_fixture_decompresses_bit_exactly(milk_asan, tmp_path, case):
    d = FIX2 / case
    run = case_meta(case)["runs"][0]
    out = tmp_path / "out.npz"
    r = milk_cmd(milk_asan, "run", d / "model.mlpackage", "--input",
                 f"x={d / 'x.npy'}", "--output", out, "--keep-all")
    assert r.returncode == 0, r.stderr
    with np.load(out) as got, np.load(d / "weights_decompressed.npz") as want:
        assert want.files, case
        for k in want.files:
            assert k in got.files, f"{case}: no value for {k}"
            g, w = got[k], want[k]
            assert g.shape == w.shape, (k, g.shape, w.shape)
            if w.dtype.kind == "f":
                assert g.dtype == w.dtype, (k, g.dtype, w.dtype)
                assert np.array_equal(g.view(np.uint8), w.view(np.uint8)), k
            else:  # masks (uint1) as 0/1
                assert np.array_equal(g.astype(np.int64), w.astype(np.int64)), k
        (name, exp), = run["expected"].items()
        want_y = np.load(d / exp)
        tol = run["tolerance"]
        assert np.allclose(got[name], want_y, rtol=tol["rtol"], atol=tol["atol"])


def load_model(path):
    m = Model_pb2.Model()
    m.ParseFromString(pathlib.Path(path).read_bytes())
    return m


@pytest.mark.parametrize("case", CMP)
def test_fixture_roundtrip(tmp_path, case):
    """Read and written again: the same message (constexpr inputs as
    attributes before iOS18, inline values from iOS18) and the same
    weight.bin, blob for blob."""
    exe = conftest.BUILD / "asan" / "tools" / "package_tool"
    src = FIX2 / case / "model.mlpackage"
    dst = tmp_path / "out.mlpackage"
    r = subprocess.run([str(exe), "roundtrip", str(src), str(dst)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert load_model(src / MODEL) == load_model(dst / MODEL)
    assert (src / WEIGHTS).read_bytes() == (dst / WEIGHTS).read_bytes()


@pytest.mark.parametrize("case", CMP)
def test_fixture_dump(milk_asan, case):
    meta = case_meta(case)
    r = milk_cmd(milk_asan, "dump", FIX2 / case / "model.mlpackage")
    assert r.returncode == 0, r.stderr
    for cx in meta["constexpr"]:
        for out in cx["outputs"]:
            assert f" {out}" in r.stdout and cx["op"] in r.stdout, out
    # compressed data is shown by where it lives, never element by element
    assert max(len(line) for line in r.stdout.splitlines()) < 2000
    r = milk_cmd(milk_asan, "dump", FIX2 / case / "model.mlpackage", "--summary")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for w in meta["weights_decompressed"]["final_weights"]:
        line = next(x for x in lines if f"> {w}: " in x)
        # "...; 4.6 KiB for 36.0 KiB (7.78x)": compressed, and smaller
        assert float(line.rsplit("(", 1)[1].rstrip("x)")) > 1.0, line
    assert "compressed weights:" in r.stdout


def test_extract_takes_compressed_weights(milk, tmp_path):
    """An extracted op keeps its compressed weight (the constexpr chain),
    which does not become a model input."""
    d = FIX2 / "cmp_joint_prune_pal4_ios18"
    full = tmp_path / "full.npz"
    assert milk_cmd(milk, "run", d / "model.mlpackage", "--input", f"x={d / 'x.npy'}",
                    "--output", full, "--keep-all").returncode == 0
    sub = tmp_path / "sub.mlpackage"
    r = milk_cmd(milk, "extract", d / "model.mlpackage", "--op", "linear_0", "-o", sub)
    assert r.returncode == 0, r.stderr
    assert "inputs: input_3 " in r.stdout
    with np.load(full) as z:
        np.save(tmp_path / "in.npy", z["input_3"])
        want = z["var_35"]
    out = tmp_path / "out.npz"
    assert milk_cmd(milk, "run", sub, "--input", f"input_3={tmp_path / 'in.npy'}",
                    "--output", out).returncode == 0
    with np.load(out) as z:
        assert np.array_equal(z["var_35"], want)


def test_truncated_weights(milk, tmp_path):
    pkg = tmp_path / "t.mlpackage"
    shutil.copytree(FIX2 / "cmp_q_int4_block32_ios18" / "model.mlpackage", pkg)
    w = pkg / WEIGHTS
    w.write_bytes(w.read_bytes()[:20000])
    r = milk_cmd(milk, "dump", pkg)
    assert r.returncode == 2
    assert "weight.bin" in r.stderr and "outside the file" in r.stderr
    assert "fc1_weight_quantized" in r.stderr or "fc2_weight_quantized" in r.stderr


def edit_first(pkg, op_type):
    """The model of pkg and the first op of op_type in main, to edit."""
    m = load_model(pkg / MODEL)
    fn = m.mlProgram.functions["main"]
    block = fn.block_specializations[fn.opset]
    return m, next(o for o in block.operations if o.type == op_type)


def test_wrong_bits_in_package(milk, tmp_path):
    """Indices declared uint4 over a blob of uint6: the blob's type is
    checked against the declaration, naming the op and the input."""
    pkg = tmp_path / "t.mlpackage"
    shutil.copytree(FIX2 / "cmp_pal_kmeans6_group16_ios18" / "model.mlpackage", pkg)
    m, op = edit_first(pkg, "constexpr_lut_to_dense")
    op.inputs["indices"].arguments[0].value.type.tensorType.dataType = 35  # uint4
    (pkg / MODEL).write_bytes(m.SerializeToString())
    r = milk_cmd(milk, "dump", pkg)
    assert r.returncode == 2, r.stdout
    assert f"op '{op.outputs[0].name}' (constexpr_lut_to_dense): input 'indices'" in r.stderr
    assert "BlobDataType 13 (uint6) does not match the declared dtype uint4" in r.stderr


def test_lut_too_small_in_package(milk, tmp_path):
    """A LUT with fewer entries than its indices address (an index could
    fall outside it) is refused at load."""
    pkg = tmp_path / "t.mlpackage"
    shutil.copytree(FIX2 / "cmp_pal_uniform2_ios18" / "model.mlpackage", pkg)
    m, op = edit_first(pkg, "constexpr_lut_to_dense")
    lut = op.inputs["lut"].arguments[0].value
    lut.type.tensorType.dimensions[4].constant.size = 3
    del lut.immediateValue.tensor.floats.values[3]
    (pkg / MODEL).write_bytes(m.SerializeToString())
    r = milk_cmd(milk, "dump", pkg)
    assert r.returncode == 2, r.stdout
    assert (f"op '{op.outputs[0].name}' (constexpr_lut_to_dense): input 'lut': 3 "
            "entries (dim -2), but uint2 indices take 4") in r.stderr


# ---- 2. each op against coremltools' numpy definitions ---------------------------

def repeat_as(a, shape):
    """optimize/_utils.py repeat_data_as."""
    for ax, n in enumerate(shape):
        if n // a.shape[ax] > 1:
            a = np.repeat(a, n // a.shape[ax], axis=ax)
    return a


def ref_shift_scale(data, scale, offset=None):
    """constexpr_blockwise_shift_scale.decompress (iOS18)."""
    data = data.astype(scale.dtype)
    for ax, (d, s) in enumerate(zip(data.shape, scale.shape)):
        if d // s > 1:
            scale = np.repeat(scale, d // s, ax)
            if offset is not None:
                offset = np.repeat(offset, d // s, ax)
    if offset is not None:
        data = data - offset
    return scale * data


def promote(p, data, axis):
    """optimize/_utils.py promote_rank_to_same_as_data."""
    if p.ndim == data.ndim:
        return p
    if p.ndim == 0:
        return p.reshape([1] * data.ndim)
    shape = [1] * data.ndim
    shape[axis] = -1
    return p.reshape(shape)


def ref_dequant(q, scale, zp, axis):
    """dequantize_by_scale_and_zp (constexpr_affine_dequantize, dequantize)."""
    scale = promote(scale, q, axis)
    d = q.astype(np.float32)
    if zp is not None:
        d -= promote(zp, q, axis).astype(np.float32)
    d *= scale
    return d.astype(scale.dtype)


def ref_lut(indices, lut, vector_axis=None):
    """optimize/_utils.py lut_to_dense (iOS18 constexpr_lut_to_dense)."""
    palettes, vs = lut.shape[-2], lut.shape[-1]
    shape = list(indices.shape)
    if vs > 1:
        vector_axis %= len(shape)
        indices = np.swapaxes(indices, -1, vector_axis)
        lut = np.swapaxes(lut, -3, vector_axis)
        shape = list(indices.shape)
        shape[-1] *= vs
    flat = indices.astype(np.uint8).flatten()
    rep = repeat_as(lut, indices.shape).reshape(len(flat), palettes, vs)
    out = rep[np.arange(rep.shape[0]), flat.astype(np.int32)].reshape(shape)
    return np.swapaxes(out, -1, vector_axis) if vs > 1 else out


def pack_bits(values, nbits):
    """optimize/_utils.py pack_elements_into_bits (LSB first)."""
    bits = np.unpackbits(values.astype(np.uint8).reshape(-1, 1), axis=1,
                         count=nbits, bitorder="little")
    return np.packbits(bits.flatten(), bitorder="little")


def bits_equal(got, want):
    got = np.ascontiguousarray(got.astype(want.dtype))
    want = np.ascontiguousarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), \
        np.abs(got.astype(np.float64) - want).max()


RNG = np.random.default_rng(11)


def fp(shape, dtype, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("fdt", [np.float32, np.float16])
@pytest.mark.parametrize("qdt,lo,hi", [("int8", -128, 127), ("uint8", 0, 255),
                                        ("int4", -8, 7), ("uint4", 0, 15)])
@pytest.mark.parametrize("offset", [None, "int", "fp"])
def test_blockwise_shift_scale(fdt, qdt, lo, hi, offset):
    data = RNG.integers(lo, hi + 1, (8, 64, 3))
    scale = fp((4, 2, 3), fdt, 0.05)
    off = None
    inputs = [("data", Const(data, dtype=qdt)), ("scale", Const(scale))]
    if offset == "int":
        off = RNG.integers(lo, hi + 1, (4, 2, 3))
        inputs.append(("offset", Const(off, dtype=qdt)))
        off = off.astype(np.int8 if qdt.startswith("int") else np.uint8)
    elif offset == "fp":
        off = fp((4, 2, 3), fdt, 3)
        inputs.append(("offset", Const(off)))
    want = ref_shift_scale(data.astype(np.int8 if qdt.startswith("int") else np.uint8),
                           scale, off)
    (got,), types = run_op("constexpr_blockwise_shift_scale", inputs)
    assert types[0]["dtype"] == ("fp16" if fdt == np.float16 else "fp32")
    bits_equal(got, want)


@pytest.mark.parametrize("fdt", [np.float32, np.float16])
def test_blockwise_shift_scale_float_data(fdt):
    """Float data (the per-channel scale of palettization): cast to the
    scale's dtype first."""
    data = fp((2, 6, 4, 1), np.float32)
    scale = fp((2, 1, 1, 1), fdt)
    (got,), _ = run_op("constexpr_blockwise_shift_scale",
                       [("data", Const(data)), ("scale", Const(scale))])
    bits_equal(got, ref_shift_scale(data, scale))


@pytest.mark.parametrize("fdt", [np.float32, np.float16])
@pytest.mark.parametrize("qdt", [np.int8, np.uint8])
@pytest.mark.parametrize("axis,per_channel", [(0, True), (1, True), (-1, True), (0, False)])
def test_affine_dequantize(fdt, qdt, axis, per_channel):
    info = np.iinfo(qdt)
    q = RNG.integers(info.min, info.max + 1, (6, 5, 4)).astype(qdt)
    n = q.shape[axis]
    scale = fp((n,) if per_channel else (), fdt, 0.02)
    zp = RNG.integers(info.min, info.max + 1, scale.shape).astype(qdt)
    (got,), _ = run_op("constexpr_affine_dequantize",
                       [("quantized_data", Const(q)), ("zero_point", Const(zp)),
                        ("scale", Const(scale)), ("axis", Value(axis))],
                       target="ios16")
    bits_equal(got, ref_dequant(q, scale, zp, axis))


def test_affine_dequantize_fp32_zero_point():
    q = RNG.integers(-128, 128, (4, 7)).astype(np.int8)
    scale = fp((4,), np.float16, 0.1)
    zp = fp((4,), np.float32, 3)
    (got,), _ = run_op("constexpr_affine_dequantize",
                       [("quantized_data", Const(q)), ("zero_point", Const(zp)),
                        ("scale", Const(scale)), ("axis", Value(0))], target="ios17")
    bits_equal(got, ref_dequant(q, scale, zp, 0))


def test_constexpr_cast():
    x = fp((3, 5), np.float16)
    (got,), types = run_op("constexpr_cast", [("source_val", Const(x)),
                                              ("output_dtype", "fp32")], target="ios16")
    assert types[0]["dtype"] == "fp32"
    bits_equal(got, x.astype(np.float32))


@pytest.mark.parametrize("nbits", [1, 2, 4, 6, 8])
@pytest.mark.parametrize("ldt", [np.float32, np.float16, np.int8, np.uint8])
def test_lut_to_dense_ios16(nbits, ldt):
    shape = (5, 3, 7)
    idx = RNG.integers(0, 2 ** nbits, shape)
    lut = (RNG.integers(-100, 100, 2 ** nbits) if ldt in (np.int8,) else
           RNG.integers(0, 200, 2 ** nbits) if ldt == np.uint8 else
           fp((2 ** nbits,), ldt)).astype(ldt)
    packed = pack_bits(idx, nbits)
    (got,), types = run_op("constexpr_lut_to_dense",
                           [("indices", Const(packed)), ("lut", Const(lut)),
                            ("shape", Value(list(shape), dtype="uint32"))],
                           target="ios16")
    assert types[0]["shape"] == list(shape)
    bits_equal(got, lut[idx])


@pytest.mark.parametrize("nbits,idt", [(1, "uint1"), (2, "uint2"), (3, "uint3"),
                                       (4, "uint4"), (6, "uint6"), (8, "uint8")])
@pytest.mark.parametrize("groups", [(1, 1, 1), (4, 1, 1), (2, 1, 3)])
def test_lut_to_dense_ios18(nbits, idt, groups):
    shape = (8, 5, 6)
    idx = RNG.integers(0, 2 ** nbits, shape)
    lut = fp(groups + (2 ** nbits, 1), np.float16)
    (got,), _ = run_op("constexpr_lut_to_dense",
                       [("indices", Const(idx, dtype=idt)), ("lut", Const(lut))])
    bits_equal(got, ref_lut(idx, lut))


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("vs", [2, 4])
def test_lut_to_dense_vector(axis, vs):
    shape = [4, 6, 2]
    idx = RNG.integers(0, 16, shape)
    groups = [1, 2, 1]
    lut = fp(groups + [16, vs], np.float32)
    (got,), types = run_op("constexpr_lut_to_dense",
                           [("indices", Const(idx, dtype="uint4")), ("lut", Const(lut)),
                            ("vector_axis", Value(axis))])
    want = ref_lut(idx, lut, axis)
    assert types[0]["shape"] == list(want.shape)
    bits_equal(got, want)


@pytest.mark.parametrize("form", ["ios16", "ios18"])
@pytest.mark.parametrize("ndt", [np.float32, np.float16, np.int8])
def test_sparse_to_dense(form, ndt):
    shape = (6, 11)
    mask = RNG.random(shape) < 0.4
    nz = (RNG.integers(-100, 100, mask.sum()) if ndt == np.int8 else
          fp((mask.sum(),), ndt)).astype(ndt)
    want = np.zeros(shape, ndt)
    want[mask] = nz
    if form == "ios16":
        inputs = [("nonzero_data", Const(nz)),
                  ("mask", Const(np.packbits(mask.flatten(), bitorder="little"))),
                  ("shape", Value(list(shape), dtype="uint32"))]
    else:
        inputs = [("nonzero_data", Const(nz)), ("mask", Const(mask.astype(np.int32),
                                                               dtype="uint1"))]
    (got,), _ = run_op("constexpr_sparse_to_dense", inputs, target=form)
    bits_equal(got, want)


@pytest.mark.parametrize("vs,axis", [(1, None), (2, 0), (3, 1)])
def test_lut_to_sparse(vs, axis):
    shape = (4, 6)
    mask = RNG.random(shape) < 0.5
    idx = RNG.integers(0, 4, mask.sum())
    lut = fp((2, 1, 4, vs), np.float16)
    inputs = [("indices_mask", Const(mask.astype(np.int32), dtype="uint1")),
              ("indices_nonzero_data", Const(idx, dtype="uint2")), ("lut", Const(lut))]
    if axis is not None:
        inputs.append(("vector_axis", Value(axis)))
    (m, v), _ = run_op("constexpr_lut_to_sparse", inputs)
    # iOS18 constexpr_lut_to_sparse.decompress
    dense_idx = np.zeros(shape, np.uint8)
    dense_idx[mask] = idx
    dense = ref_lut(dense_idx, lut, axis)
    want_mask = mask if axis is None else np.repeat(mask, vs, axis=axis)
    assert np.array_equal(m.astype(bool), want_mask)
    bits_equal(v, dense[want_mask != 0].flatten())


@pytest.mark.parametrize("fdt", [np.float32, np.float16])
def test_sparse_blockwise_shift_scale(fdt):
    shape = (8, 6)
    mask = RNG.random(shape) < 0.5
    nz = RNG.integers(-8, 8, mask.sum())
    scale = fp((4, 1), fdt, 0.1)
    off = RNG.integers(-8, 8, (4, 1))
    (m, v), types = run_op("constexpr_sparse_blockwise_shift_scale",
                           [("data_mask", Const(mask.astype(np.int32), dtype="uint1")),
                            ("nonzero_data", Const(nz, dtype="int4")),
                            ("scale", Const(scale)), ("offset", Const(off, dtype="int4"))])
    dense = np.zeros(shape, np.int8)
    dense[mask] = nz
    want = ref_shift_scale(dense, scale, off.astype(np.int8))[mask]
    assert types[1]["dtype"] == ("fp16" if fdt == np.float16 else "fp32")
    assert np.array_equal(m.astype(bool), mask)
    bits_equal(v, want)


def ref_quantize(x, scale, zp, axis, dtype):
    """quantize_by_scale_and_zp (iOS17 quantize)."""
    info = np.iinfo(dtype)
    q = x / promote(scale, x, axis)
    q = np.around(q)
    if zp is not None:
        q += promote(zp, x, axis).astype(np.float32)
    return np.clip(q, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("fdt", [np.float32, np.float16])
@pytest.mark.parametrize("dt", [np.int8, np.uint8])
@pytest.mark.parametrize("axis", [None, 1])
def test_quantize_dequantize(fdt, dt, axis):
    x = fp((3, 4, 5), fdt, 4)
    n = () if axis is None else (x.shape[axis],)
    scale = np.abs(fp(n, fdt, 0.05)) + fdt(0.01)
    info = np.iinfo(dt)
    zp = RNG.integers(info.min // 2, info.max // 2, n).astype(dt)
    name = np.dtype(dt).name
    extra = [] if axis is None else [("axis", Value(axis))]
    (q,), types = run_op("quantize", [("input", In(x)), ("scale", Const(scale)),
                                      ("zero_point", Const(zp)),
                                      ("output_dtype", name)] + extra, target="ios17")
    assert types[0]["dtype"] == name
    want_q = ref_quantize(x, scale, zp, axis, dt)
    assert np.array_equal(q.astype(np.int64), want_q.astype(np.int64))
    (d,), types = run_op("dequantize", [("input", In(want_q)), ("scale", Const(scale)),
                                        ("zero_point", Const(zp))] + extra, target="ios17")
    bits_equal(d, ref_dequant(want_q, scale, zp, axis))


# ---- 3. bad input ------------------------------------------------------------------

def u(a, dt):
    return Const(np.asarray(a), dtype=dt)


BAD = [
    # block size not dividing the axis
    ("constexpr_blockwise_shift_scale",
     [("data", u(np.zeros((6, 4)), "int4")), ("scale", Const(np.ones((4, 1), np.float32)))],
     "ios18", "input 'scale': dim 0 is 4, which does not divide data's 6"),
    # wrong bits: uint4 indices need 16 entries
    ("constexpr_lut_to_dense",
     [("indices", u(np.zeros((4, 2)), "uint4")), ("lut", Const(np.ones((1, 1, 8, 1), np.float32)))],
     "ios18", "input 'lut': 8 entries (dim -2), but uint4 indices take 16"),
    ("constexpr_lut_to_dense",
     [("indices", u(np.zeros(2), "uint8")), ("lut", Const(np.ones(8, np.float32))),
      ("shape", Value([2, 4], dtype="uint32"))],
     "ios16", "input 'lut': 8 entries; the iOS16 form takes 2, 4, 16, 64 or 256"),
    ("constexpr_lut_to_dense",
     [("indices", u(np.zeros(3), "uint8")), ("lut", Const(np.ones(16, np.float32))),
      ("shape", Value([2, 4], dtype="uint32"))],
     "ios16", "input 'indices': 3 bytes, but 8 4-bit indices packed need 4"),
    ("constexpr_lut_to_dense",
     [("indices", u(np.zeros((4, 2)), "uint2")), ("lut", Const(np.ones((1, 1, 4, 2), np.float32)))],
     "ios18", "input 'vector_axis': required when the lut holds vectors"),
    ("constexpr_lut_to_dense",
     [("indices", u(np.zeros((4, 2)), "uint2")), ("lut", Const(np.ones((1, 4, 1), np.float32)))],
     "ios18", "input 'lut': rank 3, expected 4"),
    ("constexpr_lut_to_dense",
     [("indices", u(np.zeros(4), "uint8")), ("lut", Const(np.ones(16, np.float32))),
      ("shape", Value([2, 4], dtype="uint32"))],
     "ios18", "input 'shape': belongs to the iOS16 form"),
    ("constexpr_sparse_to_dense",
     [("nonzero_data", Const(np.ones(3, np.float32))),
      ("mask", u([[1, 0], [0, 1]], "uint1"))],
     "ios18", "input 'mask': 2 bits are set, but nonzero_data has 3 values"),
    ("constexpr_sparse_to_dense",
     [("nonzero_data", Const(np.ones(1, np.float32))),
      ("mask", Const(np.array([0x21], np.uint8))), ("shape", Value([5], dtype="uint32"))],
     "ios16", "input 'mask': padding bit 5"),
    ("constexpr_affine_dequantize",
     [("quantized_data", Const(np.zeros((4, 3), np.int8))),
      ("zero_point", Const(np.zeros(3, np.int8))),
      ("scale", Const(np.ones(3, np.float32))), ("axis", Value(0))],
     "ios16", "input 'scale': a vector of 3 values, but quantized_data has 4 along axis 0"),
    ("constexpr_affine_dequantize",
     [("quantized_data", Const(np.zeros((4, 3), np.int8))),
      ("zero_point", Const(np.zeros(4, np.int8))),
      ("scale", Const(np.ones(4, np.float32))), ("axis", Value(0))],
     "ios15", "needs deployment target ios16"),
    ("constexpr_blockwise_shift_scale",
     [("data", u(np.zeros((4, 4)), "int4")), ("scale", Const(np.ones((2, 2), np.float32))),
      ("offset", u(np.zeros((2, 2)), "uint4"))],
     "ios18", "input 'offset': dtype uint4; an integer offset has the data's dtype (int4)"),
    ("constexpr_blockwise_shift_scale",
     [("data", u(np.zeros((4, 4)), "int4")), ("scale", Const(np.ones((2, 2), np.float32)))],
     "ios17", "needs deployment target ios18"),
    ("quantize",
     [("input", In(np.ones((2, 3), np.float32))), ("scale", Const(np.ones(3, np.float32))),
      ("output_dtype", "int8")],
     "ios17", "input 'axis': required when scale is a vector"),
    ("quantize",
     [("input", In(np.ones((2, 3), np.float32))), ("scale", Const(np.float32(0))),
      ("output_dtype", "int8")],
     "ios17", "input 'scale': cannot be 0"),
    ("dequantize",
     [("input", In(np.ones((2, 3), np.int8))), ("scale", Const(np.float32(0.5))),
      ("zero_point", Const(np.uint8(1)))],
     "ios17", "input 'zero_point': dtype uint8 differs from input's int8"),
]


@pytest.mark.parametrize("op,inputs,target,msg", BAD, ids=[b[3][:40] for b in BAD])
def test_bad_input(op, inputs, target, msg):
    with pytest.raises(RuntimeError) as e:
        run_op(op, inputs, target=target, asan=True)
    assert f"op 'op' ({op})" in str(e.value), str(e.value)
    assert msg in str(e.value), str(e.value)
