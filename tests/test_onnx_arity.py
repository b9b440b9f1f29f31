"""The lowering table's arity columns (src/onnx/lower.def, printed by
`milk convert --list-ops`) against ONNX's own operator schemas: for every
row, the fewest and most inputs and outputs a node may have over the
opsets milk converts. The converter refuses a node outside them before its
lowering runs, so a row that says less than ONNX refuses valid models, and
one that says more lets a lowering read inputs that are not there.

Debian's onnx (1.12) knows opsets up to 17; what changed from 18 to 21 for
the ops of the table is written out below from ONNX's operator changelog
(docs/Changelog.md)."""
import subprocess

import pytest
from onnx import defs

OPSETS = range(7, 22)
MANY = 2 ** 31 - 1  # what onnx.defs gives for an unbounded (variadic) arity
# Ops new after opset 17, or whose arity changed after it.
AFTER_17 = {
    "Gelu": (1, 1, 1, 1),  # opset 20
    # opset 18: axes becomes an optional input
    **{op: (1, 2, 1, 1) for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                                   "ReduceL1", "ReduceL2", "ReduceLogSum",
                                   "ReduceLogSumExp", "ReduceSumSquare")},
    "Pad": (1, 4, 1, 1),  # opset 18: the optional axes input
}


def schema_arity(op):
    if op in AFTER_17:
        return AFTER_17[op]
    schemas = []
    for v in OPSETS:
        try:
            schemas.append(defs.get_schema(op, v, ""))
        except defs.SchemaError:
            pass
    assert schemas, f"ONNX has no schema for {op}"
    return (min(s.min_input for s in schemas), max(s.max_input for s in schemas),
            min(s.min_output for s in schemas), max(s.max_output for s in schemas))


def parse(text):
    """'1-3' -> (1, 3); '2' -> (2, 2); '1+' -> (1, MANY)."""
    if text.endswith("+"):
        return int(text[:-1]), MANY
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def table(milk):
    r = subprocess.run([milk, "convert", "--list-ops"], capture_output=True,
                       text=True, check=True)
    rows = {}
    for line in r.stdout.splitlines():
        op, kin, ins, kout, outs, _ = line.split(None, 5)
        assert (kin, kout) == ("in", "out"), line
        rows[op] = parse(ins) + parse(outs)
    return rows


def test_arity_matches_onnx_schemas(milk):
    rows = table(milk)
    assert len(rows) >= 120
    wrong = {op: (got, schema_arity(op)) for op, got in rows.items()
             if got != schema_arity(op)}
    assert not wrong, f"(table, ONNX schema) differ: {wrong}"


def test_schema_after_17_is_really_newer():
    """Every op written out by hand is one Debian's onnx cannot check, or
    whose arity there is still the opset-17 one."""
    for op, want in AFTER_17.items():
        try:
            s = defs.get_schema(op, 17, "")
        except defs.SchemaError:
            continue
        assert (s.min_input, s.max_input) != want[:2], op
