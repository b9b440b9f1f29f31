"""ONNX's own backend node tests through `milk convert` and `milk run`
(tools/onnx_conformance.py, expected values from ONNX's test data): at least
95% of the applicable tests pass, and the committed docs/onnx-conformance.md
lists the same results as a fresh run, so the document cannot go stale."""
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
    """Tests set apart from the rate are there for the reasons the document
    gives: an output computed at conversion time, or milk's documented
    limits (opset, I/O dtypes); never a failed run or comparison."""
    for (section, test), (harness, stage) in fresh["tests"].items():
        if section == "Computing nothing at run time":
            assert stage == "convert", test
        if section == "Outside milk's limits":
            assert stage in ("convert", "pass", "harness"), (test, stage)
            assert "opset" in harness or "cannot be" in harness or \
                "not a tensor" in harness, (test, harness)
