"""ONNX's own backend node tests through `milk convert` and `milk run`
(tools/onnx_conformance.py, expected values from ONNX's test data): at least
95% of the applicable tests pass (every test whose ops milk lowers, at
opsets 7 to 18, except those whose model I/O no Core ML model can have),
and the committed docs/onnx-conformance.md lists the same results as a
fresh run, so the document cannot go stale."""
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip("onnx")
DATA = pathlib.Path("/usr/share/libonnx-testdata/data/node")
DOC = ROOT / "docs" / "onnx-conformance.md"
MIN_RATE = 0.95


def parse(text):
    """{"summary": {label: count}, "tests": {(section, test): (harness,
    stage)}, "missing": {op: count}}; stage is the first word of the
    result ("pass", "convert", "run", "mismatch", "harness")."""
    out = {"summary": {}, "tests": {}, "missing": {}}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if section == "Summary" and len(cells) == 2 and cells[1][:1].isdigit():
            out["summary"][cells[0]] = int(cells[1].split()[0])
        elif len(cells) == 4 and cells[0].startswith("test_"):
            out["tests"][(section, cells[0])] = (cells[2], re.split(r"[: ]", cells[3])[0])
        elif section == "Not applicable" and len(cells) == 2 and cells[1].isdigit():
            out["missing"][cells[0]] = int(cells[1])
    return out


@pytest.fixture(scope="module")
def fresh(milk, tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip(f"{DATA} missing (Debian package libonnx-testdata)")
    out = tmp_path_factory.mktemp("conformance") / "onnx-conformance.md"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "onnx_conformance.py"),
                        "--milk", milk, "--out", str(out), "--jobs", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return parse(out.read_text())


def test_pass_rate(fresh):
    s = fresh["summary"]
    applicable, passed = s["applicable"], s["passed"]
    assert applicable >= 400, s  # the table covers most of ONNX's data
    counted = [v for (sec, _), v in fresh["tests"].items() if sec == "Applicable tests"]
    assert len(counted) == applicable
    assert sum(1 for _, stage in counted if stage == "pass") == passed
    assert passed >= MIN_RATE * applicable, \
        f"{passed} of {applicable} pass ({100.0 * passed / applicable:.1f}%)"


def test_document_is_current(fresh):
    """Regenerate with: tools/onnx_conformance.py (after make)."""
    committed = parse(DOC.read_text())
    assert committed["summary"] == fresh["summary"]
    assert committed["missing"] == fresh["missing"]
    old, new = committed["tests"], fresh["tests"]
    changed = sorted(f"{t}: {old.get(t)} -> {new.get(t)}"
                     for t in set(old) | set(new) if old.get(t) != new.get(t))
    assert not changed, "docs/onnx-conformance.md is stale:\n" + "\n".join(changed[:40])


def test_nothing_hidden(fresh):
    """Only tests whose model has I/O of a type no Core ML model can have
    are set apart from the rate, and they say which; never a failed run
    or comparison. The model files are never edited: the only harness
    notes a counted test may carry are the options milk was given
    (--freeze, and --target ios18 for a model left without inputs)."""
    apart = 0
    for (section, test), (harness, stage) in fresh["tests"].items():
        if section == "I/O types no Core ML model can have":
            apart += 1
            assert re.search(r"^(input|output) '.*' is .*, which Core ML model "
                             r"I/O cannot be$", harness), (test, harness)
            assert stage in ("convert", "pass", "harness"), (test, stage)
        else:
            assert section == "Applicable tests", (section, test)
            assert re.fullmatch(r"(--freeze [^;]+)?(; )?(--target ios18)?", harness), \
                (test, harness)
    assert apart == fresh["summary"][
        "I/O types no Core ML model can have (listed apart, not counted)"]


def test_denominator(fresh, milk):
    """The denominator, recounted here from ONNX's data without the
    script: every test whose ops are all in the lowering table and whose
    opset is 7 to 18 is applicable or listed apart, and only I/O types
    outside float, float16, int32, int64 and bool set a test apart."""
    import onnx
    from onnx import TensorProto
    r = subprocess.run([milk, "convert", "--list-ops"], capture_output=True, text=True)
    table = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    io_ok = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT32,
             TensorProto.INT64, TensorProto.BOOL}

    def ops(g):
        found = set()
        for n in g.node:
            found.add(n.op_type if n.domain in ("", "ai.onnx") else n.domain + "::" + n.op_type)
            for a in n.attribute:
                for sub in list(a.graphs) + ([a.g] if a.HasField("g") else []):
                    found |= ops(sub)
        return found

    counted, apart = set(), set()
    for d in DATA.iterdir():
        if not (d / "model.onnx").exists():
            continue
        m = onnx.load(str(d / "model.onnx"), load_external_data=False)
        opset = max([o.version for o in m.opset_import if o.domain in ("", "ai.onnx")],
                    default=1)
        if ops(m.graph) - table or not 7 <= opset <= 18:
            continue
        inits = {t.name for t in m.graph.initializer}
        io = [v for v in m.graph.input if v.name not in inits] + list(m.graph.output)
        bad = any(v.type.WhichOneof("value") != "tensor_type" or
                  v.type.tensor_type.elem_type not in io_ok for v in io)
        (apart if bad else counted).add(d.name)
    listed = {t for (sec, t) in fresh["tests"] if sec == "Applicable tests"}
    set_apart = {t for (sec, t) in fresh["tests"] if sec != "Applicable tests"}
    assert listed == counted, sorted(listed ^ counted)[:20]
    assert set_apart == apart, sorted(set_apart ^ apart)[:20]
