#!/usr/bin/python3
"""onnx_conformance.py: runs ONNX's own backend node tests through milk and
writes docs/onnx-conformance.md.

A test applies when every op of its model (subgraphs included) is in
milk's lowering table (`milk convert --list-ops`) and its model's opset is
7 to 18. Each applicable test counts in the pass rate, whatever happens to
it, with one exception, listed apart: a test whose model has an input or
output of a type no Core ML model can have (double, 8- and 16-bit and
unsigned integers, bfloat16, strings, sequences, optionals). Those are run
all the same and their results shown, but not counted.

For each test the script converts model.onnx at fp32 (`milk convert
--precision fp32`), runs every test_data_set_* with `milk run` (inputs
from input_*.pb, expected values from output_*.pb, read with
onnx.numpy_helper) and compares with ONNX's backend-test tolerance: rtol
1e-3, atol 1e-7 for floats, exact for integers and bools; shapes must
match; int64 expected values are compared with milk's int32 by value. The
expected values come from ONNX, never from milk. The model file is never
edited.

Core ML model I/O is float or int32 arrays of rank 1 or more, and milk
converts the boundary the way coremltools does: a bool input or output is
declared int32 (so the script feeds bool data as int32 and compares a bool
output's 0/1 values exactly), a scalar one is declared [1] (so a scalar
input is fed as [1] and a scalar output compared as [1]). milk needs
shapes, axes, pads, scales and the like at conversion time: when milk says
an input must be a constant (or it is an empty tensor, which no Core ML
input can be), the script passes the data set's value with `milk convert
--freeze NAME=FILE.npy`; when milk says a model left without inputs needs
iOS18, the script converts with `--target ios18`. The document says so for
each test (column "harness").

    tools/onnx_conformance.py [--milk build/milk] [--out docs/onnx-conformance.md]
                              [--data DIR] [--jobs 2] [--only SUBSTRING]

Exit status 0 when the document was written (whatever the pass rate).
"""
import argparse
import multiprocessing
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path("/usr/share/libonnx-testdata/data/node")
RTOL, ATOL = 1e-3, 1e-7
TIMEOUT = 120      # seconds per milk command; none of these tests comes close
MAX_ROUNDS = 8     # conversions per data set while finding inputs to freeze
# The opsets whose tests count. Fixed here rather than read from milk, so
# that narrowing what milk converts cannot shrink the denominator; ONNX
# 1.12's data goes up to opset 17.
OPSETS = (7, 18)
# What Core ML model I/O can be, at milk's boundary (int64 becomes int32,
# bool int32): any other element type cannot be a model input or output.
IO_DTYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT32,
             TensorProto.INT64, TensorProto.BOOL}
NOT_TENSOR = {"sequence_type": "a sequence", "optional_type": "an optional",
              "map_type": "a map", "sparse_tensor_type": "a sparse tensor"}


# ---- which tests apply ------------------------------------------------------------


def lowered_ops(milk):
    """The ONNX op types of milk's lowering table."""
    r = subprocess.run([milk, "convert", "--list-ops"], capture_output=True,
                       text=True, check=True)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


def graph_ops(graph):
    """Op types a graph uses ("domain::Op" outside the default domain),
    subgraphs (If, Loop, Scan bodies) included."""
    ops = set()
    for n in graph.node:
        dflt = n.domain in ("", "ai.onnx")
        ops.add(n.op_type if dflt else f"{n.domain}::{n.op_type}")
        for a in n.attribute:
            for g in list(a.graphs) + ([a.g] if a.HasField("g") else []):
                ops |= graph_ops(g)
    return ops


def model_io(model):
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    return inputs, list(model.graph.output)


def model_opset(model):
    return max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
               default=1)


def io_limits(model):
    """Why no Core ML model can have this model's inputs or outputs, or
    None."""
    inputs, outputs = model_io(model)
    for kind, vis in (("input", inputs), ("output", outputs)):
        for vi in vis:
            field = vi.type.WhichOneof("value")
            if field != "tensor_type":
                what = NOT_TENSOR.get(field, "not a tensor")
                return f"{kind} '{vi.name}' is {what}, which Core ML model I/O cannot be"
            t = vi.type.tensor_type.elem_type
            if t not in IO_DTYPES:
                return (f"{kind} '{vi.name}' is {TensorProto.DataType.Name(t)}, "
                        "which Core ML model I/O cannot be")
    return None


def survey(data, table, only):
    """(tests to count, [(test, reason)] listed apart, {missing op: tests
    needing it}, {opset outside OPSETS: tests}, number of tests not
    applicable)."""
    counted, apart, missing, opsets, n_na = [], [], {}, {}, 0
    for d in sorted(p for p in data.iterdir() if (p / "model.onnx").exists()):
        if only and only not in d.name:
            continue
        m = onnx.load(str(d / "model.onnx"), load_external_data=False)
        lacking = sorted(graph_ops(m.graph) - table)
        v = model_opset(m)
        if lacking or not OPSETS[0] <= v <= OPSETS[1]:
            n_na += 1
            for op in lacking:
                missing[op] = missing.get(op, 0) + 1
            if not lacking:
                opsets[v] = opsets.get(v, 0) + 1
            continue
        why = io_limits(m)
        if why:
            apart.append((d, why))
        else:
            counted.append(d)
    return counted, apart, missing, opsets, n_na


# ---- inputs milk needs at conversion time -----------------------------------------


def mil_name(onnx_name):
    """The name milk gives the var of an ONNX tensor (coremltools' rule,
    docs/coreml-format.md section 6)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", onnx_name)
    return s if re.match(r"[A-Za-z_]", onnx_name) else "var_" + s


def input_ancestors(graph, name, input_names):
    """The graph inputs tensor `name` is computed from."""
    producer = {o: n for n in graph.node for o in n.output}
    seen, todo, found = set(), [name], set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in input_names:
            found.add(t)
        todo.extend(i for i in (producer[t].input if t in producer else []) if i)
    return found


def to_freeze(stderr, model, input_names):
    """The graph inputs to give milk with --freeze after it refused the
    model: those it says must be constants, or those a value it says must
    be a constant is computed from."""
    found = set()
    for name in re.findall(r"input \d+ \('([^']+)'\) must be a constant", stderr):
        found |= {name} if name in input_names else \
            input_ancestors(model.graph, name, input_names)
    return found


# ---- one test ----------------------------------------------------------------------


def clean(text, tmp, test_dir):
    """A milk message made stable and short for the document: temporary
    and data paths replaced, lines joined."""
    text = text.replace(str(tmp) + "/", "").replace(str(test_dir) + "/", "")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    lines = [ln[len("milk: "):] if ln.startswith("milk: ") else ln for ln in lines]
    lines = [ln for ln in lines if not ln.startswith("note:")]
    out = " / ".join(lines).replace("|", "\\|")
    return out if len(out) <= 400 else out[:397] + "..."


def load_pb(path):
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return t.name, numpy_helper.to_array(t)


def pb_files(ds, kind):
    return sorted(ds.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))


def is_static(vi):
    tt = vi.type.tensor_type
    return tt.HasField("shape") and all(d.HasField("dim_value") and d.dim_value > 0
                                        for d in tt.shape.dim)


def compare(name, want, got):
    """None if got matches want, else the reason."""
    if got is None:
        return f"output '{name}' missing from milk's results"
    if tuple(got.shape) != tuple(want.shape):
        return (f"output '{name}': shape {list(got.shape)}, expected "
                f"{list(want.shape)}")
    if want.dtype == bool or np.issubdtype(want.dtype, np.integer):
        bad = int(np.count_nonzero(want.astype(np.int64) != got.astype(np.int64)))
        return None if bad == 0 else f"output '{name}': {bad} of {want.size} values differ"
    w, g = want.astype(np.float64), got.astype(np.float64)
    same = (np.isnan(w) & np.isnan(g)) | (w == g)  # NaN and infinities alike
    err = np.where(same, 0.0, np.abs(g - w))
    err = np.where(np.isnan(err), np.inf, err)
    if np.all(err <= ATOL + RTOL * np.abs(w)):
        return None
    return (f"output '{name}': max abs error {np.max(err):.3g} "
            f"(rtol {RTOL}, atol {ATOL})")


def run_cmd(args):
    try:
        return subprocess.run([str(a) for a in args], capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, -1, "", f"timed out after {TIMEOUT} s")


class Case:
    """One test: its model, where it runs, and the inputs frozen so far
    (kept from one data set to the next)."""

    def __init__(self, milk, test_dir, tmp):
        self.milk, self.dir, self.tmp = milk, test_dir, tmp
        self.model = onnx.load(str(test_dir / "model.onnx"), load_external_data=False)
        self.inputs, self.outputs = model_io(self.model)
        self.names = {vi.name for vi in self.inputs}
        self.frozen = set()
        self.target = None  # --target, when milk says the default cannot be

    def convert_args(self, feeds, pkg):
        args = [self.milk, "convert", self.dir / "model.onnx", "-o", pkg,
                "--precision", "fp32"]
        if self.target:
            args += ["--target", self.target]
        for k, vi in enumerate(self.inputs):
            if vi.name in self.frozen:
                path = self.tmp / f"frozen{k}.npy"
                np.save(path, feeds[vi.name])
                args += ["--freeze", f"{vi.name}={path}"]
            elif vi.name in feeds and not is_static(vi):
                dims = ",".join(str(d) for d in feeds[vi.name].shape)
                args += ["--input-shape", f"{vi.name}={dims}"]
        return args

    def convert(self, feeds, pkg):
        """Convert, freezing the inputs milk needs at conversion time (and
        at the target milk asks for a model left without inputs); returns
        milk's error or ""."""
        for name, arr in feeds.items():
            if name in self.names and arr.size == 0:
                self.frozen.add(name)  # no empty Core ML inputs
        for _ in range(MAX_ROUNDS):
            r = run_cmd(self.convert_args(feeds, pkg))
            if r.returncode == 0:
                return ""
            new = to_freeze(r.stderr, self.model, self.names & set(feeds)) - self.frozen
            target = re.search(r"no inputs?.*convert with --target (ios\d+)", r.stderr)
            if not new and not (target and not self.target):
                return clean(r.stderr or r.stdout, self.tmp, self.dir)
            self.frozen |= new
            if target and not new:
                self.target = target.group(1)
        return "the model kept needing inputs frozen"

    def note(self):
        """The harness column: the milk options the test needed."""
        parts = ["--freeze " + ", ".join(sorted(self.frozen))] if self.frozen else []
        return "; ".join(parts + ([f"--target {self.target}"] if self.target else []))

    def run(self, ds):
        """"" if data set ds passes, else the reason."""
        feeds = {}
        for k, p in enumerate(pb_files(ds, "input")):
            name, arr = load_pb(p)
            feeds[name or self.inputs[k].name] = arr
        pkg = self.tmp / f"{ds.name}.mlpackage"
        err = self.convert(feeds, pkg)
        if err:
            return "convert: " + err
        args = [self.milk, "run", pkg, "--output", self.tmp / "out.npz"]
        for i, (name, arr) in enumerate(feeds.items()):
            if name in self.frozen:
                continue
            path = self.tmp / f"in{i}.npy"
            # milk declares bool inputs int32 and scalars [1]
            arr = arr.astype(np.int32) if arr.dtype == bool else arr
            np.save(path, arr.reshape(1) if arr.ndim == 0 else arr)
            args += ["--input", f"{mil_name(name)}={path}"]
        r = run_cmd(args)
        if r.returncode != 0:
            return "run: " + clean(r.stderr, self.tmp, self.dir)
        with np.load(self.tmp / "out.npz") as z:
            got = {k: z[k] for k in z.files}
        for k, p in enumerate(pb_files(ds, "output")):
            name, want = load_pb(p)
            name = name or self.outputs[k].name
            # milk declares scalar outputs [1]
            why = compare(name, want.reshape(1) if want.ndim == 0 else want,
                          got.get(mil_name(name)))
            if why:
                return "mismatch: " + why
        return ""


def run_test(job):
    """(test name, ops, harness note, result): result "pass" or
    "stage: reason"."""
    milk, test_dir = job
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="milk-conf-"))
    try:
        case = Case(milk, test_dir, tmp)
        ops = " ".join(sorted(graph_ops(case.model.graph)))
        sets = sorted(test_dir.glob("test_data_set_*"))
        why = "" if sets else "harness: no test_data_set_*"
        for ds in sets:
            try:
                why = case.run(ds)
            except Exception as e:  # data ONNX's own helper cannot read
                why = f"harness: {type(e).__name__}: {e}"
            if why:
                if len(sets) > 1:
                    why = f"{why} ({ds.name})"
                break
        return test_dir.name, ops, case.note(), why or "pass"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the document --------------------------------------------------------------------


def table(rows):
    out = ["| test | ops | harness | result |", "|---|---|---|---|"]
    out += [f"| {name} | {ops} | {note} | {r} |" for name, ops, note, r in rows]
    return out


def render(results, apart, missing, opsets, n_na, data):
    n = len(results)
    passed = sum(1 for *_, r in results if r == "pass")
    pct = 100.0 * passed / n if n else 0.0
    kinds = {}
    for *_, r in results:
        if r != "pass":
            kinds[r.split(":")[0]] = kinds.get(r.split(":")[0], 0) + 1
    n_ops = n_na - sum(opsets.values())
    out = ["# ONNX conformance",
           "",
           "Generated by `tools/onnx_conformance.py` (do not edit by hand; "
           "`tests/test_onnx_conformance.py` checks that this file lists what "
           "the script finds). The tests are ONNX's backend node tests "
           f"(`{data}`, Debian's libonnx-testdata). A test applies when every "
           "op of its model is in milk's lowering table (`milk convert "
           f"--list-ops`) and its opset is {OPSETS[0]} to {OPSETS[1]}; every "
           "applicable test counts, except those listed apart because their "
           "model has an input or output of a type no Core ML model can have. "
           "The model file is converted as it is, at fp32, and each data set "
           "is run with `milk run` and compared with ONNX's expected outputs: "
           f"rtol {RTOL}, atol {ATOL} for floats, exact for integers and bools, "
           "shapes equal (int64 expected values against milk's int32 by value).",
           "",
           "At the model's boundary milk does what coremltools does: bool "
           "inputs and outputs are declared int32 (fed as int32, compared "
           "exactly), scalar ones are declared [1] (fed and compared as [1]), "
           "and an output no op computes (a constant, a graph input) is "
           "produced by `identity`. Column *harness*: the `milk convert` "
           "options a test needed. `--freeze NAME`: the data set's value of "
           "input NAME was given to `--freeze` because milk needs it at "
           "conversion time (a shape, axes, pads, scales...) or because it is "
           "empty (no Core ML input is). `--target ios18`: the model has no "
           "input left (none, or all frozen), which Core ML takes from iOS18 "
           "on; the other tests convert for milk's default target, iOS17.",
           "",
           "## Summary",
           "",
           "| | tests |",
           "|---|---:|",
           f"| applicable | {n} |",
           f"| passed | {passed} ({pct:.1f}%) |",
           f"| failed | {n - passed} |"]
    out += [f"| failed: {k} | {kinds[k]} |" for k in sorted(kinds)]
    out += [f"| I/O types no Core ML model can have (listed apart, not counted) | "
            f"{len(apart)} |",
            f"| not applicable: an op outside the table | {n_ops} |",
            f"| not applicable: opset outside {OPSETS[0]}..{OPSETS[1]} | "
            f"{sum(opsets.values())} |",
            "",
            "## Applicable tests",
            "",
            "Result `pass`, or the stage that failed (`convert`, `run`, "
            "`mismatch`) and milk's message or the largest error.",
            ""]
    out += table(results)
    out += ["",
            "## I/O types no Core ML model can have",
            "",
            "Every op is in the table, but an input or output of the model is "
            "of a type Core ML model I/O cannot be (column *harness* says "
            "which). Run all the same, not counted above.",
            ""]
    out += table(apart)
    out += ["",
            "## Not applicable",
            "",
            "Tests needing an op outside the lowering table, by op (a test "
            "needing several is counted under each).",
            "",
            "| op | tests |",
            "|---|---:|"]
    out += [f"| {op} | {missing[op]} |" for op in sorted(missing)]
    out += ["",
            f"Tests whose ops are all in the table, at an opset outside "
            f"{OPSETS[0]}..{OPSETS[1]}:",
            "",
            "| opset | tests |",
            "|---|---:|"]
    out += [f"| opset {v} | {opsets[v]} |" for v in sorted(opsets)]
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    build = pathlib.Path(os.environ.get("MILK_BUILD", ROOT / "build"))
    ap.add_argument("--milk", default=str(build / "milk"))
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(ROOT / "docs" / "onnx-conformance.md"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="only tests whose name contains this")
    a = ap.parse_args(argv)
    data = pathlib.Path(a.data)
    counted, apart, missing, opsets, n_na = survey(data, lowered_ops(a.milk), a.only)
    jobs = [(a.milk, d) for d in counted] + [(a.milk, d) for d, _ in apart]
    with multiprocessing.Pool(max(1, a.jobs)) as pool:
        done = pool.map(run_test, jobs, chunksize=4)
    results, listed = done[:len(counted)], done[len(counted):]
    listed = [(name, ops, why, r) for (name, ops, _, r), (_, why) in zip(listed, apart)]
    doc = render(results, listed, missing, opsets, n_na, data)
    tmp = pathlib.Path(a.out + ".tmp")
    tmp.write_text(doc)
    tmp.replace(a.out)  # never a half-written document
    passed = sum(1 for *_, r in results if r == "pass")
    print(f"{a.out}: {passed} of {len(results)} applicable tests pass "
          f"({100.0 * passed / max(1, len(results)):.1f}%); {len(apart)} listed apart "
          f"(I/O types); {n_na} not applicable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
