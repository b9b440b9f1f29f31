"""The iOS26 target (specificationVersion 10, opset CoreML9), the names of
every target on macOS, tvOS, watchOS and visionOS, int8 model inputs and
outputs (iOS26 only; io-int8 rewrites them for older targets), and the
errors when an opset and a target disagree. Expected values: NumPy, and the
version table of coremltools' Model.proto and _deployment_compatibility.py."""
import json
import pathlib
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import BUILD

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "coremltools2"


def run(*args, ok=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def model_of(pkg):
    import Model_pb2
    m = Model_pb2.Model()
    m.ParseFromString((pkg / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    return m


def int8_program(tmp_path, target):
    """x int8 [2, 3] -> y = 2 * fp32(x), z = int8(x + 1)."""
    pkg = tmp_path / f"int8_{target}.mlpackage"
    spec = {"target": target, "output": str(pkg),
            "inputs": [{"name": "x", "dtype": "int8", "shape": [2, 3]}],
            "ops": [{"op": "cast", "name": "xf", "inputs": {"x": "x", "dtype": {"value": "fp32"}}},
                    {"op": "mul", "name": "y", "inputs": {"x": "xf", "y": {"value": 2.0, "dtype": "fp32"}}},
                    {"op": "cast", "name": "xi", "inputs": {"x": "x", "dtype": {"value": "int32"}}},
                    {"op": "add", "name": "s", "inputs": {"x": "xi", "y": {"value": 1}}},
                    {"op": "cast", "name": "z", "inputs": {"x": "s", "dtype": {"value": "int8"}}}],
            "outputs": ["y", "z"]}
    path = tmp_path / f"int8_{target}.json"
    path.write_text(json.dumps(spec))
    r = run(BUILD / "tools" / "mkprog", path, ok=False)
    return pkg, r


X8 = np.array([[-128, -3, 0], [1, 7, 126]], np.int8)


def test_ios26_int8_io(milk_asan, milk, tmp_path):
    pkg, r = int8_program(tmp_path, "ios26")
    assert r.returncode == 0, r.stderr
    m = model_of(pkg)
    assert m.specificationVersion == 10
    assert m.mlProgram.functions["main"].opset == "CoreML9"
    assert m.description.input[0].type.multiArrayType.dataType == 131080  # INT8
    assert m.description.output[1].type.multiArrayType.dataType == 131080
    assert "func main<ios26>(tensor<int8, [2, 3]> x)" in run(milk, "dump", pkg).stdout
    np.save(tmp_path / "x.npy", X8)
    run(milk_asan, "run", pkg, "--input", f"x={tmp_path / 'x.npy'}", "--output", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as o:
        assert np.array_equal(o["y"], 2 * X8.astype(np.float32))
        assert np.array_equal(o["z"], X8.astype(np.int32) + 1)
    # an ios26 package passes lint: no io-int8
    assert "io-int8" not in run(milk, "lint", pkg).stdout


def test_int8_io_refused_below_ios26(milk_asan, milk, tmp_path):
    """Below iOS26 the writer refuses int8 I/O; a package that has it
    anyway (spec 9) is flagged by io-int8, and --fix declares it int32."""
    _, r = int8_program(tmp_path, "ios18")
    assert r.returncode == 1
    assert "input 'x' is int8: Core ML takes int8 model inputs and outputs from iOS26 " \
           "(specificationVersion 10) on, the program targets ios18" in r.stderr
    src, _ = int8_program(tmp_path, "ios26")
    old = tmp_path / "old.mlpackage"
    shutil.copytree(src, old)
    m = model_of(old)
    m.specificationVersion = 9
    f = m.mlProgram.functions["main"]
    f.opset = "CoreML8"
    blk = f.block_specializations.pop("CoreML9")
    f.block_specializations["CoreML8"].CopyFrom(blk)
    (old / "Data/com.apple.CoreML/model.mlmodel").write_bytes(m.SerializeToString())
    r = run(milk, "lint", old, ok=False)
    assert r.returncode == 1 and "io-int8" in r.stdout and "input 'x' is int8 [2, 3]" in r.stdout
    fixed = tmp_path / "fixed.mlpackage"
    r = run(milk_asan, "lint", old, "--fix", "-o", fixed)
    assert "input 'x' is int32, cast to int8 inside" in r.stdout
    m = model_of(fixed)
    assert m.description.input[0].type.multiArrayType.dataType == 131104  # INT32
    assert m.description.output[1].type.multiArrayType.dataType == 131104
    np.save(tmp_path / "x32.npy", X8.astype(np.int32))
    run(milk, "run", fixed, "--input", f"x={tmp_path / 'x32.npy'}", "--output", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as o:
        assert np.array_equal(o["y"], 2 * X8.astype(np.float32))
        assert np.array_equal(o["z"], X8.astype(np.int32) + 1)


# (name, specificationVersion): coremltools' AvailableTarget, and visionOS
# from Model.proto's version list (visionOS 1 came with iOS17, 2 with iOS18)
NAMES = [("ios15", 6), ("macos12", 6), ("tvos15", 6), ("watchos8", 6),
         ("ios16", 7), ("macOS13", 7), ("tvos16", 7), ("watchos9", 7),
         ("ios17", 8), ("macos14", 8), ("tvos17", 8), ("watchos10", 8), ("visionos1", 8),
         ("ios18", 9), ("macos15", 9), ("tvos18", 9), ("watchos11", 9), ("visionos2", 9),
         ("ios26", 10), ("macos26", 10), ("tvos26", 10), ("watchos26", 10),
         ("visionOS26", 10)]


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    d = tmp_path_factory.mktemp("t")
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = d / "relu.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("name,spec", NAMES)
def test_target_names(milk, small_onnx, tmp_path, name, spec):
    out = tmp_path / "m.mlpackage"
    run(milk, "convert", small_onnx, "-o", out, "--target", name)
    m = model_of(out)
    assert m.specificationVersion == spec
    assert m.mlProgram.functions["main"].opset == f"CoreML{spec - 1}"


def test_unknown_target(milk, small_onnx, tmp_path):
    r = run(milk, "convert", small_onnx, "-o", tmp_path / "m.mlpackage", "--target", "ios19", ok=False)
    assert r.returncode == 2 and "--target is ios15..ios18 or ios26" in r.stderr


def test_onnx_int8_input(milk, tmp_path):
    """An int8 graph input converts for iOS26 and is refused below."""
    g = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["xf", "two"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    path = tmp_path / "i8.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    r = run(milk, "convert", path, "-o", tmp_path / "a.mlpackage", "--target", "ios18", ok=False)
    assert r.returncode == 2
    assert "input 'x' has data type INT8: Core ML takes int8 model inputs from iOS26 on" in r.stderr
    run(milk, "convert", path, "-o", tmp_path / "b.mlpackage", "--target", "ios26",
        "--precision", "fp32")
    np.save(tmp_path / "x.npy", X8)
    run(milk, "run", tmp_path / "b.mlpackage", "--input", f"x={tmp_path / 'x.npy'}",
        "--output", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as o:
        assert np.array_equal(o["y"], 2 * X8.astype(np.float32))


@pytest.mark.parametrize("what,edit,words", [
    # the function's opset newer than the package's specificationVersion
    ("opset above the target",
     lambda m: setattr(m, "specificationVersion", 8),
     ["opset 'CoreML8' needs specificationVersion 9 or later, the model has 8"]),
    # an iOS18 op in a function whose opset is iOS17
    ("op above the opset",
     lambda m: (m.mlProgram.functions["main"].__setattr__("opset", "CoreML7"),
                m.mlProgram.functions["main"].block_specializations["CoreML7"].CopyFrom(
                    m.mlProgram.functions["main"].block_specializations.pop("CoreML8"))),
     ["op 'read_state_0' (read_state): needs deployment target ios18 or later "
      "(the function's opset is ios17)"]),
    ("unknown opset",
     lambda m: (m.mlProgram.functions["main"].__setattr__("opset", "CoreML10"),
                m.mlProgram.functions["main"].block_specializations["CoreML10"].CopyFrom(
                    m.mlProgram.functions["main"].block_specializations.pop("CoreML8"))),
     ["opset 'CoreML10' is not supported (CoreML5 to CoreML9)"]),
    ("specificationVersion 11",
     lambda m: setattr(m, "specificationVersion", 11),
     ["specificationVersion 11: milk reads ML Programs of specificationVersion 6 (iOS15) "
      "to 10 (iOS26)"]),
])
def test_opset_target_errors(milk, tmp_path, what, edit, words):
    import Model_pb2
    pkg = tmp_path / "bad.mlpackage"
    shutil.copytree(FIX / "state_kv_cache" / "model.mlpackage", pkg)
    f = pkg / "Data/com.apple.CoreML/model.mlmodel"
    m = Model_pb2.Model()
    m.ParseFromString(f.read_bytes())
    edit(m)
    f.write_bytes(m.SerializeToString())
    r = run(milk, "dump", pkg, ok=False)
    assert r.returncode == 2, what
    for w in words:
        assert w in r.stderr, (what, r.stderr)


def test_spec10_package_reads_and_round_trips(milk, tmp_path):
    """coremltools' stateful fixture retargeted to iOS26 (spec 10, CoreML9):
    loads, runs, and is written back as spec 10."""
    import Model_pb2
    pkg = tmp_path / "s10.mlpackage"
    shutil.copytree(FIX / "state_accumulator" / "model.mlpackage", pkg)
    f = pkg / "Data/com.apple.CoreML/model.mlmodel"
    m = Model_pb2.Model()
    m.ParseFromString(f.read_bytes())
    m.specificationVersion = 10
    fn = m.mlProgram.functions["main"]
    fn.opset = "CoreML9"
    fn.block_specializations["CoreML9"].CopyFrom(fn.block_specializations.pop("CoreML8"))
    f.write_bytes(m.SerializeToString())
    assert "func main<ios26>(state<tensor<fp16, [1, 4]>> accumulator" in run(milk, "dump", pkg).stdout
    out = tmp_path / "rt.mlpackage"
    run(BUILD / "tools" / "package_tool", "roundtrip", pkg, out)
    assert model_of(out).specificationVersion == 10
    assert model_of(out).mlProgram.functions["main"].opset == "CoreML9"
