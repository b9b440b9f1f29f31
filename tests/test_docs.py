"""Generated documents stay in step with the code they describe."""
import subprocess

from conftest import ROOT


def test_mil_ops_doc_is_current(milk):
    r = subprocess.run([milk, "ops", "--markdown"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (ROOT / "docs" / "mil-ops.md").read_text() == r.stdout, \
        "docs/mil-ops.md is stale: regenerate with build/milk ops --markdown > docs/mil-ops.md"


def test_mil_ops_doc_lists_every_table_row(milk):
    rows = [l for l in (ROOT / "src" / "ops" / "ops.def").read_text().splitlines()
            if l.startswith("MILK_OP(")]
    names = [r.split('"')[1] for r in rows]
    doc = (ROOT / "docs" / "mil-ops.md").read_text()
    for n in names:
        assert f"| {n} |" in doc, n
    assert f"{len(names)} ops." in doc
