"""Broken packages: every one must be refused with a message naming the file
and the field at fault, a non-zero exit (not a signal), and no sanitizer
report. Each case starts from a copy of a coremltools fixture and breaks one
thing; a mutation test then throws a few hundred random byte flips and
truncations of model.mlmodel and weight.bin at the ASan build of `milk dump`.
"""
import concurrent.futures
import json
import os
import pathlib
import random
import shutil
import struct
import subprocess

import pytest

import conftest
import Model_pb2

MODEL = pathlib.Path("Data/com.apple.CoreML/model.mlmodel")
WEIGHTS = pathlib.Path("Data/com.apple.CoreML/weights/weight.bin")
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error")
# Sanitizer failures get exit codes of their own, so that they cannot pass
# for milk's ordinary error exit (2).
ENV = dict(os.environ,
           ASAN_OPTIONS="detect_leaks=1:exitcode=99",
           UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98")

# conv2d_edge fp32: consts (one in weight.bin at 64), then conv 'op_22'.
BASE = conftest.FIXTURES / "conv2d_edge" / "model_fp32.mlpackage"


def run(exe, *args):
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                       errors="replace",
                       env=ENV, timeout=60)
    assert not any(s in r.stderr for s in SANITIZER), r.stderr
    assert r.returncode >= 0, f"killed by signal {-r.returncode}: {r.stderr}"
    assert r.returncode not in (98, 99), r.stderr
    return r


@pytest.fixture
def pkg(tmp_path):
    """A fresh copy of the base package, which must itself load cleanly."""
    dst = tmp_path / "model.mlpackage"
    shutil.copytree(BASE, dst)
    tool = conftest.BUILD / "asan" / "tools" / "package_tool"
    r = run(str(tool), "load", dst)
    if r.returncode != 0 and "unknown op type" in r.stderr:
        pytest.skip(f"the op table cannot read the base package yet: {r.stderr}")
    assert r.returncode == 0, r.stderr
    return dst


# ---- ways to break a package ------------------------------------------------


def edit_model(pkg, fn):
    m = Model_pb2.Model()
    m.ParseFromString((pkg / MODEL).read_bytes())
    fn(m)
    (pkg / MODEL).write_bytes(m.SerializeToString())


def main_block(m):
    fn = m.mlProgram.functions["main"]
    return fn.block_specializations[fn.opset]


def op(m, name):
    for o in main_block(m).operations:
        if o.attributes["name"].immediateValue.tensor.strings.values[0] == name:
            return o
    raise KeyError(name)


def patch(path, offset, data):
    b = bytearray(path.read_bytes())
    b[offset:offset + len(data)] = data
    path.write_bytes(bytes(b))


def edit_manifest(pkg, fn):
    path = pkg / "Manifest.json"
    m = json.loads(path.read_text())
    fn(m)
    path.write_text(json.dumps(m, indent=4))


def root_item(m):
    return m["itemInfoEntries"][m["rootModelIdentifier"]]


def truncate_model(pkg):
    data = (pkg / MODEL).read_bytes()
    (pkg / MODEL).write_bytes(data[: len(data) // 2])


def blob_offset_past_end(pkg):
    edit_model(pkg, lambda m: setattr(
        op(m, "weight").attributes["val"].blobFileValue, "offset", 1 << 20))


def huge_dims(pkg):
    def f(m):
        for t in (op(m, "weight").attributes["val"].type.tensorType,
                  op(m, "weight").outputs[0].type.tensorType):
            for d in t.dimensions:
                d.constant.size = 1 << 39
    edit_model(pkg, f)


def symlink_model_outside(pkg):
    outside = pkg.parent / "elsewhere.mlmodel"
    shutil.copy(pkg / MODEL, outside)
    (pkg / MODEL).unlink()
    (pkg / MODEL).symlink_to(outside)


def symlink_weights_outside(pkg):
    outside = pkg.parent / "elsewhere.bin"
    shutil.copy(pkg / WEIGHTS, outside)
    (pkg / WEIGHTS).unlink()
    (pkg / WEIGHTS).symlink_to(outside)


def unknown_dtype(pkg):
    edit_model(pkg, lambda m: setattr(
        m.mlProgram.functions["main"].inputs[0].type.tensorType, "dataType", 99))


def rank_mismatch(pkg):
    edit_model(pkg, lambda m: setattr(
        op(m, "op_22").outputs[0].type.tensorType, "rank", 3))


def output_disagrees(pkg):
    def f(m):
        op(m, "op_22").outputs[0].type.tensorType.dimensions[2].constant.size = 4
    edit_model(pkg, f)


def used_before_defined(pkg):
    def f(m):
        ops = main_block(m).operations
        conv = type(ops[0])()  # the conv (last op) moved to the front
        conv.CopyFrom(op(m, "op_22"))
        del ops[len(ops) - 1]
        ops.insert(0, conv)
    edit_model(pkg, f)


def manifest_symlink(pkg):
    outside = pkg.parent / "Manifest.json"
    shutil.move(pkg / "Manifest.json", outside)
    (pkg / "Manifest.json").symlink_to(outside)


def output_not_tensor(pkg):
    def f(m):
        t = op(m, "op_22").outputs[0].type
        t.listType.type.tensorType.dataType = t.tensorType.dataType  # switches the oneof
    edit_model(pkg, f)


def int64_feature(pkg):
    edit_model(pkg, lambda m: m.description.input[0].type.int64Type.SetInParent())


def sibling_block_var(pkg):
    import test_package  # its nested-block builder
    edit_model(pkg, lambda m: test_package.nest_blocks(m, b_ref="a_relu"))


def unknown_op(pkg):
    edit_model(pkg, lambda m: setattr(op(m, "op_22"), "type", "frobnicate"))


def no_manifest(pkg):
    (pkg / "Manifest.json").unlink()


def neural_network(pkg):
    # specificationVersion 4, neuralNetwork (field 500) empty: a model of
    # the older kind. 0xA2 0x1F is the tag of field 500, wire type 2.
    (pkg / MODEL).write_bytes(bytes([0x08, 0x04, 0xA2, 0x1F, 0x00]))


def conv_without_weight(pkg):
    def f(m):
        conv = op(m, "op_22")
        del conv.inputs["weight"]
    edit_model(pkg, f)


def zero_hides_huge(pkg):
    # [0, 2^32, 2^32]: no elements, but a product of two of its dims
    # overflows int64 wherever a kernel multiplies them
    def f(m):
        t = m.mlProgram.functions["main"].inputs[0].type.tensorType
        del t.dimensions[:]
        for n in (0, 1 << 32, 1 << 32):
            t.dimensions.add().constant.size = n
        t.rank = 3
    edit_model(pkg, f)


def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def deep_nesting(pkg):
    # Program attribute 'a' = tuple(tuple(tuple(...))) 5000 levels deep:
    # Value.immediateValue(3) -> ImmediateValue.tuple(2) -> TupleValue.values(1)
    v = b""
    for _ in range(5000):
        v = field(3, field(2, field(1, v)))
    program = field(4, field(1, b"a") + field(2, v))
    (pkg / MODEL).write_bytes(bytes([0x08, 0x08]) + field(502, program))


def nested_groups(pkg):
    # 200000 nested start-group tags (wire type 3, long gone from proto3)
    (pkg / MODEL).write_bytes(bytes([0x08, 0x08]) + b"\x0b" * 200000)


CASES = {
    # name: (how to break it, substrings the message must contain)
    "truncated_model": (truncate_model, ["model.mlmodel", "not a valid Model"]),
    "wrong_sentinel": (lambda p: patch(p / WEIGHTS, 64, b"\0\0\0\0"),
                       ["weight.bin", "sentinel"]),
    "blob_offset_past_end": (blob_offset_past_end, ["weight.bin", "offset 1048576"]),
    "size_overflows": (lambda p: patch(p / WEIGHTS, 72, struct.pack("<Q", 2**64 - 64)),
                       ["weight.bin", "sizeInBytes"]),
    "data_offset_overflows": (lambda p: patch(p / WEIGHTS, 80, struct.pack("<Q", 2**64 - 16)),
                              ["weight.bin", "data offset"]),
    "blob_dtype_mismatch": (lambda p: patch(p / WEIGHTS, 68, struct.pack("<I", 1)),
                            ["weight.bin", "BlobDataType"]),
    "blob_dtype_unknown": (lambda p: patch(p / WEIGHTS, 68, struct.pack("<I", 77)),
                           ["weight.bin", "BlobDataType 77"]),
    "blob_header_version": (lambda p: patch(p / WEIGHTS, 4, struct.pack("<I", 1)),
                            ["weight.bin", "version"]),
    "weight_bin_missing": (lambda p: (p / WEIGHTS).unlink(), ["weight.bin", "fileName"]),
    "huge_dims": (huge_dims, ["model.mlmodel", "dimensions"]),
    "manifest_dotdot": (lambda p: edit_manifest(p, lambda m: root_item(m).update(path="../../x")),
                        ["Manifest.json", "path '../../x'"]),
    "manifest_absolute": (lambda p: edit_manifest(p, lambda m: root_item(m).update(path="/etc/passwd")),
                          ["Manifest.json", "path '/etc/passwd'"]),
    "manifest_symlink_outside": (symlink_model_outside, ["Manifest.json", "leads outside"]),
    "weights_symlink_outside": (symlink_weights_outside, ["model.mlmodel", "fileName", "leads outside"]),
    "missing_root_id": (lambda p: edit_manifest(p, lambda m: m.pop("rootModelIdentifier")),
                        ["Manifest.json", "rootModelIdentifier"]),
    "root_id_not_found": (lambda p: edit_manifest(p, lambda m: m.update(rootModelIdentifier="X")),
                          ["Manifest.json", "rootModelIdentifier"]),
    "item_key_missing": (lambda p: edit_manifest(p, lambda m: root_item(m).pop("author")),
                         ["Manifest.json", "'author'"]),
    "format_version_newer": (lambda p: edit_manifest(p, lambda m: m.update(fileFormatVersion="2.0.0")),
                             ["Manifest.json", "fileFormatVersion"]),
    "format_version_garbage": (lambda p: edit_manifest(p, lambda m: m.update(fileFormatVersion="1.0")),
                               ["Manifest.json", "fileFormatVersion"]),
    "manifest_not_json": (lambda p: (p / "Manifest.json").write_text("{\"fileFormat"),
                          ["Manifest.json", "JSON"]),
    "unknown_dtype": (unknown_dtype, ["model.mlmodel", "input 'x'", "dataType", "99"]),
    "rank_mismatch": (rank_mismatch,
                      ["model.mlmodel", "op 'op_22' (conv): output 'var_22'", "rank"]),
    "output_disagrees": (output_disagrees,
                         ["model.mlmodel", "op 'op_22' (conv)", "output 0 'var_22'", "declared"]),
    "used_before_defined": (used_before_defined,
                            ["model.mlmodel", "op 'op_22' (conv)", "used before it is defined"]),
    "manifest_is_symlink": (manifest_symlink, ["Manifest.json", "leads outside"]),
    "blob_count_zero": (lambda p: patch(p / WEIGHTS, 0, struct.pack("<I", 0)),
                        ["weight.bin", "count is 0"]),
    "output_not_tensor": (output_not_tensor,
                          ["model.mlmodel", "op 'op_22' (conv): output 'var_22'",
                           "tensors only"]),
    "description_int64": (int64_feature,
                          ["model.mlmodel", "description: input[0] 'x'", "not supported"]),
    "name_from_sibling_block": (sibling_block_var,
                                ["model.mlmodel", "op 'op_22' (conv): block 1",
                                 "op 'b_relu' (relu): input 'x'",
                                 "'a_relu' is defined in another block"]),
    "unknown_op_type": (unknown_op, ["model.mlmodel", "op 'op_22'", "'frobnicate'"]),
    "no_manifest": (no_manifest, ["model.mlpackage/Manifest.json", "cannot open"]),
    "neural_network": (neural_network, ["model.mlmodel", "NeuralNetwork"]),
    "deep_nesting": (deep_nesting, ["model.mlmodel", "nested deeper"]),
    "nested_groups": (nested_groups, ["model.mlmodel", "not a valid Model"]),
    # issue 18's classes: arity (a required input missing), shape arithmetic
    # (a zero dim hiding huge ones), empty files
    "conv_without_weight": (conv_without_weight,
                            ["model.mlmodel", "op 'op_22' (conv)", "'weight'",
                             "required input is missing"]),
    "zero_hides_huge": (zero_hides_huge, ["model.mlmodel", "input 'x'",
                                          "more than 2^40 elements"]),
    "empty_model": (lambda p: (p / MODEL).write_bytes(b""), ["model.mlmodel"]),
    "empty_weight_bin": (lambda p: (p / WEIGHTS).write_bytes(b""),
                         ["weight.bin", "0 bytes"]),
    "empty_manifest": (lambda p: (p / "Manifest.json").write_bytes(b""),
                       ["Manifest.json"]),
    "spec_version_5": (lambda p: edit_model(p, lambda m: setattr(m, "specificationVersion", 5)),
                       ["model.mlmodel", "specificationVersion 5"]),
    "opset_newer_than_spec": (lambda p: edit_model(p, lambda m: setattr(m, "specificationVersion", 7)),
                              ["model.mlmodel", "opset 'CoreML7'"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_package(name, pkg, milk_san):
    breaker, expected = CASES[name]
    breaker(pkg)
    r = run(milk_san, "dump", pkg)
    assert r.returncode != 0
    for s in expected:
        assert s in r.stderr, f"{s!r} not in: {r.stderr}"


def test_bare_directory(tmp_path, milk_asan):
    """A directory with nothing in it is not a package."""
    d = tmp_path / "empty.mlpackage"
    d.mkdir()
    r = run(milk_asan, "dump", d)
    assert r.returncode != 0 and "empty.mlpackage/Manifest.json" in r.stderr


# ---- mutation ------------------------------------------------------------------


def mutate(data, rng):
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:  # truncate
        del b[rng.randrange(len(b)):]
    elif kind == 2:  # flip bits in the first few hundred bytes (headers, tags)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(min(len(b), 300))
            b[i] ^= 1 << rng.randrange(8)
    else:  # duplicate or drop a chunk
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        b[i:i] = b[i:j] if rng.random() < 0.5 else b""
        if rng.random() < 0.5:
            del b[i:j]
    return bytes(b)


def test_mutations(pkg, milk_asan, tmp_path):
    """A few hundred random mutations never crash: exit 0 (still valid) or 2
    (refused with a message), nothing else."""
    rng = random.Random(20261121)
    model = (pkg / MODEL).read_bytes()
    weights = (pkg / WEIGHTS).read_bytes()
    jobs = []
    for i in range(300):  # bare .mlmodel files sharing the package's weights
        path = pkg / MODEL.parent / f"m{i}.mlmodel"
        path.write_bytes(mutate(model, rng))
        jobs.append(path)
    for i in range(100):  # whole packages with a mutated weight.bin
        d = tmp_path / f"w{i}.mlpackage"
        shutil.copytree(pkg, d, ignore=shutil.ignore_patterns("m*.mlmodel"))
        (d / WEIGHTS).write_bytes(mutate(weights[:256], rng) + weights[256:])
        jobs.append(d)

    def one(path):
        r = run(milk_asan, "dump", path)
        assert r.returncode in (0, 2), f"{path}: exit {r.returncode}: {r.stderr}"
        if r.returncode:
            assert "mlmodel" in r.stderr or "Manifest.json" in r.stderr, r.stderr
        return r.returncode

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        codes = list(ex.map(one, jobs))
    assert codes.count(2) > 50  # the mutations did break things
