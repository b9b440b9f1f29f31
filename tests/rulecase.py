"""Build small MIL programs from Python, run them through the defect rules
or the general passes, and get back the outputs of the original and of the
rewritten program (via tests/tools/rulecheck.c).

    b = Batch()
    x = b.array(np.random.rand(1, 4, 9).astype(np.float32))
    b.case(inputs=[("x", x)],
           ops=[op("softplus", "y", x="x")],
           outputs=["y"], options={"disable": ["all"], "enable": ["fp16-softplus"]})
    (res,) = b.run(tmp_path)
    res.orig[0], res.fixed[0], res.hits, res.before, res.after

An op input is a var name (str), Const(array) (stored through the .npz), a
Value(v) (a small const: int lists -> int32, floats -> fp32, bools ->
bool, strings), or a list of var names (variadic)."""
import json
import os
import pathlib
import subprocess

import numpy as np

BUILD = pathlib.Path(os.environ.get("MILK_BUILD",
                                    pathlib.Path(__file__).resolve().parent.parent / "build"))


class Const:
    def __init__(self, array, dtype=None):
        self.array, self.dtype = np.asarray(array), dtype


class Value:
    def __init__(self, value, dtype=None, shape=None):
        self.value, self.dtype, self.shape = value, dtype, shape


def op(type_, name, **inputs):
    return {"type": type_, "name": name, "inputs": inputs}


class Result:
    def __init__(self, line, z):
        self.error = line["error"]
        self.hits = line.get("hits", [])
        self.before = line.get("before", [])
        self.after = line.get("after", [])
        self.before_io = line.get("before_io", [])
        self.after_io = line.get("after_io", [])
        i = line["case"]
        self.orig = [z[k] for k in sorted((k for k in z.files if k.startswith(f"c{i}_orig_")),
                                          key=lambda k: int(k.rsplit("_", 1)[1]))]
        self.fixed = [z[k] for k in sorted((k for k in z.files if k.startswith(f"c{i}_fixed_")),
                                           key=lambda k: int(k.rsplit("_", 1)[1]))]

    def fixed_rules(self):
        return [h["rule"] for h in self.hits if h["fixed"]]

    def unfixed_rules(self):
        return [h["rule"] for h in self.hits if not h["fixed"]]


class Batch:
    def __init__(self):
        self.cases, self.data = [], {}

    def array(self, a):
        key = f"a{len(self.data)}"
        self.data[key] = np.array(a, order="C")  # keeps rank 0 (ascontiguousarray does not)
        return key

    def _binding(self, v):
        if isinstance(v, str):
            return v
        if isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v):
            return list(v)
        if isinstance(v, Const):
            e = {"npz": self.array(v.array)}
            if v.dtype:
                e["dtype"] = v.dtype
            return e
        if not isinstance(v, Value):
            v = Value(v)
        val = v.value.tolist() if isinstance(v.value, np.ndarray) else v.value
        e = {"value": val}
        if v.dtype:
            e["dtype"] = v.dtype
        if v.shape is not None:
            e["shape"] = list(v.shape)
        return e

    def case(self, inputs, ops, outputs, target="ios18", precision="fp32",
             apply="rules", options=None, reference=True, save=None):
        """inputs: [(name, array) or (name, array, dtype)]."""
        ins = []
        for entry in inputs:
            name, a = entry[0], entry[1]
            e = {"name": name, "npz": self.array(a)}
            if len(entry) > 2:
                e["dtype"] = entry[2]
            ins.append(e)
        c = {"target": target, "precision": precision, "apply": apply,
             "options": options or {}, "inputs": ins, "reference": reference,
             "ops": [{"type": o["type"], "name": o["name"],
                      "inputs": {k: self._binding(v) for k, v in o["inputs"].items()}}
                     for o in ops],
             "outputs": outputs}
        if save:
            c["save"] = str(save)
        self.cases.append(c)
        return len(self.cases) - 1

    def run(self, tmp, asan=os.environ.get("MILK_RULECHECK_ASAN") == "1"):
        tmp = pathlib.Path(tmp)
        exe = BUILD / ("asan/tools" if asan else "tools") / "rulecheck"
        data, out = tmp / "rc_in.npz", tmp / "rc_out.npz"
        np.savez(data, **self.data)
        spec = tmp / "rc_spec.json"
        spec.write_text(json.dumps({"data": str(data), "output": str(out),
                                    "cases": self.cases}))
        r = subprocess.run([str(exe), str(spec)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
        assert len(lines) == len(self.cases), r.stdout + r.stderr
        with np.load(out) as z:
            return [Result(line, z) for line in lines]


def only(*ids, **extra):
    """Options that select exactly the rules given (whatever their scope)."""
    o = {"disable": ["all"], "enable": list(ids)}
    o.update(extra)
    return o


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    scale = np.max(np.abs(want)) if want.size else 0.0
    err = np.max(np.abs(got - want)) if want.size else 0.0
    return err / scale if scale > 0 else err
