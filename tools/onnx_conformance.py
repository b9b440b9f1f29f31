#!/usr/bin/python3
"""onnx_conformance.py: runs ONNX's own backend node tests through milk and
writes docs/onnx-conformance.md.

For every test under the ONNX test data directory (Debian's
libonnx-testdata: /usr/share/libonnx-testdata/data/node/test_*) whose ops
are all in milk's lowering table (`milk convert --list-ops`), the script
converts model.onnx at fp32 (`milk convert --precision fp32`), runs every
test_data_set_* with `milk run` (inputs from input_*.pb, expected values
from output_*.pb, read with onnx.numpy_helper) and compares with ONNX's
backend-test tolerance: rtol 1e-3, atol 1e-7 for floats, exact for integers
and bools; shapes must match; int64 expected values are compared with
milk's int32 by value. The expected values come from ONNX, never from milk.

The backend tests are written for runtimes that take any tensor as a model
input. A Core ML model cannot: its inputs and outputs are float or int32
arrays of rank 1 or more, and milk needs shapes, axes, pads and the like
as constants. When milk refuses a test's model for one of these reasons,
and only then, the script adapts the model the way coremltools adapts
model I/O, and says so in the document (column "harness"):

  frozen: NAME      the input becomes an initializer holding the data set's
                    value (milk said it must be a constant, or it is an
                    empty tensor);
  bool I/O: NAME    a bool input is fed as int32 through Cast(to=BOOL), a
                    bool output read through Cast(to=INT32), compared
                    exactly;
  scalar I/O: NAME  a scalar input is fed as [1] through Reshape, a scalar
                    output read through Reshape to [1] and compared with
                    the expected value as [1].

Tests with an op outside the table are not applicable: they are counted,
one line per missing op, not listed one by one. Tests whose model is at an
opset milk does not convert, or has an input or output of a data type
Core ML models cannot take (double, 8- and 16-bit and unsigned integers,
strings, sequences), are run and listed apart, outside the pass rate; so
are the tests whose model, once shapes are static, computes nothing at
run time (an output is a constant, or a graph input passed through), which
milk refuses to convert: a Core ML output must be computed by an op.

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
from onnx import TensorProto, helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = pathlib.Path("/usr/share/libonnx-testdata/data/node")
RTOL, ATOL = 1e-3, 1e-7
TIMEOUT = 120      # seconds per milk command; none of these tests comes close
MAX_ROUNDS = 8     # conversions per data set while adapting the model
IO_DTYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT32,
             TensorProto.INT64, TensorProto.BOOL}


# ---- which tests apply ------------------------------------------------------------


def lowered_ops(milk):
    """The ONNX op types of milk's lowering table."""
    r = subprocess.run([milk, "convert", "--list-ops"], capture_output=True,
                       text=True, check=True)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


def opset_range():
    """The opsets of the default domain milk converts (src/onnx/convert.c)."""
    src = (ROOT / "src" / "onnx" / "convert.c").read_text()
    lo = re.search(r"#define MIN_OPSET (\d+)", src)
    hi = re.search(r"#define MAX_OPSET (\d+)", src)
    return int(lo.group(1)) if lo else 7, int(hi.group(1)) if hi else 21


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


def outside_limits(model, opsets):
    """Why milk does not take this model by design, or None."""
    v = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
            default=1)
    if not opsets[0] <= v <= opsets[1]:
        return f"opset {v} (milk converts {opsets[0]} to {opsets[1]})"
    inputs, outputs = model_io(model)
    for kind, vis in (("input", inputs), ("output", outputs)):
        for vi in vis:
            if not vi.type.HasField("tensor_type"):
                return f"{kind} '{vi.name}' is not a tensor"
            t = vi.type.tensor_type.elem_type
            if t not in IO_DTYPES:
                return (f"{kind} '{vi.name}' is {TensorProto.DataType.Name(t)}, "
                        "which Core ML model I/O cannot be")
    return None


def survey(data, table, opsets, only):
    """(tests to count, [(test, reason)] outside milk's limits,
    {missing op: tests needing it}, number of tests not applicable)."""
    counted, limits, missing, n_na = [], [], {}, 0
    for d in sorted(p for p in data.iterdir() if (p / "model.onnx").exists()):
        if only and only not in d.name:
            continue
        m = onnx.load(str(d / "model.onnx"), load_external_data=False)
        lacking = sorted(graph_ops(m.graph) - table)
        if lacking:
            n_na += 1
            for op in lacking:
                missing[op] = missing.get(op, 0) + 1
            continue
        why = outside_limits(m, opsets)
        if why:
            limits.append((d, why))
        else:
            counted.append(d)
    return counted, limits, missing, n_na


# ---- adapting a model to what Core ML takes ----------------------------------------


def mil_name(onnx_name):
    """The name milk gives the var of an ONNX tensor (coremltools' rule,
    docs/coreml-format.md section 6)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", onnx_name)
    return s if re.match(r"[A-Za-z_]", onnx_name) else "var_" + s


def rename_uses(nodes, old, new):
    for n in nodes:
        for i, name in enumerate(n.input):
            if name == old:
                n.input[i] = new


def empty_plan():
    return {"freeze": set(), "bool_in": set(), "bool_out": set(),
            "scalar_in": set(), "scalar_out": set()}


def adapt(model, feeds, plan):
    """A copy of model with plan applied: plan["freeze"] inputs become
    initializers holding feeds' values; "scalar_in" inputs are declared
    [1] and reshaped to a scalar, "bool_in" ones declared int32 and cast to
    bool; "bool_out" outputs are cast to int32 and "scalar_out" ones
    reshaped to [1]."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    body = list(g.node)
    head, tail = [], []
    for name in sorted(plan["freeze"]):
        keep = [vi for vi in g.input if vi.name != name]
        del g.input[:]
        g.input.extend(keep)
        g.initializer.append(numpy_helper.from_array(feeds[name], name))
    to_scalar = numpy_helper.from_array(np.zeros(0, np.int64), "harness__scalar_shape")
    to_one = numpy_helper.from_array(np.ones(1, np.int64), "harness__one_shape")
    for vi in g.input:
        cur, tt = vi.name, vi.type.tensor_type
        if vi.name in plan["scalar_in"]:
            head.append(helper.make_node("Reshape", [cur, to_scalar.name],
                                         [vi.name + "__scalar"]))
            cur = vi.name + "__scalar"
            tt.shape.CopyFrom(onnx.TensorShapeProto(
                dim=[onnx.TensorShapeProto.Dimension(dim_value=1)]))
        if vi.name in plan["bool_in"]:
            head.append(helper.make_node("Cast", [cur], [vi.name + "__bool"],
                                         to=TensorProto.BOOL))
            cur = vi.name + "__bool"
            tt.elem_type = TensorProto.INT32
        rename_uses(body, vi.name, cur)
    for vo in g.output:
        cur, tt = vo.name, vo.type.tensor_type
        inner = vo.name + "__inner"
        if vo.name not in plan["bool_out"] | plan["scalar_out"]:
            continue
        for n in body:
            for i, name in enumerate(n.output):
                if name == vo.name:
                    n.output[i] = inner
        rename_uses(body, vo.name, inner)
        cur = inner
        if vo.name in plan["bool_out"]:
            nxt = vo.name if vo.name not in plan["scalar_out"] else vo.name + "__int"
            tail.append(helper.make_node("Cast", [cur], [nxt], to=TensorProto.INT32))
            cur = nxt
            tt.elem_type = TensorProto.INT32
        if vo.name in plan["scalar_out"]:
            tail.append(helper.make_node("Reshape", [cur, to_one.name], [vo.name]))
            tt.shape.CopyFrom(onnx.TensorShapeProto(
                dim=[onnx.TensorShapeProto.Dimension(dim_value=1)]))
    if plan["scalar_in"]:
        g.initializer.append(to_scalar)
    if plan["scalar_out"]:
        g.initializer.append(to_one)
    del g.node[:]
    g.node.extend(head + body + tail)
    return m


def graph_input(name, input_names):
    """The graph input a name milk reports stands for (the harness's own
    helper tensors carry the input's name and a __ suffix)."""
    base = name.split("__")[0] if "__" in name else name
    return base if base in input_names else None


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


def refusals(stderr, model, input_names):
    """What to adapt after milk refused the model, read from its message:
    a dict of name sets as in empty_plan(). A value milk needs at
    conversion time freezes the graph inputs it is computed from."""
    new = empty_plan()
    for name in re.findall(r"input '([^']+)' is a scalar", stderr):
        new["scalar_in"].add(name)
    for name in re.findall(r"output '([^']+)' is a scalar", stderr):
        new["scalar_out"].add(name)
    for name in re.findall(r"input \d+ \('([^']+)'\) must be a constant", stderr):
        if graph_input(name, input_names):
            new["freeze"].add(graph_input(name, input_names))
        else:
            new["freeze"] |= input_ancestors(model.graph, name, input_names)
    for name in re.findall(r"input '([^']+)' has data type BOOL", stderr):
        new["bool_in"].add(name)
    for name in re.findall(r"output '([^']+)' is a bool tensor", stderr):
        new["bool_out"].add(name)
    return new


def plan_note(plan):
    parts = []
    if plan["freeze"]:
        parts.append("frozen: " + ", ".join(sorted(plan["freeze"])))
    bools = sorted((plan["bool_in"] - plan["freeze"]) | plan["bool_out"])
    if bools:
        parts.append("bool I/O: " + ", ".join(bools))
    scalars = sorted((plan["scalar_in"] - plan["freeze"]) | plan["scalar_out"])
    if scalars:
        parts.append("scalar I/O: " + ", ".join(scalars))
    return "; ".join(parts)


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
    """One test: its model, where it runs, and the adaptations made so far
    (kept from one data set to the next)."""

    def __init__(self, milk, test_dir, tmp):
        self.milk, self.dir, self.tmp = milk, test_dir, tmp
        self.model = onnx.load(str(test_dir / "model.onnx"), load_external_data=False)
        self.inputs, self.outputs = model_io(self.model)
        self.names = {vi.name for vi in self.inputs}
        self.plan = empty_plan()

    def convert(self, feeds, pkg):
        """Convert, adapting the model while milk refuses it for what
        Core ML model I/O cannot be; returns milk's error or ""."""
        for name, arr in feeds.items():
            if name in self.names and arr.size == 0:
                self.plan["freeze"].add(name)  # no empty Core ML inputs
        for _ in range(MAX_ROUNDS):
            path = self.tmp / "model.onnx"  # messages name model.onnx
            onnx.save(adapt(self.model, feeds, self.plan), str(path))
            args = [self.milk, "convert", path, "-o", pkg, "--precision", "fp32"]
            for vi in self.inputs:
                if vi.name in feeds and vi.name not in self.plan["freeze"] \
                        and not is_static(vi):
                    dims = ",".join(str(d) for d in feeds[vi.name].shape)
                    args += ["--input-shape", f"{vi.name}={dims}"]
            r = run_cmd(args)
            if r.returncode == 0:
                return ""
            new = refusals(r.stderr, self.model, self.names & set(feeds))
            grew = False
            for k in new:
                grew |= bool(new[k] - self.plan[k])
                self.plan[k] |= new[k]
            if not grew:
                return clean(r.stderr or r.stdout, self.tmp, self.dir)
        return "the model kept needing adaptation"

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
            if name in self.plan["freeze"]:
                continue
            path = self.tmp / f"in{i}.npy"
            if name in self.plan["scalar_in"]:
                arr = arr.reshape(1)
            np.save(path, arr.astype(np.int32) if arr.dtype == bool else arr)
            args += ["--input", f"{mil_name(name)}={path}"]
        r = run_cmd(args)
        if r.returncode != 0:
            return "run: " + clean(r.stderr, self.tmp, self.dir)
        with np.load(self.tmp / "out.npz") as z:
            got = {k: z[k] for k in z.files}
        for k, p in enumerate(pb_files(ds, "output")):
            name, want = load_pb(p)
            name = name or self.outputs[k].name
            if name in self.plan["scalar_out"]:
                want = want.reshape(1)
            why = compare(name, want, got.get(mil_name(name)))
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
        return test_dir.name, ops, plan_note(case.plan), why or "pass"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the document --------------------------------------------------------------------


def computes_nothing(result):
    """milk refused the model because an output is a constant or a graph
    input once shapes are static (src/onnx/convert.c, add_output)."""
    return result.startswith("convert:") and \
        "is a constant or a graph input, not computed by the model" in result


def table(rows):
    out = ["| test | ops | harness | result |", "|---|---|---|---|"]
    out += [f"| {name} | {ops} | {note} | {r} |" for name, ops, note, r in rows]
    return out


def render(results, limited, idle, missing, n_na, data):
    n = len(results)
    passed = sum(1 for *_, r in results if r == "pass")
    pct = 100.0 * passed / n if n else 0.0
    kinds = {}
    for *_, r in results:
        if r != "pass":
            kinds[r.split(":")[0]] = kinds.get(r.split(":")[0], 0) + 1
    out = ["# ONNX conformance",
           "",
           "Generated by `tools/onnx_conformance.py` (do not edit by hand; "
           "`tests/test_onnx_conformance.py` checks that this file lists what "
           "the script finds). The tests are ONNX's backend node tests "
           f"(`{data}`, Debian's libonnx-testdata). A test applies when every "
           "op of its model is in milk's lowering table (`milk convert "
           "--list-ops`); its model is converted at fp32 and each data set is "
           "run with `milk run` and compared with ONNX's expected outputs: "
           f"rtol {RTOL}, atol {ATOL} for floats, exact for integers and bools, "
           "shapes equal (int64 expected values against milk's int32 by value).",
           "",
           "Column *harness*: how the model was adapted after milk refused it "
           "for what a Core ML model input or output cannot be. *frozen*: the "
           "input became an initializer holding the data set's value (milk "
           "needs it at conversion time, or it is an empty tensor); *bool "
           "I/O*: a bool input fed as int32 through Cast(to=BOOL), or a bool "
           "output read through Cast(to=INT32), compared exactly; *scalar "
           "I/O*: a scalar input fed as [1] through Reshape, or a scalar "
           "output read through Reshape to [1].",
           "",
           "## Summary",
           "",
           "| | tests |",
           "|---|---:|",
           f"| applicable | {n} |",
           f"| passed | {passed} ({pct:.1f}%) |",
           f"| failed | {n - passed} |"]
    out += [f"| failed: {k} | {kinds[k]} |" for k in sorted(kinds)]
    out += [f"| outside milk's limits (listed apart, not counted) | {len(limited)} |",
            f"| computing nothing at run time (listed apart, not counted) | {len(idle)} |",
            f"| not applicable (an op outside the table) | {n_na} |",
            "",
            "## Applicable tests",
            "",
            "Result `pass`, or the stage that failed (`convert`, `run`, "
            "`mismatch`) and milk's message or the largest error.",
            ""]
    out += table(results)
    out += ["",
            "## Outside milk's limits",
            "",
            "Every op is in the table, but the model is at an opset milk does "
            "not convert, or has an input or output of a data type Core ML "
            "model I/O cannot be. Run all the same, not counted above.",
            ""]
    out += table(limited)
    out += ["",
            "## Computing nothing at run time",
            "",
            "Every op is in the table, but once shapes are static an output of "
            "the model is a constant or one of its inputs passed through (Shape, "
            "Size, Constant, Identity, one-input Sum...). milk refuses such a "
            "model, as a Core ML output must be computed by an op; listed here "
            "with milk's message, not counted above. A test that converts "
            "moves back to the counted ones by itself.",
            ""]
    out += table(idle)
    out += ["",
            "## Not applicable",
            "",
            "Tests needing an op outside the lowering table, by op (a test "
            "needing several is counted under each).",
            "",
            "| op | tests |",
            "|---|---:|"]
    out += [f"| {op} | {missing[op]} |" for op in sorted(missing)]
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
    counted, limits, missing, n_na = survey(data, lowered_ops(a.milk), opset_range(),
                                            a.only)
    jobs = [(a.milk, d) for d in counted] + [(a.milk, d) for d, _ in limits]
    with multiprocessing.Pool(max(1, a.jobs)) as pool:
        done = pool.map(run_test, jobs, chunksize=4)
    results, limited = done[:len(counted)], done[len(counted):]
    limited = [(name, ops, why, r) for (name, ops, _, r), (_, why)
               in zip(limited, limits)]
    idle = [t for t in results if computes_nothing(t[3])]
    results = [t for t in results if not computes_nothing(t[3])]
    doc = render(results, limited, idle, missing, n_na, data)
    tmp = pathlib.Path(a.out + ".tmp")
    tmp.write_text(doc)
    tmp.replace(a.out)  # never a half-written document
    passed = sum(1 for *_, r in results if r == "pass")
    print(f"{a.out}: {passed} of {len(results)} applicable tests pass "
          f"({100.0 * passed / max(1, len(results)):.1f}%); {len(limits)} outside "
          f"milk's limits; {len(idle)} computing nothing; {n_na} not applicable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
