"""Run one MIL op through milk's interpreter from Python (via the opcheck
helper program), so tests can compare it with PyTorch.

    outs, types = run_op("conv", [("x", x), ("weight", Const(w)),
                                  ("strides", [1, 1]), ("pad_type", "valid")])

A numpy array is a model input; Const(array) a constant; a Python scalar,
list or string a small constant (ints -> int32, floats -> fp32, bools ->
bool). Value(v, dtype=..., shape=...) pins the dtype and shape. An array's
dtype can be changed with In(array, dtype="fp16") or Const(array,
dtype="fp16")."""
import json
import os
import pathlib
import subprocess
import tempfile

import numpy as np

BUILD = pathlib.Path(os.environ.get("MILK_BUILD",
                                    pathlib.Path(__file__).resolve().parent.parent / "build"))


class Const:
    def __init__(self, array, dtype=None):
        self.array, self.dtype = np.asarray(array), dtype


class In:
    def __init__(self, array, dtype=None):
        self.array, self.dtype = np.asarray(array), dtype


class Value:
    def __init__(self, value, dtype=None, shape=None):
        self.value, self.dtype, self.shape = value, dtype, shape


def _entry(param, v, tmp, i):
    if isinstance(v, np.ndarray):
        v = In(v)
    if isinstance(v, (In, Const)):
        path = os.path.join(tmp, f"in{i}.npy")
        # ascontiguousarray makes a 0-d array 1-d: keep the shape
        np.save(path, np.ascontiguousarray(v.array).reshape(v.array.shape))
        e = {"param": param, "npy": path, "const": isinstance(v, Const)}
        if v.dtype:
            e["dtype"] = v.dtype
        return e
    if not isinstance(v, Value):
        v = Value(v)
    val = v.value.tolist() if isinstance(v.value, np.ndarray) else v.value
    e = {"param": param, "value": val}
    if v.dtype:
        e["dtype"] = v.dtype
    if v.shape is not None:
        e["shape"] = list(v.shape)
    return e


def run_op(op, inputs, target="ios18", precision="fp32", reference=False,
           binary="opcheck", asan=False):
    """Returns (list of output arrays, list of {"dtype", "shape"})."""
    exe = BUILD / ("asan/tools" if asan else "tools") / binary
    with tempfile.TemporaryDirectory() as tmp:
        spec = {"op": op, "target": target, "precision": precision,
                "reference": reference, "output": os.path.join(tmp, "out.npz"),
                "inputs": [_entry(p, v, tmp, i) for i, (p, v) in enumerate(inputs)]}
        spec_path = os.path.join(tmp, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        r = subprocess.run([str(exe), spec_path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"opcheck {op} failed: {r.stderr.strip()}")
        types = json.loads(r.stdout)
        with np.load(spec["output"]) as z:
            outs = [z[f"out{i}"] for i in range(len(types))]
        return outs, types


def run_ops(cases, binary="opcheck", asan=False):
    """Run many one-op programs in one helper process (opcheck --batch).
    cases: a list of (op, inputs) or (op, inputs, options), options being
    run_op's keyword arguments target, precision, reference (and threads:
    the run's thread count). Returns, per
    case, (outputs, types) as run_op does, or a RuntimeError instance if
    that case failed."""
    exe = BUILD / ("asan/tools" if asan else "tools") / binary
    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        for c, case in enumerate(cases):
            op, inputs = case[0], case[1]
            opts = case[2] if len(case) > 2 else {}
            d = os.path.join(tmp, str(c))
            os.mkdir(d)
            specs.append({"op": op, "target": opts.get("target", "ios18"),
                          "precision": opts.get("precision", "fp32"),
                          "reference": opts.get("reference", False),
                          "threads": opts.get("threads", 0),
                          "output": os.path.join(d, "out.npz"),
                          "inputs": [_entry(p, v, d, i)
                                     for i, (p, v) in enumerate(inputs)]})
        spec_path = os.path.join(tmp, "specs.json")
        with open(spec_path, "w") as f:
            json.dump(specs, f)
        r = subprocess.run([str(exe), "--batch", spec_path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"opcheck --batch failed: {r.stderr.strip()}")
        results, types = [], None
        for line in r.stdout.splitlines():
            if line.startswith("["):
                types = json.loads(line)
            elif line.startswith("{"):
                done = json.loads(line)
                spec = specs[done["done"]]
                if done["error"]:
                    results.append(RuntimeError(f"opcheck {spec['op']} failed: "
                                                f"{done['error']}"))
                else:
                    with np.load(spec["output"]) as z:
                        outs = [z[f"out{i}"] for i in range(len(types))]
                    results.append((outs, types))
                types = None
        if len(results) != len(cases):
            raise RuntimeError(f"opcheck --batch stopped after {len(results)} "
                               f"of {len(cases)} cases: {r.stderr.strip()}")
        return results


def rel_err(got, want):
    """max |got - want| / max |want| (or the absolute error if want is 0)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    scale = np.max(np.abs(want)) if want.size else 0.0
    err = np.max(np.abs(got - want)) if want.size else 0.0
    return err / scale if scale > 0 else err
