"""Malformed ONNX models (issue 18): every one must end in exit status 2
with a message that names the file and the node or field at fault, no
sanitizer report and no output, under both sanitizer builds (gcc's, and
clang's, whose UBSan also checks pointer overflow such as NULL + 0).

The cases come in three classes, each with the fuzzer's reproducer
(tests/fixtures/fuzz/onnx/, from ../shared/fuzz-findings/) and more of the
same shape:
- arity: a node with fewer or more inputs or outputs than its op takes,
  or a required one left unnamed (checked against the lowering table's
  arity before any lowering runs);
- shape arithmetic: products of dims past 2^40 or int64 (checked by one
  helper, milk_dims_count);
- empty input: a 0-byte file, an empty message where a field is needed.
"""
import os
import pathlib
import subprocess

import pytest
from onnx import TensorProto, helper

import conftest

FUZZ = conftest.ROOT / "tests" / "fixtures" / "fuzz" / "onnx"
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error")
ENV = dict(os.environ,
           ASAN_OPTIONS="detect_leaks=1:exitcode=99",
           UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98")


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def model_bytes(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return m.SerializeToString()


def i64(name, values, dims=None):
    return helper.make_tensor(name, TensorProto.INT64,
                              [len(values)] if dims is None else dims, values)


X = vi("x", [2, 3])
Y = vi("y", None)


def _cases():
    """name: (ONNX bytes, substrings the message must hold)."""
    node = helper.make_node
    return {
        # ---- arity --------------------------------------------------------
        "dropout-no-input": ((FUZZ / "dropout-no-input.onnx").read_bytes(),
                             ["Dropout", "has 0 inputs; Dropout takes 1 to 3"]),
        "relu-two-inputs": (model_bytes([node("Relu", ["x", "x"], ["y"])], [X], [Y]),
                            ["(Relu", "has 2 inputs; Relu takes 1"]),
        "conv-weight-unnamed": (model_bytes([node("Conv", ["x", ""], ["y"])],
                                            [vi("x", [1, 1, 4, 4])], [Y]),
                                ["(Conv", "input 1 is required but has no name"]),
        "topk-one-output": (model_bytes([node("TopK", ["x", "k"], ["y"])], [X], [Y],
                                        [i64("k", [1])]),
                            ["(TopK", "has 1 output; TopK has 2"]),
        "add-output-unnamed": (model_bytes([node("Add", ["x", "x"], [""])], [X], [Y]),
                               ["(Add", "output 0 is required but has no name"]),
        # ---- shape arithmetic ------------------------------------------------
        "reshape-shape-overflow": ((FUZZ / "reshape-shape-overflow.onnx").read_bytes(),
                                   ["'/Reshape_2' (Reshape)",
                                    "target shape holds more than 2^40 elements"]),
        "tile-past-2^40": (model_bytes([node("Tile", ["x", "r"], ["y"])],
                                       [vi("x", [1024, 1024])], [Y],
                                       [i64("r", [1 << 20, 1 << 20])]),
                           ["(Tile", "holds more than 2^40 elements"]),
        "initializer-zero-hides-huge": (
            model_bytes([node("Add", ["x", "w"], ["y"])], [X], [Y],
                        [helper.make_tensor("w", TensorProto.FLOAT,
                                            [0, 1 << 32, 1 << 32], [])]),
            ["initializer", "more than 2^40 elements"]),
        "input-dims-overflow": (model_bytes([node("Relu", ["x"], ["y"])],
                                            [vi("x", [2, 1 << 32, 1 << 32])], [Y]),
                                ["'x'", "more than 2^40 elements"]),
        # ---- empty input --------------------------------------------------------
        "empty": ((FUZZ / "empty.onnx").read_bytes(), ["empty file (0 bytes)"]),
        # ModelProto with graph (field 7) present but empty: no nodes, no outputs
        "empty-graph": (bytes([0x08, 0x08, 0x3A, 0x00, 0x42, 0x02, 0x10, 0x11]),
                        ["graph"]),
        # found by fuzzing: a graph whose node and outputs were mangled
        # away (the fp16 pass then copied an empty, NULL, op list)
        "no-outputs": ((FUZZ / "no-outputs.onnx").read_bytes(),
                       ["the graph has no outputs"]),
        # a node (GraphProto field 1) with nothing in it: no op_type
        "empty-node": (bytes([0x08, 0x08, 0x3A, 0x02, 0x0A, 0x00,
                              0x42, 0x02, 0x10, 0x11]), ["op_type"]),
    }


@pytest.fixture(scope="module")
def cases():
    return _cases()


@pytest.mark.parametrize("name", sorted(_cases()))
def test_bad_onnx(name, cases, milk_san, tmp_path):
    data, expected = cases[name]
    src = tmp_path / f"{name}.onnx"
    src.write_bytes(data)
    out = tmp_path / "out.mlpackage"
    r = subprocess.run([milk_san, "convert", str(src), "-o", str(out)],
                       capture_output=True, text=True, errors="replace", env=ENV,
                       timeout=120)
    assert not any(s in r.stderr for s in SANITIZER), r.stderr
    assert r.returncode == 2, f"exit {r.returncode}: {r.stderr}"
    assert r.stderr.startswith("milk: ") and str(src) in r.stderr, r.stderr
    for s in expected:
        assert s in r.stderr, f"{s!r} not in: {r.stderr}"
    assert [p.name for p in tmp_path.iterdir()] == [src.name]  # nothing written
