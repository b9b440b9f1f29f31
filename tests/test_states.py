"""Stateful and multifunction packages made by coremltools
(tests/fixtures/coremltools2): every one loads, dumps and runs, each step
(each function) matching the expected values computed with numpy or
PyTorch by the fixtures' generator, never by milk; slice_update against
NumPy; states kept across runs and through --state-in/--state-out; the
description written back as coremltools wrote it; and the errors a
stateful or multifunction package can hold."""
import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from milkop import Value
from test_kernels_shape import Case, check, expect_error

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "coremltools2"
STATE_CASES = ["state_accumulator", "state_kv_cache"]
MF_CASES = ["mf_seqlen", "mf_two_heads"]
STEPS = 5


def case_json(case):
    return json.loads((FIX / case / "case.json").read_text())


def run(*args, ok=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def steps_npz(case, path, kinds=("inputs",), steps=range(STEPS)):
    """One .npz of the fixture's per-step files, keyed NAME@k."""
    allv = {}
    for k in steps:
        for kind in kinds:
            with np.load(FIX / case / f"{kind}_step{k}.npz") as z:
                for n in z.files:
                    allv[f"{n}@{k}"] = z[n]
    np.savez(path, **allv)
    return path


def close(got, want, tol):
    got, want = got.astype(np.float64), want.astype(np.float64)
    if tol["rtol"] == 0 and tol["atol"] == 0:
        return np.array_equal(got, want)
    return np.all(np.abs(got - want) <= tol["atol"] + tol["rtol"] * np.abs(want))


# ---- states -----------------------------------------------------------------

@pytest.mark.parametrize("case", STATE_CASES)
def test_state_fixture_steps(milk_asan, case, tmp_path):
    """5 steps from zero states: outputs within the case's tolerance, the
    state after each step bit for bit."""
    spec = case_json(case)["runs"][0]
    pkg = FIX / case / "model.mlpackage"
    out = tmp_path / "out.npz"
    run(milk_asan, "run", pkg, "--inputs", steps_npz(case, tmp_path / "in.npz"),
        "--steps", STEPS, "--output", out)
    with np.load(out) as got:
        for k in range(STEPS):
            with np.load(FIX / case / f"expected_step{k}.npz") as e:
                for n in e.files:
                    assert got[f"{n}@{k}"].shape == e[n].shape
                    assert close(got[f"{n}@{k}"], e[n], spec["tolerance"]), (k, n)
            with np.load(FIX / case / f"state_step{k}.npz") as s:
                for n in s.files:
                    assert got[f"{n}@{k}"].dtype == np.float16
                    assert np.array_equal(got[f"{n}@{k}"], s[n]), (k, n)


@pytest.mark.parametrize("case", STATE_CASES)
def test_state_in_out(milk, case, tmp_path):
    """Steps 0-2, the state saved; steps 3-4 from that state match the
    fixture's steps 3 and 4 (the inputs file is keyed by its own steps)."""
    pkg = FIX / case / "model.mlpackage"
    run(milk, "run", pkg, "--inputs", steps_npz(case, tmp_path / "a.npz", steps=range(3)),
        "--steps", 3, "--output", tmp_path / "a_out.npz", "--state-out", tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as s, np.load(FIX / case / "state_step2.npz") as want:
        assert sorted(s.files) == sorted(want.files)
        for n in s.files:
            assert np.array_equal(s[n], want[n])
    later = {}
    for j, k in enumerate((3, 4)):
        with np.load(FIX / case / f"inputs_step{k}.npz") as z:
            later.update({f"{n}@{j}": z[n] for n in z.files})
    np.savez(tmp_path / "b.npz", **later)
    run(milk, "run", pkg, "--inputs", tmp_path / "b.npz", "--steps", 2,
        "--state-in", tmp_path / "s.npz", "--output", tmp_path / "b_out.npz")
    with np.load(tmp_path / "b_out.npz") as got:
        for j, k in enumerate((3, 4)):
            with np.load(FIX / case / f"state_step{k}.npz") as s:
                for n in s.files:
                    assert np.array_equal(got[f"{n}@{j}"], s[n])


def test_state_repeated_inputs(milk, tmp_path):
    """Inputs without @k are repeated: x added 3 times to a zero state."""
    pkg = FIX / "state_accumulator" / "model.mlpackage"
    x = np.array([[0.5, -1, 2, 0.25]], np.float16)
    np.save(tmp_path / "x.npy", x)
    run(milk, "run", pkg, "--input", f"x={tmp_path / 'x.npy'}", "--steps", 3,
        "--output", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as o:
        for k in range(3):
            assert np.array_equal(o[f"y@{k}"], (k + 1) * x)
            assert np.array_equal(o[f"accumulator@{k}"], (k + 1) * x)


def test_state_verify_steps(milk, tmp_path):
    """verify --steps compares every step; a wrong value in step 3 is the
    first divergence, named y@3."""
    pkg = FIX / "state_accumulator" / "model.mlpackage"
    ref = steps_npz("state_accumulator", tmp_path / "ref.npz", ("inputs", "expected"))
    r = run(milk, "verify", pkg, "--reference", ref, "--steps", STEPS, "--json")
    j = json.loads(r.stdout)
    assert j["ok"] and [row["var"] for row in j["rows"]] == [f"y@{k}" for k in range(STEPS)]
    with np.load(ref) as z:
        bad = {n: z[n] for n in z.files}
    bad["y@3"] = bad["y@3"] + np.float16(1)
    np.savez(tmp_path / "bad.npz", **bad)
    r = run(milk, "verify", pkg, "--reference", tmp_path / "bad.npz", "--steps", STEPS,
            "--json", ok=False)
    assert r.returncode == 1, r.stderr
    j = json.loads(r.stdout)
    assert j["first_divergence"]["var"] == "y@3"
    # only the reference of step 3 is off: milk's state, and step 4, are right
    assert [row["status"] for row in j["rows"]] == ["ok"] * 3 + ["diverged", "ok"]


@pytest.mark.parametrize("case", STATE_CASES)
def test_state_dump(milk, case):
    text = run(milk, "dump", FIX / case / "model.mlpackage").stdout
    shape = case_json(case)["package"]["states"][0]["shape"]
    name = case_json(case)["package"]["states"][0]["name"]
    assert f"state<tensor<fp16, [{', '.join(map(str, shape))}]>> {name}" in text
    assert f"= read_state(input = {name})" in text
    # write_state has no outputs: a bare call
    assert f"            write_state(data = " in text and f"input = {name})" in text
    if case == "state_kv_cache":
        assert "slice_update(begin = concat_0, end = concat_1, update = row, x = read_state_0)" in text


@pytest.mark.parametrize("case", STATE_CASES + MF_CASES)
def test_roundtrip_description(milk, case, tmp_path):
    """Loaded and saved again: the description is coremltools' own (states,
    functions, default function), the program the same, weight.bin the
    same size (shared weights written once)."""
    import Model_pb2
    pkg = FIX / case / "model.mlpackage"
    out = tmp_path / "rt.mlpackage"
    run(ROOT / "build" / "tools" / "package_tool", "roundtrip", pkg, out)
    a, b = Model_pb2.Model(), Model_pb2.Model()
    a.ParseFromString((pkg / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    b.ParseFromString((out / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    assert a.specificationVersion == b.specificationVersion == 9
    assert a.description == b.description
    assert run(milk, "diff", pkg, out).returncode == 0
    wa, wb = pkg / "Data/com.apple.CoreML/weights/weight.bin", out / "Data/com.apple.CoreML/weights/weight.bin"
    assert (wa.stat().st_size if wa.exists() else 0) == (wb.stat().st_size if wb.exists() else 0)


def test_slice_update():
    """slice_update against NumPy's x[slice] = update."""
    rng = np.random.RandomState(12)
    x = rng.standard_normal((2, 3, 6, 4)).astype(np.float32)
    u = rng.standard_normal((2, 3, 1, 4)).astype(np.float32)
    want = x.copy()
    want[:, :, 4:5] = u
    u2 = rng.standard_normal((3, 3, 4)).astype(np.float32)
    want2 = x.copy()
    want2[1, :, 1:6:2] = u2
    u3 = rng.standard_normal((2, 3, 2)).astype(np.float32)
    want3 = x.copy()
    want3[:, :, 5, ::-2] = u3
    xi = rng.randint(-9, 9, (4, 5)).astype(np.int32)
    ui = rng.randint(-9, 9, (2, 5)).astype(np.int32)
    wanti = xi.copy()
    wanti[-3:-1] = ui
    cases = [
        # a KV-cache write at a run-time position
        Case("runtime position", "slice_update",
             [("x", x), ("update", u), ("begin", np.array([0, 0, 4, 0], np.int32)),
              ("end", np.array([2, 3, 5, 4], np.int32))], want),
        Case("masks and stride", "slice_update",
             [("x", x), ("update", u2), ("begin", Value([1, 0, 1, 0], dtype="int32")),
              ("end", Value([2, 3, 6, 4], dtype="int32")),
              ("stride", Value([1, 1, 2, 1], dtype="int32")),
              ("begin_mask", [False, True, False, True]),
              ("end_mask", [False, True, False, True]),
              ("squeeze_mask", [True, False, False, False])], want2),
        Case("squeeze and negative stride", "slice_update",
             [("x", x), ("update", u3), ("begin", Value([0, 0, 5, -1], dtype="int32")),
              ("end", Value([2, 3, 6, 0], dtype="int32")),
              ("stride", Value([1, 1, 1, -2], dtype="int32")),
              ("begin_mask", [True, True, False, False]),
              ("end_mask", [True, True, False, True]),
              ("squeeze_mask", [False, False, True, False])], want3),
        Case("int32, negative begin", "slice_update",
             [("x", xi), ("update", ui), ("begin", Value([-3, 0], dtype="int32")),
              ("end", Value([-1, 5], dtype="int32"))], wanti),
    ]
    check(cases)
    expect_error([
        ("update of the wrong shape", "slice_update",
         [("x", x), ("update", u2), ("begin", Value([0, 0, 4, 0], dtype="int32")),
          ("end", Value([2, 3, 5, 4], dtype="int32"))], "ios18",
         ["the slice of x is tensor<fp32, [2, 3, 1, 4]>"]),
        ("before iOS18", "slice_update",
         [("x", x), ("update", u), ("begin", Value([0, 0, 4, 0], dtype="int32")),
          ("end", Value([2, 3, 5, 4], dtype="int32"))], "ios17",
         ["needs deployment target ios18"]),
        ("position past the end", "slice_update",
         [("x", x), ("update", u), ("begin", np.array([0, 0, 6, 0], np.int32)),
          ("end", np.array([2, 3, 7, 4], np.int32))], "ios18",
         ["the slice visits 0 elements"]),
    ])


# ---- multifunction -----------------------------------------------------------

@pytest.mark.parametrize("case", MF_CASES)
def test_multifunction_fixture(milk, milk_asan, case, tmp_path):
    """Each function run by name matches its expected output; without
    --function the default one runs."""
    spec = case_json(case)
    pkg = FIX / case / "model.mlpackage"
    for r in spec["runs"]:
        (inp, f), = r["inputs"].items()
        (outname, ef), = r["expected"].items()
        out = tmp_path / f"{r['function']}.npz"
        run(milk_asan, "run", pkg, "--function", r["function"],
            "--input", f"{inp}={FIX / case / f}", "--output", out)
        with np.load(out) as o:
            want = np.load(FIX / case / ef)
            assert np.allclose(o[outname], want, rtol=r["tolerance"]["rtol"],
                               atol=r["tolerance"]["atol"])
    default = spec["package"]["defaultFunctionName"]
    r0 = next(r for r in spec["runs"] if r["function"] == default)
    (inp, f), = r0["inputs"].items()
    run(milk, "run", pkg, "--input", f"{inp}={FIX / case / f}", "--output", tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz") as o:
        (outname, ef), = r0["expected"].items()
        assert np.allclose(o[outname], np.load(FIX / case / ef), rtol=1e-4, atol=1e-5)
    text = run(milk, "dump", pkg).stdout
    for fn in spec["package"]["functions"]:
        assert f"func {fn}<ios18>(" in text


def test_multifunction_verify_and_extract(milk, tmp_path):
    pkg = FIX / "mf_two_heads" / "model.mlpackage"
    np.savez(tmp_path / "ref.npz", x=np.load(FIX / "mf_two_heads" / "x_embed.npy"),
             var_16=np.load(FIX / "mf_two_heads" / "expected_embed.npy"))
    r = run(milk, "verify", pkg, "--function", "embed", "--reference", tmp_path / "ref.npz")
    assert "all 1 compared vars match" in r.stdout
    run(milk, "extract", pkg, "--function", "embed", "--op", "linear_2",
        "-o", tmp_path / "sub.mlpackage")
    assert "func main<ios18>(tensor<fp32, [1, 8, 32]> input)" in run(
        milk, "dump", tmp_path / "sub.mlpackage").stdout


def test_bad_function_name(milk, tmp_path):
    pkg = FIX / "mf_seqlen" / "model.mlpackage"
    for cmd in (["run", pkg, "--function", "len32", "--input", f"x={FIX / 'mf_seqlen' / 'x_len8.npy'}",
                 "--output", tmp_path / "o.npz"],
                ["verify", pkg, "--function", "len32", "--reference", tmp_path / "none.npz"]):
        np.savez(tmp_path / "none.npz", x=np.zeros((1, 8, 16), np.float32))
        r = run(milk, *cmd, ok=False)
        assert r.returncode == 2
        assert "no function 'len32' (the program's functions: 'len16', 'len8'; the default is 'len16')" in r.stderr


# ---- errors in stateful packages --------------------------------------------

def edited(src, dst, edit):
    """A copy of package src at dst with its Model protobuf edited."""
    import Model_pb2
    shutil.copytree(src, dst)
    f = dst / "Data/com.apple.CoreML/model.mlmodel"
    m = Model_pb2.Model()
    m.ParseFromString(f.read_bytes())
    edit(m)
    f.write_bytes(m.SerializeToString())
    return dst


@pytest.mark.parametrize("what,edit,words", [
    ("wrong state shape",
     lambda m: m.description.state[0].type.stateType.arrayType.shape.__setitem__(2, 8),
     ["description: state 'cache' is fp16 [1, 2, 8, 8], function 'main' declares it fp16 [1, 2, 16, 8]"]),
    ("state not fp16",
     lambda m: setattr(m.description.state[0].type.stateType.arrayType, "dataType", 65568),
     ["Core ML states are FLOAT16"]),
    ("missing state input",
     lambda m: setattr(m.description.state[0], "name", "kv"),
     ["description: state 'kv': function 'main' has no state input 'kv'"]),
    ("undescribed state",
     lambda m: m.description.ClearField("state"),
     ["function 'main': state input 'cache' is not among the description's states"]),
    ("states before iOS18",
     lambda m: setattr(m, "specificationVersion", 8),
     ["needs specificationVersion 9 or later"]),
    ("wrong state type in the program",
     lambda m: m.mlProgram.functions["main"].inputs[0].type.stateType.wrappedType.tensorType.dimensions[2].constant.__setattr__("size", 8),
     ["read_state", "declared fp16 [1, 2, 16, 8], type inference gives fp16 [1, 2, 8, 8]"]),
])
def test_stateful_errors(milk_asan, tmp_path, what, edit, words):
    pkg = edited(FIX / "state_kv_cache" / "model.mlpackage", tmp_path / "bad.mlpackage", edit)
    r = run(milk_asan, "dump", pkg, ok=False)
    assert r.returncode == 2, what
    for w in words:
        assert w in r.stderr, (what, r.stderr)


def test_state_read_before_write(milk, tmp_path):
    """A state file without the state: the run's read_state comes before any
    write, an error (never a silent zero)."""
    pkg = FIX / "state_kv_cache" / "model.mlpackage"
    np.savez(tmp_path / "s.npz", other=np.zeros((1, 2, 16, 8), np.float16))
    ins = steps_npz("state_kv_cache", tmp_path / "in.npz")
    r = run(milk, "run", pkg, "--inputs", ins, "--state-in", tmp_path / "s.npz",
            "--output", tmp_path / "o.npz", ok=False)
    assert r.returncode == 2 and "no state called 'other'" in r.stderr
    np.savez(tmp_path / "e.npz")
    r = run(milk, "run", pkg, "--inputs", ins, "--steps", 2, "--state-in", tmp_path / "e.npz",
            "--output", tmp_path / "o.npz", ok=False)
    assert r.returncode == 2
    assert "op 'read_state_0' (read_state): state 'cache' is read before any write" in r.stderr
    assert not (tmp_path / "o.npz").exists()
    np.savez(tmp_path / "w.npz", cache=np.zeros((1, 2, 8, 8), np.float16))
    r = run(milk, "run", pkg, "--inputs", ins, "--state-in", tmp_path / "w.npz",
            "--output", tmp_path / "o.npz", ok=False)
    assert "state 'cache' is tensor<fp16, [1, 2, 16, 8]>, the data given is tensor<fp16, [1, 2, 8, 8]>" in r.stderr
    r = run(milk, "run", pkg, "--input", f"cache={tmp_path / 'x.npy'}", "--output", tmp_path / "o.npz",
            ok=False)
    assert "'cache' is a state: use --state-in" in r.stderr


def test_state_align32(milk_asan, milk, tmp_path):
    """state-align32: flagged for the Neural Engine only; --fix pads the
    state's last dimension to 32, and the fixed package computes the same
    outputs with the state's first 8 columns equal and the rest zero."""
    pkg = FIX / "state_kv_cache" / "model.mlpackage"
    r = run(milk, "lint", pkg, "--json", ok=False)
    hits = [h for h in json.loads(r.stdout)["hits"] if h["rule"] == "state-align32"]
    assert len(hits) == 1 and "state 'cache' is fp16 [1, 2, 16, 8]" in hits[0]["condition"]
    r = run(milk, "lint", pkg, "--json", "--compute-units", "cpu_and_gpu")
    assert not [h for h in json.loads(r.stdout)["hits"] if h["rule"] == "state-align32"]
    fixed = tmp_path / "fixed.mlpackage"
    r = run(milk_asan, "lint", pkg, "--fix", "-o", fixed)
    assert "state 'cache': last dimension 8 padded to 32" in r.stdout
    assert "state<tensor<fp16, [1, 2, 16, 32]>> cache" in run(milk, "dump", fixed).stdout
    ins = steps_npz("state_kv_cache", tmp_path / "in.npz")
    run(milk_asan, "run", pkg, "--inputs", ins, "--steps", STEPS, "--output", tmp_path / "a.npz")
    run(milk_asan, "run", fixed, "--inputs", ins, "--steps", STEPS, "--output", tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        for k in range(STEPS):
            for n in ("attn", "cache_sum"):
                assert np.array_equal(a[f"{n}@{k}"], b[f"{n}@{k}"])
            assert b[f"cache@{k}"].shape == (1, 2, 16, 32)
            assert np.array_equal(b[f"cache@{k}"][..., :8], a[f"cache@{k}"])
            assert not b[f"cache@{k}"][..., 8:].any()
