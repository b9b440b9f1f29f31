"""Package reader and writer against coremltools' own files.

Every package in tests/fixtures/coremltools/ (fp32 and fp16) is loaded and
saved again by milk (tests/tools/package_tool.c, ASan build); the two
model.mlmodel files are decoded with Google's protobuf and must be equal
messages, weight.bin must be byte for byte the same, and Manifest.json the
same structure with milk's own UUIDs. A fixture using an op the op table
does not know yet is skipped, naming the op.
"""
import json
import pathlib
import re
import shutil
import subprocess

import pytest

import conftest
import Model_pb2

ROOT = conftest.ROOT
MODEL = pathlib.Path("Data/com.apple.CoreML/model.mlmodel")
WEIGHTS = pathlib.Path("Data/com.apple.CoreML/weights/weight.bin")
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error")
PACKAGES = [(c, prec) for c in conftest.CASES for prec in ("fp32", "fp16")]


def table_ops():
    """MIL op names in the op table (src/ops/ops.def)."""
    text = (ROOT / "src" / "ops" / "ops.def").read_text()
    return set(re.findall(r'^MILK_OP\(\s*\w+\s*,\s*"([^"]+)"\s*\)', text, re.M))


def load_model(path):
    m = Model_pb2.Model()
    m.ParseFromString(pathlib.Path(path).read_bytes())
    return m


def op_types(model):
    """Every op type used in the program, nested blocks included."""
    found = set()

    def walk(block):
        for op in block.operations:
            found.add(op.type)
            for b in op.blocks:
                walk(b)

    for fn in model.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            walk(block)
    return found


def unknown_fields(msg):
    """Number of unknown fields anywhere in msg (fields our reduced .proto
    files do not declare, which milk would drop)."""
    n = len(msg.UnknownFields())
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            vals = value.values()
            if field.message_type.fields_by_name["value"].type != field.TYPE_MESSAGE:
                continue
        elif field.label == field.LABEL_REPEATED:
            vals = value
        else:
            vals = [value]
        n += sum(unknown_fields(v) for v in vals)
    return n


def fixture(case, prec):
    pkg = conftest.FIXTURES / case / f"model_{prec}.mlpackage"
    missing = sorted(op_types(load_model(pkg / MODEL)) - table_ops())
    if missing:
        pytest.skip(f"{case} {prec}: op table lacks {', '.join(missing)}")
    return pkg


def tool(*args, asan=True):
    exe = conftest.BUILD / ("asan/tools" if asan else "tools") / "package_tool"
    assert exe.exists(), f"{exe} is missing: run make pytest"
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True)
    assert not any(s in r.stderr for s in SANITIZER), r.stderr
    return r


def roundtrip(src, dst):
    r = tool("roundtrip", src, dst)
    assert r.returncode == 0, r.stderr
    return dst


def assert_same_model(a, b):
    ma, mb = load_model(a), load_model(b)
    if ma != mb:  # show where, not just that
        import difflib
        diff = difflib.unified_diff(str(ma).splitlines(), str(mb).splitlines(),
                                    "original", "milk", lineterm="", n=2)
        pytest.fail("model.mlmodel differs:\n" + "\n".join(list(diff)[:60]))


def manifest_items(path):
    m = json.loads(pathlib.Path(path).read_text())
    items = m["itemInfoEntries"]
    root = items[m["rootModelIdentifier"]]
    return m["fileFormatVersion"], root, sorted(map(json.dumps, items.values()))


@pytest.mark.parametrize("case,prec", PACKAGES)
def test_roundtrip(case, prec, tmp_path):
    pkg = fixture(case, prec)
    original = load_model(pkg / MODEL)
    assert unknown_fields(original) == 0, "the reduced .proto files miss fields"
    out = roundtrip(pkg, tmp_path / "out.mlpackage")
    assert_same_model(pkg / MODEL, out / MODEL)
    assert (out / WEIGHTS).read_bytes() == (pkg / WEIGHTS).read_bytes()
    assert manifest_items(out / "Manifest.json") == manifest_items(pkg / "Manifest.json")


@pytest.mark.parametrize("case,prec", PACKAGES[:2])
def test_manifest_text(case, prec, tmp_path):
    """Manifest.json as coremltools writes it: 4-space indentation, sorted
    keys, trailing newline; identifiers are fresh upper-case UUIDs."""
    out = roundtrip(fixture(case, prec), tmp_path / "out.mlpackage")
    text = (out / "Manifest.json").read_text()
    m = json.loads(text)
    assert text == json.dumps(m, indent=4, sort_keys=True) + "\n"
    uuid = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")
    ids = list(m["itemInfoEntries"])
    assert len(ids) == 2 and all(uuid.match(i) for i in ids)
    again = roundtrip(out, tmp_path / "again.mlpackage")
    ids2 = json.loads((again / "Manifest.json").read_text())["itemInfoEntries"]
    assert not set(ids) & set(ids2)


def test_resave_is_stable(tmp_path):
    """A package milk wrote reads back and writes again identically (and
    the optimized build writes the same bytes as the ASan one)."""
    pkg = fixture("attention", "fp16")
    one = roundtrip(pkg, tmp_path / "one.mlpackage")
    two = roundtrip(one, tmp_path / "two.mlpackage")
    r = tool("roundtrip", one, tmp_path / "three.mlpackage", asan=False)
    assert r.returncode == 0, r.stderr
    for other in (two, tmp_path / "three.mlpackage"):
        assert (other / MODEL).read_bytes() == (one / MODEL).read_bytes()
        assert (other / WEIGHTS).read_bytes() == (one / WEIGHTS).read_bytes()


def test_save_over_itself(tmp_path):
    """Loading a package and saving it to the same path replaces it with an
    equal package (the weights are streamed from the old files while the
    new ones are written beside them)."""
    pkg = fixture("conv2d_edge", "fp16")
    work = tmp_path / "m.mlpackage"
    shutil.copytree(pkg, work)
    roundtrip(work, work)
    assert_same_model(pkg / MODEL, work / MODEL)
    assert (work / WEIGHTS).read_bytes() == (pkg / WEIGHTS).read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["m.mlpackage"]


@pytest.mark.parametrize("variant", ["arrays", "image"])
def test_description_roundtrip(variant, tmp_path):
    """Parts of the description the coremltools fixtures leave empty
    (metadata strings, short descriptions, flexible shapes, optional and
    image features) come back unchanged."""
    pkg = tmp_path / "in.mlpackage"
    shutil.copytree(fixture("conv2d_edge", "fp32"), pkg)
    m = load_model(pkg / MODEL)
    meta = m.description.metadata
    meta.author, meta.license = "milk tests", "MIT"
    meta.shortDescription, meta.versionString = "a conv", "1.2.3"
    x, y = m.description.input[0], m.description.output[0]
    x.shortDescription = "the input"
    if variant == "arrays":
        for lo, hi in ((1, 4), (2, 2), (5, 5), (5, -1)):
            r = x.type.multiArrayType.shapeRange.sizeRanges.add()
            r.lowerBound, r.upperBound = lo, hi
        for shape in ((1, 2, 3, 3), (2, 2, 3, 3)):
            y.type.multiArrayType.enumeratedShapes.shapes.add().shape.extend(shape)
    else:
        x.type.isOptional = True
        x.type.imageType.width, x.type.imageType.height = 5, 5
        x.type.imageType.colorSpace = Model_pb2.FeatureTypes__pb2.ImageFeatureType.BGR
    (pkg / MODEL).write_bytes(m.SerializeToString())
    out = roundtrip(pkg, tmp_path / "out.mlpackage")
    assert_same_model(pkg / MODEL, out / MODEL)


def tensor_type(t, dtype, shape):
    t.tensorType.dataType = dtype
    t.tensorType.rank = len(shape)
    for d in shape:
        t.tensorType.dimensions.add().constant.size = d


def add_op(block, kind, name, inputs, out_shape, dtype):
    o = block.operations.add()
    o.type = kind
    for param, var in inputs.items():
        o.inputs[param].arguments.add().name = var
    out = o.outputs.add()
    out.name = name
    tensor_type(out.type, dtype, out_shape)
    nv = o.attributes["name"]
    nv.type.tensorType.dataType = Model_pb2.MIL__pb2.STRING
    nv.immediateValue.tensor.strings.values.append(name)
    return o


def nest_blocks(m, b_ref="weight"):
    """Give conv2d_edge's conv two nested blocks (as control flow ops have):
    one with a block input and a use of the function input, one using a
    const of the enclosing block. Our reader does not ask whether an op
    takes blocks, so this exercises nested scopes with the ops at hand."""
    fp32 = Model_pb2.MIL__pb2.FLOAT32
    fn = m.mlProgram.functions["main"]
    conv = fn.block_specializations[fn.opset].operations[-1]
    a = conv.blocks.add()
    inp = a.inputs.add()
    inp.name = "a_in"
    tensor_type(inp.type, fp32, [1, 2, 5, 5])
    add_op(a, "relu", "a_relu", {"x": "a_in"}, [1, 2, 5, 5], fp32)
    add_op(a, "add", "a_sum", {"x": "a_relu", "y": "x"}, [1, 2, 5, 5], fp32)
    a.outputs.append("a_sum")
    b = conv.blocks.add()
    add_op(b, "relu", "b_relu", {"x": b_ref}, [2, 2, 3, 2], fp32)
    b.outputs.append("b_relu")


def test_nested_blocks_roundtrip(tmp_path):
    pkg = tmp_path / "in.mlpackage"
    shutil.copytree(fixture("conv2d_edge", "fp32"), pkg)
    m = load_model(pkg / MODEL)
    nest_blocks(m)
    (pkg / MODEL).write_bytes(m.SerializeToString())
    out = roundtrip(pkg, tmp_path / "out.mlpackage")
    assert_same_model(pkg / MODEL, out / MODEL)


def test_bare_mlmodel(tmp_path):
    """A bare .mlmodel finds its blobs in weights/ beside it."""
    pkg = fixture("resblock", "fp32")
    shutil.copy(pkg / MODEL, tmp_path / "resblock.mlmodel")
    shutil.copytree(pkg / WEIGHTS.parent, tmp_path / "weights")
    out = roundtrip(tmp_path / "resblock.mlmodel", tmp_path / "out.mlpackage")
    assert_same_model(pkg / MODEL, out / MODEL)
    assert (out / WEIGHTS).read_bytes() == (pkg / WEIGHTS).read_bytes()
    shutil.rmtree(tmp_path / "weights")
    r = tool("load", tmp_path / "resblock.mlmodel")
    assert r.returncode == 1 and "weight.bin" in r.stderr and "fileName" in r.stderr


def test_dump_loads_every_fixture(milk_asan):
    """`milk dump` gets past loading for every fixture the table covers."""
    for case, prec in PACKAGES:
        pkg = conftest.FIXTURES / case / f"model_{prec}.mlpackage"
        if op_types(load_model(pkg / MODEL)) - table_ops():
            continue
        r = subprocess.run([milk_asan, "dump", str(pkg)], capture_output=True, text=True)
        assert not any(s in r.stderr for s in SANITIZER), r.stderr
        assert "mlmodel" not in r.stderr, r.stderr
