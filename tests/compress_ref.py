"""Compressed weights in numpy, independently of milk: coremltools' own
definitions of the constexpr ops (the `decompress` methods of
ops/defs/iOS16/constexpr_ops.py and iOS18/compression.py, and
optimize/_utils.py), transcribed, and a reader of a package's constexpr
ops straight from model.mlmodel (Google's protobuf) and weight.bin (the
blob format of docs/coreml-format.md section 4), so that what milk writes
is decoded without milk."""
import pathlib

import numpy as np

import Model_pb2

MODEL = pathlib.Path("Data/com.apple.CoreML/model.mlmodel")
WEIGHTS = pathlib.Path("Data/com.apple.CoreML/weights/weight.bin")


# ---- the op definitions -----------------------------------------------------------

def repeat_as(a, shape):
    """optimize/_utils.py repeat_data_as."""
    for ax, n in enumerate(shape):
        if n // a.shape[ax] > 1:
            a = np.repeat(a, n // a.shape[ax], axis=ax)
    return a


def shift_scale(data, scale, offset=None):
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


def dequant(q, scale, zp, axis):
    """dequantize_by_scale_and_zp (constexpr_affine_dequantize, dequantize)."""
    scale = promote(scale, q, axis)
    d = q.astype(np.float32)
    if zp is not None:
        d -= promote(zp, q, axis).astype(np.float32)
    d *= scale
    return d.astype(scale.dtype)


def lut_dense(indices, lut, vector_axis=None):
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


def unpack_bits(packed, nbits, count):
    """optimize/_utils.py restore_elements_from_packed_bits (LSB first)."""
    bits = np.unpackbits(packed.astype(np.uint8), bitorder="little")[:count * nbits]
    bits = bits.reshape(-1, nbits)
    return (bits * (1 << np.arange(nbits))).sum(axis=1).astype(np.uint8)


def pack_bits(values, nbits):
    """optimize/_utils.py pack_elements_into_bits (LSB first)."""
    bits = np.unpackbits(values.astype(np.uint8).reshape(-1, 1), axis=1,
                         count=nbits, bitorder="little")
    return np.packbits(bits.flatten(), bitorder="little")


def sparse_dense(nonzero, mask):
    """iOS18 constexpr_sparse_to_dense.decompress."""
    out = np.zeros(mask.shape, dtype=nonzero.dtype)
    out[mask != 0] = nonzero
    return out


# ---- reading a package ---------------------------------------------------------------

# MIL DataType code -> (numpy dtype, bits); sub-byte types held as uint8/int8
DTYPES = {1: (np.bool_, 8), 12: (np.float64, 64), 24: (np.int64, 64), 10: (np.float16, 16), 11: (np.float32, 32), 21: (np.int8, 8),
          23: (np.int32, 32), 25: (np.int8, 4), 31: (np.uint8, 8), 33: (np.uint32, 32),
          35: (np.uint8, 4), 36: (np.uint8, 2), 37: (np.uint8, 1), 38: (np.uint8, 6),
          39: (np.uint8, 3)}
BLOB_CODES = {1: 10, 2: 11, 3: 31, 4: 21, 8: 25, 9: 37, 10: 36, 11: 35, 12: 39, 13: 38,
              14: 23, 15: 33}


def _from_bytes(raw, code, shape):
    dt, bits = DTYPES[code]
    n = int(np.prod(shape, dtype=np.int64))
    if bits >= 8:
        return np.frombuffer(raw, dtype=dt, count=n).reshape(shape)
    v = unpack_bits(np.frombuffer(raw, dtype=np.uint8), bits, n)
    if code == 25:  # int4: two's complement nibbles
        v = v.astype(np.int8)
        v[v >= 8] -= 16
    return v.astype(dt).reshape(shape)


class Package:
    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.model = Model_pb2.Model()
        self.model.ParseFromString((self.path / MODEL).read_bytes())
        w = self.path / WEIGHTS
        self.blob = w.read_bytes() if w.exists() else b""
        fn = self.model.mlProgram.functions["main"]
        self.opset = fn.opset
        self.ops = list(fn.block_specializations[fn.opset].operations)

    def value(self, v):
        """A Value as numpy (tensors only)."""
        tt = v.type.tensorType
        shape = [d.constant.size for d in tt.dimensions]
        if v.WhichOneof("value") == "blobFileValue":
            off = v.blobFileValue.offset
            meta = np.frombuffer(self.blob, dtype=np.uint8, count=64, offset=off)
            assert meta[:4].tobytes() == b"\xef\xbe\xad\xde"
            code = int.from_bytes(meta[4:8].tobytes(), "little")
            size = int.from_bytes(meta[8:16].tobytes(), "little")
            data = int.from_bytes(meta[16:24].tobytes(), "little")
            assert BLOB_CODES[code] == tt.dataType, (code, tt.dataType)
            return _from_bytes(self.blob[data:data + size], tt.dataType, shape)
        t = v.immediateValue.tensor
        kind = t.WhichOneof("value")
        if kind == "bytes":
            return _from_bytes(t.bytes.values, tt.dataType, shape)
        if kind == "strings":
            return np.array(list(t.strings.values)).reshape(shape)
        vals = getattr(t, kind).values
        return np.array(list(vals), dtype=DTYPES[tt.dataType][0]).reshape(shape)

    def inputs(self, op, env):
        """An op's inputs by name: attributes (before iOS18), inline
        values, or earlier results in env."""
        got = {}
        for k, v in op.attributes.items():
            if k != "name":
                got[k] = self.value(v)
        for k, arg in op.inputs.items():
            b = arg.arguments[0]
            got[k] = env[b.name] if b.WhichOneof("binding") == "name" else self.value(b.value)
        return got

    def consts(self):
        return {op.outputs[0].name: self.value(op.attributes["val"])
                for op in self.ops if op.type == "const"}

    def decompress(self):
        """Every constexpr output, by var name, as coremltools computes it."""
        env = self.consts()
        ios18 = self.opset == "CoreML8"
        for op in self.ops:
            if not op.type.startswith("constexpr_"):
                continue
            a = self.inputs(op, env)
            outs = [o.name for o in op.outputs]
            t = op.type
            if t == "constexpr_affine_dequantize":
                r = [dequant(a["quantized_data"], a["scale"], a["zero_point"], int(a["axis"]))]
            elif t == "constexpr_blockwise_shift_scale":
                r = [shift_scale(a["data"], a["scale"], a.get("offset"))]
            elif t == "constexpr_cast":
                r = [a["source_val"].astype(np.float32)]
            elif t == "constexpr_lut_to_dense" and not ios18:
                lut, shape = a["lut"], a["shape"]
                nbits = int(np.log2(lut.size))
                idx = unpack_bits(a["indices"], nbits, int(np.prod(shape)))
                r = [lut[idx].reshape(shape)]
            elif t == "constexpr_lut_to_dense":
                va = a.get("vector_axis")
                r = [lut_dense(a["indices"], a["lut"], None if va is None else int(va))]
            elif t == "constexpr_sparse_to_dense" and not ios18:
                shape = a["shape"]
                mask = np.unpackbits(a["mask"], bitorder="little")[:int(np.prod(shape))]
                r = [sparse_dense(a["nonzero_data"], mask).reshape(shape)]
            elif t == "constexpr_sparse_to_dense":
                r = [sparse_dense(a["nonzero_data"], a["mask"])]
            elif t == "constexpr_lut_to_sparse":
                mask, va = a["indices_mask"], a.get("vector_axis")
                idx = sparse_dense(a["indices_nonzero_data"], mask)
                dense = lut_dense(idx, a["lut"], None if va is None else int(va))
                if va is not None:
                    mask = np.repeat(mask, a["lut"].shape[-1], axis=int(va))
                r = [mask, dense[mask != 0].flatten()]
            elif t == "constexpr_sparse_blockwise_shift_scale":
                mask = a["data_mask"]
                d = shift_scale(sparse_dense(a["nonzero_data"], mask), a["scale"],
                                a.get("offset"))
                r = [mask, d[mask != 0].flatten()]
            else:
                raise AssertionError(t)
            env.update(zip(outs, r))
        return {k: v for k, v in env.items() if k not in self.consts()}

    def op_types(self):
        return [op.type for op in self.ops]
