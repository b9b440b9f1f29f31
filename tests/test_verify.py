"""`milk verify`: comparing every value of a run with a reference archive
or with another program, naming the first divergent op, the JSON output,
the HTML report and the command's errors.

Expected values come from outside the code under test: PyTorch outputs
(the fixtures' expected.npy), defects planted at a known op by a helper
(tests/tools/plant_defect.c), and errors recomputed here with NumPy from
the values `milk run --keep-all` writes."""
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import BUILD, CASES, FIXTURES

UPS = FIXTURES / "upsampler_small"
PLANTED_OP = "input_9_has_output_shape"  # the second conv_transpose of upsampler_small


def milk_cmd(milk, *args):
    return subprocess.run([milk, *map(str, args)], capture_output=True, text=True)


def verify_json(milk, *args):
    r = milk_cmd(milk, "verify", *args, "--json")
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def output_name(case, precision="fp32"):
    case_json = json.loads((FIXTURES / case / "case.json").read_text())
    return case_json["packages"][precision]["outputs"][0][0]


def pytorch_ref(tmp_path, case):
    d = FIXTURES / case
    ref = tmp_path / "ref.npz"
    np.savez(ref, x=np.load(d / "x.npy"), **{output_name(case): np.load(d / "expected.npy")})
    return ref


def plant(tmp_path, kind, pkg, op, arg, name="planted.mlpackage"):
    out = tmp_path / name
    r = subprocess.run([str(BUILD / "tools" / "plant_defect"), kind, str(pkg), op, str(arg),
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def keep_all(milk, pkg, out, x):
    r = milk_cmd(milk, "run", pkg, "--input", f"x={x}", "--output", out, "--keep-all")
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def bias_of(case, op_name):
    """The inline bias of an op, as coremltools printed it."""
    for line in (FIXTURES / case / "program_fp32.txt").read_text().splitlines():
        if f'name="{op_name}"' in line:
            return np.array(json.loads(re.search(r"bias=(\[[^\]]*\])", line).group(1)), np.float32)
    raise KeyError(op_name)


@pytest.fixture
def planted_ref(milk, tmp_path):
    """REF.npz with every intermediate of upsampler_small in which the
    bias of PLANTED_OP reaches only the first 4 outputs of each channel."""
    pkg = plant(tmp_path, "bias", UPS / "model_fp32.mlpackage", PLANTED_OP, 4)
    vals = keep_all(milk, pkg, tmp_path / "ref.npz", UPS / "x.npy")
    # The helper planted what it says: the difference is the bias, cut at 4.
    bias = bias_of("upsampler_small", PLANTED_OP)
    got = vals[PLANTED_OP] - vals[PLANTED_OP + "_bias"]
    want = np.zeros_like(got)
    want[:, :, :4] = bias[None, :, None]
    np.testing.assert_allclose(got, want, atol=1e-6)
    return tmp_path / "ref.npz"


# ---- reference mode ------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_fp32_fixtures_match_pytorch(milk, tmp_path, case):
    d = FIXTURES / case
    ref = pytorch_ref(tmp_path, case)
    rc, res = verify_json(milk, d / "model_fp32.mlpackage", "--reference", ref)
    assert rc == 0, res
    assert res["ok"] and res["first_divergence"] is None
    [row] = res["rows"]
    assert row["var"] == output_name(case) and row["status"] == "ok"
    # the reported errors are the errors of what milk computes
    got = keep_all(milk, d / "model_fp32.mlpackage", tmp_path / "all.npz", d / "x.npy")
    want = np.load(d / "expected.npy").astype(np.float64)
    err = np.abs(got[row["var"]].astype(np.float64) - want)
    assert row["max_abs"] == pytest.approx(err.max(), rel=1e-6, abs=1e-12)
    assert row["max_rel"] == pytest.approx(err.max() / np.abs(want).max(), rel=1e-6, abs=1e-12)
    assert row["atol"] == 1e-6 and row["rtol"] == 1e-4  # the fp32 defaults


def test_planted_bias_defect_is_named(milk, tmp_path, planted_ref):
    rc, res = verify_json(milk, UPS / "model_fp32.mlpackage", "--reference", planted_ref)
    assert rc == 1
    first = res["first_divergence"]
    assert first["op"] == PLANTED_OP and first["type"] == "conv_transpose"
    assert first["suspects"] == []  # every intermediate was compared
    order = [r["op"] for r in res["rows"]]
    k = order.index(PLANTED_OP)
    assert all(r["status"] == "ok" for r in res["rows"][:k])
    assert res["rows"][k]["status"] == "diverged"
    assert all(r["status"] == "propagated" for r in res["rows"][k + 1:])
    assert len(res["rows"]) == 12  # one per op of the program
    # the helper's extra tensors are reported, not compared
    assert PLANTED_OP + "_bias" in res["unmatched_reference"]
    text = milk_cmd(milk, "verify", UPS / "model_fp32.mlpackage", "--reference", planted_ref)
    assert text.returncode == 1
    assert f"first divergence: op '{PLANTED_OP}' (conv_transpose)" in text.stdout


def test_divergence_behind_unchecked_ops(milk, tmp_path, planted_ref):
    """With only some intermediates in REF, the first divergent op is the
    first compared one, and the unchecked ops feeding it are suspects."""
    with np.load(planted_ref) as z:
        np.savez(tmp_path / "some.npz", x=z["x"], input_7=z["input_7"],
                 input_13=z["input_13"], var_115=z["var_115"])
    rc, res = verify_json(milk, UPS / "model_fp32.mlpackage", "--reference",
                          tmp_path / "some.npz")
    assert rc == 1
    assert [r["var"] for r in res["rows"]] == ["input_7", "input_13", "var_115"]
    assert [r["status"] for r in res["rows"]] == ["ok", "diverged", "propagated"]
    first = res["first_divergence"]
    assert first["op"] == "input_13"
    assert first["suspects"] == [f"{PLANTED_OP} (conv_transpose)", "input_11 (leaky_relu)"]


def test_tolerance_options(milk, tmp_path):
    d = FIXTURES / "resblock"
    ref = pytorch_ref(tmp_path, "resblock")
    rc, res = verify_json(milk, d / "model_fp32.mlpackage", "--reference", ref)
    err = res["rows"][0]["max_abs"]
    assert rc == 0 and err > 0
    # a tolerance below the actual error makes it diverge
    rc, res = verify_json(milk, d / "model_fp32.mlpackage", "--reference", ref,
                          "--atol", 0, "--rtol", err / np.abs(np.load(d / "expected.npy")).max() / 2)
    assert rc == 1 and res["first_divergence"]["var"] == output_name("resblock")


def test_fp16_package_against_pytorch_uses_fp16_tolerance(milk, tmp_path):
    d = FIXTURES / "upsampler_small"
    rc, res = verify_json(milk, d / "model_fp16.mlpackage", "--reference",
                          pytorch_ref(tmp_path, "upsampler_small"))
    [row] = res["rows"]
    assert row["dtype"] == "fp16" and row["atol"] == 1e-3 and row["rtol"] == 1e-2
    assert 1e-5 < row["max_rel"] < 1e-2 and rc == 0


def test_precision_fp32_removes_activation_rounding(milk, tmp_path):
    d = FIXTURES / "upsampler_small"
    ref = pytorch_ref(tmp_path, "upsampler_small")
    _, declared = verify_json(milk, d / "model_fp16.mlpackage", "--reference", ref)
    _, fp32 = verify_json(milk, d / "model_fp16.mlpackage", "--reference", ref,
                          "--precision", "fp32")
    assert fp32["precision"] == "fp32"
    assert fp32["rows"][0]["max_rel"] < declared["rows"][0]["max_rel"] / 2


def test_input_option_overrides_reference(milk, tmp_path):
    d = FIXTURES / "resblock"
    np.savez(tmp_path / "ref.npz", x=np.zeros((1, 3, 32, 32), np.float32),
             var_79=np.load(d / "expected.npy"))
    pkg = d / "model_fp32.mlpackage"
    rc, _ = verify_json(milk, pkg, "--reference", tmp_path / "ref.npz")
    assert rc == 1  # zeros are not the input expected.npy was made from
    rc, _ = verify_json(milk, pkg, "--reference", tmp_path / "ref.npz", "--input",
                        f"x={d / 'x.npy'}")
    assert rc == 0


def test_reference_of_other_shape_diverges(milk, tmp_path):
    d = FIXTURES / "conv2d_edge"
    np.savez(tmp_path / "ref.npz", x=np.load(d / "x.npy"), var_22=np.zeros((2, 3, 4), np.float32))
    rc, res = verify_json(milk, d / "model_fp32.mlpackage", "--reference", tmp_path / "ref.npz")
    assert rc == 1
    assert res["rows"][0]["shape_mismatch"] is True
    assert res["rows"][0]["max_abs"] is None  # infinite, written as null


def test_non_finite_values(milk, tmp_path):
    """NaN against NaN agrees; NaN or inf against a number is an
    infinite error."""
    d = FIXTURES / "conv2d_edge"
    pkg = d / "model_fp32.mlpackage"
    x = np.load(d / "x.npy").copy()
    x[0, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    got = milk_cmd(milk, "run", pkg, "--input", f"x={tmp_path / 'x.npy'}", "--output",
                   tmp_path / "o.npz")
    assert got.returncode == 0, got.stderr
    with np.load(tmp_path / "o.npz") as z:
        out = z["var_22"]
    assert np.isnan(out).any() and not np.isnan(out).all()
    rc, res = verify_json(milk, pkg, pkg, "--input", f"x={tmp_path / 'x.npy'}")
    assert rc == 0 and res["rows"][0]["max_abs"] == 0
    want = np.where(np.isnan(out), 1.0, out).astype(np.float32)  # numbers where NaN came out
    np.savez(tmp_path / "r1.npz", x=x, var_22=want)
    rc, res = verify_json(milk, pkg, "--reference", tmp_path / "r1.npz")
    assert rc == 1 and res["rows"][0]["max_abs"] is None
    np.savez(tmp_path / "r2.npz", x=x, var_22=out)
    rc, _ = verify_json(milk, pkg, "--reference", tmp_path / "r2.npz", "--atol", 0, "--rtol", 0)
    assert rc == 0
    inf = out.copy()
    inf[np.isfinite(inf)] = np.inf
    np.savez(tmp_path / "r3.npz", x=x, var_22=inf)
    rc, res = verify_json(milk, pkg, "--reference", tmp_path / "r3.npz")
    assert rc == 1 and res["rows"][0]["max_abs"] is None


# ---- two programs ----------------------------------------------------------------


def test_fp32_against_fp16_package(milk, tmp_path):
    a, b = UPS / "model_fp32.mlpackage", UPS / "model_fp16.mlpackage"
    rc, res = verify_json(milk, a, b, "--input", f"x={UPS / 'x.npy'}")
    assert res["mode"] == "programs" and res["seed"] is None
    # every op of the fp16 program is matched through its _cast_fp16 name
    assert len(res["rows"]) == 12
    for row in res["rows"]:
        assert row["ref"] == row["var"].replace("_cast_fp16", "")
        assert row["rtol"] == 1e-2  # fp16 tolerance
        assert 1e-5 < row["max_rel"] < 1e-2  # fp16 rounding, no more
    assert rc == 0
    # the errors are those of the two runs
    va = keep_all(milk, a, tmp_path / "a.npz", UPS / "x.npy")
    vb = keep_all(milk, b, tmp_path / "b.npz", UPS / "x.npy")
    for row in res["rows"]:
        want = va[row["ref"]].astype(np.float64)
        err = np.abs(vb[row["var"]].astype(np.float64) - want).max()
        assert row["max_abs"] == pytest.approx(err, rel=1e-5)


@pytest.mark.parametrize("case", CASES)
def test_fp32_against_fp16_every_fixture(milk, case):
    d = FIXTURES / case
    rc, res = verify_json(milk, d / "model_fp32.mlpackage", d / "model_fp16.mlpackage",
                          "--input", f"x={d / 'x.npy'}")
    assert rc == 0, res["first_divergence"]
    out = res["rows"][-1]
    assert out["var"] == out["ref"] == output_name(case)
    assert 0 < out["max_rel"] < 1e-2  # fp16 rounds, within the fp16 tolerance
    # fp16 values, or fp32 ones computed from them (mlp_bn's iOS15 casts
    # back to fp32), are held to the fp16 tolerance
    assert all(r["max_rel"] < 1e-2 and r["rtol"] == 1e-2 for r in res["rows"])


def test_random_inputs_are_seeded(milk):
    a, b = UPS / "model_fp32.mlpackage", UPS / "model_fp16.mlpackage"
    _, r1 = verify_json(milk, a, b, "--seed", 42)
    _, r2 = verify_json(milk, a, b, "--seed", 42)
    _, r3 = verify_json(milk, a, b, "--seed", 43)
    assert r1["seed"] == 42
    assert [r["max_abs"] for r in r1["rows"]] == [r["max_abs"] for r in r2["rows"]]
    assert [r["max_abs"] for r in r1["rows"]] != [r["max_abs"] for r in r3["rows"]]
    # without --seed one is drawn and printed, and repeats the run
    text = milk_cmd(milk, "verify", a, b)
    seed = int(re.search(r"random inputs: seed (\d+)", text.stdout).group(1))
    _, again = verify_json(milk, a, b, "--seed", seed)
    table_errs = re.findall(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+\[[\d,]*\]\s+(\S+)", text.stdout,
                            re.M)
    assert table_errs == [f"{r['max_abs']:.3g}" for r in again["rows"]]


def test_same_package_twice_is_exact(milk):
    pkg = FIXTURES / "attention" / "model_fp32.mlpackage"
    rc, res = verify_json(milk, pkg, pkg, "--seed", 1)
    assert rc == 0
    assert all(r["max_abs"] == 0 and r["snr_db"] is None for r in res["rows"])
    assert res["unchecked"] == 0


def test_fp16_overflow_is_flagged(milk, tmp_path):
    """A mul by 60000 planted after an fp16 op pushes values past 65504:
    the op is flagged with the count NumPy finds in the same values."""
    op = "input_3_has_output_shape_cast_fp16"
    b = plant(tmp_path, "scale", UPS / "model_fp16.mlpackage", op, 60000)
    rc, res = verify_json(milk, UPS / "model_fp32.mlpackage", b, "--input", f"x={UPS / 'x.npy'}",
                          "--report", tmp_path / "r.html")
    assert rc == 1
    assert res["first_divergence"]["op"] == op and res["first_divergence"]["type"] == "mul"
    flagged = {f["op"]: f for f in res["fp16"]}
    vals = keep_all(milk, UPS / "model_fp16.mlpackage", tmp_path / "b.npz", UPS / "x.npy")
    scaled = vals[op].astype(np.float32) * np.float32(60000)
    assert flagged[op]["overflow"] == int((np.abs(scaled) > 65504).sum()) > 0
    assert res["fp16"][0]["op"] == op  # nothing overflows before it
    svg = [e for e in ET.parse(tmp_path / "r.html").iter() if e.tag.endswith("}path")]
    marks = [e for e in svg if e.get("class") == "overflow"]
    assert len(marks) == len(res["fp16"])
    assert op in "".join(marks[0].itertext())


# ---- ONNX models: faithful fp32 conversion against the deployed one ----------------


def overflow_model(path):
    """y = (300 x)^2 / 1e4: fine in fp32; (300 x)^2 passes 65504 in fp16
    for x > 0.853."""
    from onnx import TensorProto, checker, helper, numpy_helper, save
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 8]) for n in ("x", "y")]
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["scaled"]),
         helper.make_node("Mul", ["scaled", "scaled"], ["squared"]),
         helper.make_node("Div", ["squared", "d"], ["y"])],
        "overflow", io[:1], io[1:],
        [numpy_helper.from_array(np.array(300, np.float32), "k"),
         numpy_helper.from_array(np.array(1e4, np.float32), "d")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    checker.check_model(m)
    save(m, str(path))


def test_onnx_fp16_audit(milk, tmp_path):
    overflow_model(tmp_path / "m.onnx")
    x = np.array([[0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0]], np.float32)
    np.save(tmp_path / "x.npy", x)
    rc, res = verify_json(milk, tmp_path / "m.onnx", "--input", f"x={tmp_path / 'x.npy'}")
    assert rc == 1
    assert [r["var"] for r in res["rows"]] == ["scaled", "squared", "y"]  # ONNX names
    assert [r["status"] for r in res["rows"]] == ["ok", "diverged", "propagated"]
    assert res["first_divergence"]["var"] == "squared"
    flags = {f["op"]: f for f in res["fp16"]}
    n_big = int(((300 * x) ** 2 > 65504).sum())
    assert n_big == 4
    assert flags[res["rows"][1]["op"]]["overflow"] == n_big
    assert flags[res["rows"][1]["op"]]["inf"] == n_big
    text = milk_cmd(milk, "verify", tmp_path / "m.onnx", "--input", f"x={tmp_path / 'x.npy'}")
    assert "fp16 audit: 2 ops go beyond 65504 or inf/NaN; 1 op loses" in text.stdout
    # converted faithfully twice, the two programs agree exactly
    rc, res = verify_json(milk, tmp_path / "m.onnx", "--precision", "fp32", "--seed", 5)
    assert rc == 0 and all(r["max_abs"] == 0 for r in res["rows"])


@pytest.mark.parametrize("case", ["upsampler_small", "attention"])
def test_onnx_fixture_within_fp16(milk, case):
    d = FIXTURES / case
    rc, res = verify_json(milk, d / "model.onnx", "--input", f"x={d / 'x.npy'}",
                          "--target", "ios18")
    assert rc == 0 and res["fp16"] == []
    assert res["reference"].endswith("(fp32, ios18)") and res["program"].endswith("(fp16, ios18)")
    assert len(res["rows"]) >= 12 and all(1e-6 < r["max_rel"] < 1e-2 for r in res["rows"])


# ---- the HTML report ----------------------------------------------------------------


def test_html_report(milk, tmp_path, planted_ref):
    html = tmp_path / "report.html"
    rc, res = verify_json(milk, UPS / "model_fp32.mlpackage", "--reference", planted_ref,
                          "--report", html)
    assert rc == 1
    tree = ET.parse(html)  # well-formed XML
    circles = [e for e in tree.iter() if e.tag.endswith("}circle")
               and "pt" in e.get("class", "").split()]
    assert len(circles) == len(res["rows"])
    first = [c for c in circles if "first" in c.get("class").split()]
    assert len(first) == 1 and PLANTED_OP in "".join(first[0].itertext())
    assert "diverged" in first[0].get("class").split()
    # points are placed in program order along the x axis
    xs = [float(c.get("cx")) for c in circles]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    # the divergent point sits higher (smaller y) than the matching ones
    ys = {c.get("class").split()[1]: float(c.get("cy")) for c in circles}
    assert ys["diverged"] < ys["ok"]
    text = html.read_text()
    assert PLANTED_OP in text and "first-divergence" in text
    # self-contained: no scripts, no links to anything outside the file
    assert "<script" not in text and "src=" not in text
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', text))  # in-page only
    assert "url(" not in text and "@import" not in text
    assert all(u in ("http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg")
               for u in re.findall(r'"(https?://[^"]*)"', text))


def test_html_report_escapes_names(milk, tmp_path):
    d = FIXTURES / "conv2d_edge"
    # markup characters, UTF-8, and a byte that is no UTF-8 at all
    odd = tmp_path / os.fsdecode(b"a&b<c>'\"\xc3\xa9\xff.npz")
    np.savez(odd, x=np.load(d / "x.npy"), var_22=np.load(d / "expected.npy"))
    rc, _ = verify_json(milk, d / "model_fp32.mlpackage", "--reference", odd,
                        "--report", tmp_path / "r.html")
    assert rc == 0
    ET.parse(tmp_path / "r.html")


# ---- errors ---------------------------------------------------------------------------


def test_errors_exit_2(milk, tmp_path):
    d = FIXTURES / "conv2d_edge"
    pkg = d / "model_fp32.mlpackage"
    good = tmp_path / "good.npz"
    np.savez(good, x=np.load(d / "x.npy"), var_22=np.load(d / "expected.npy"))
    np.savez(tmp_path / "noinput.npz", var_22=np.load(d / "expected.npy"))
    np.savez(tmp_path / "novar.npz", x=np.load(d / "x.npy"), nothing=np.zeros(3))
    np.savez(tmp_path / "badx.npz", x=np.zeros((1, 2, 4, 5), np.float32))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    np.save(tmp_path / "x.npy", np.load(d / "x.npy"))
    cases = [
        ([pkg], "give --reference"),
        ([pkg, "--reference", tmp_path / "missing.npz"], "missing.npz"),
        ([pkg, "--reference", tmp_path / "junk.npz"], "junk.npz"),
        ([pkg, "--reference", tmp_path / "noinput.npz"], "model input 'x' is neither in"),
        ([pkg, "--reference", tmp_path / "novar.npz"], "holds no value for any var"),
        ([pkg, "--reference", tmp_path / "badx.npz"], "expected tensor<fp32, [1, 2, 5, 5]>"),
        ([pkg, "--reference", good, "--input", f"y={tmp_path / 'x.npy'}"], "no input called 'y'"),
        ([pkg, "--reference", good, "--input", "x"], "--input"),
        ([pkg, "--reference", good, "--atol", "abc"], "--atol"),
        ([pkg, "--reference", good, "--rtol", "-1"], "--rtol"),
        ([pkg, "--reference", good, "--precision", "fp8"], "--precision"),
        ([pkg, "--reference", good, "--bogus"], "--bogus"),
        ([pkg, pkg, "--reference", good], "two packages"),
        ([pkg, "--reference", good, "--seed", "3"], "--seed"),
        ([tmp_path / "none.mlpackage", "--reference", good], "none.mlpackage"),
        ([pkg, FIXTURES / "resblock" / "model_fp32.mlpackage", "--seed", "1"], "input 'x'"),
        ([pkg, "--reference", good, "--report", tmp_path / "no" / "dir" / "r.html"], "r.html"),
        ([pkg, "--reference", good, "--target", "ios17"], "--target is for ONNX"),
        ([d / "model.onnx", "--reference", good], "--reference is for packages"),
        ([d / "model.onnx", "--precision", "as-declared"], "fp16 or fp32 for an ONNX"),
        ([d / "model.onnx", "--target", "ios9"], "--target"),
        ([tmp_path / "none.onnx"], "none.onnx"),
    ]
    for args, msg in cases:
        r = milk_cmd(milk, "verify", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert msg in r.stderr, (msg, r.stderr)
    assert not (tmp_path / "no").exists()


def test_no_leaks_under_asan(milk_asan, tmp_path, planted_ref):
    """The ASan build runs both modes and the report cleanly."""
    r = milk_cmd(milk_asan, "verify", UPS / "model_fp32.mlpackage", "--reference", planted_ref,
                 "--report", tmp_path / "r.html")
    assert r.returncode == 1, r.stderr
    r = milk_cmd(milk_asan, "verify", UPS / "model_fp32.mlpackage", UPS / "model_fp16.mlpackage",
                 "--seed", 9, "--json")
    assert r.returncode == 0, r.stderr
    r = milk_cmd(milk_asan, "verify", UPS / "model_fp32.mlpackage", "--reference",
                 tmp_path / "missing.npz")
    assert r.returncode == 2 and "missing.npz" in r.stderr
