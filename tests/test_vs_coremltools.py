"""milk against coremltools: for each case of tests/fixtures/coremltools/,
milk converts model.onnx at fp32 for the case's target, and `milk verify`
compares milk's package with coremltools' model_fp32.mlpackage on x.npy.
The outputs must agree within 1e-5 relative (max |err| <= 1e-5 max |want|),
and each must match PyTorch's output (expected.npy, computed when the
fixtures were made) within 1e-5 relative.

The two programs name their outputs differently (ONNX `y` against
coremltools' `var_NN`): `milk verify` pairs single outputs by position and
says so; `--pair A_NAME=B_NAME` pairs them explicitly."""
import json
import subprocess

import numpy as np
import pytest

from conftest import CASES, FIXTURES
from milkop import rel_err

TOL = 1e-5


def milk_cmd(milk, *args):
    return subprocess.run([milk, *map(str, args)], capture_output=True, text=True)


def case_meta(case):
    return json.loads((FIXTURES / case / "case.json").read_text())


def run_output(milk, pkg, x, out, name):
    r = milk_cmd(milk, "run", pkg, "--input", f"x={x}", "--output", out)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        return z[name]


@pytest.fixture(scope="module")
def converted(milk, tmp_path_factory):
    """milk's fp32 package of each case's model.onnx."""
    tmp = tmp_path_factory.mktemp("milk_fp32")
    pkgs = {}
    for case in CASES:
        pkg = tmp / f"{case}.mlpackage"
        r = milk_cmd(milk, "convert", FIXTURES / case / "model.onnx", "-o", pkg,
                     "--precision", "fp32", "--target", case_meta(case)["target"])
        assert r.returncode == 0, r.stderr
        pkgs[case] = pkg
    return pkgs


@pytest.mark.parametrize("case", CASES)
def test_outputs_agree_with_coremltools(milk, converted, case):
    d = FIXTURES / case
    ct_out = case_meta(case)["packages"]["fp32"]["outputs"][0][0]
    r = milk_cmd(milk, "verify", d / "model_fp32.mlpackage", converted[case],
                 "--input", f"x={d / 'x.npy'}", "--rtol", TOL, "--atol", 0, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    rows = {row["var"]: row for row in res["rows"]}
    assert rows["y"]["ref"] == ct_out and rows["y"]["status"] == "ok"
    assert rows["y"]["max_rel"] <= TOL
    # the pairing is reported, not silent
    assert res["paired"] == [{"var": "y", "ref": ct_out, "how": "position"}]
    text = milk_cmd(milk, "verify", d / "model_fp32.mlpackage", converted[case],
                    "--input", f"x={d / 'x.npy'}", "--rtol", TOL, "--atol", 0)
    assert f"paired: 'y' compared with '{ct_out}'" in text.stdout
    assert "paired by position" in text.stdout


@pytest.mark.parametrize("case", CASES)
def test_both_match_pytorch(milk, converted, tmp_path, case):
    d = FIXTURES / case
    want = np.load(d / "expected.npy")
    ct_out = case_meta(case)["packages"]["fp32"]["outputs"][0][0]
    ours = run_output(milk, converted[case], d / "x.npy", tmp_path / "milk.npz", "y")
    theirs = run_output(milk, d / "model_fp32.mlpackage", d / "x.npy",
                        tmp_path / "ct.npz", ct_out)
    assert rel_err(ours, want) <= TOL, case
    assert rel_err(theirs, want) <= TOL, case


def test_pair_option(milk, converted):
    """--pair names the reference var for a var of B explicitly."""
    case = "upsampler_small"
    d = FIXTURES / case
    ct_out = case_meta(case)["packages"]["fp32"]["outputs"][0][0]
    r = milk_cmd(milk, "verify", d / "model_fp32.mlpackage", converted[case],
                 "--input", f"x={d / 'x.npy'}", "--pair", f"{ct_out}=y", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["paired"] == [{"var": "y", "ref": ct_out, "how": "pair"}]
    # an intermediate too: coremltools' first conv_transpose against milk's
    # (named after the ONNX tensor), of the same shape [1, 16, 160]
    r = milk_cmd(milk, "verify", d / "model_fp32.mlpackage", converted[case],
                 "--input", f"x={d / 'x.npy'}", "--json",
                 "--pair", "input_3_has_output_shape=_0_ConvTranspose_output_0")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {row["var"]: row for row in json.loads(r.stdout)["rows"]}
    row = rows["_0_ConvTranspose_output_0"]
    assert row["ref"] == "input_3_has_output_shape" and row["shape"] == [1, 16, 160]
    assert row["max_rel"] <= TOL
    # names that are no var: an error naming the name, exit 2
    for pair, text in [("nope=y", "no var 'nope'"), (f"{ct_out}=nope", "no var 'nope'"),
                       (f"{ct_out}=x", "no var 'x' computed by an op")]:
        r = milk_cmd(milk, "verify", d / "model_fp32.mlpackage", converted[case],
                     "--input", f"x={d / 'x.npy'}", "--pair", pair)
        assert r.returncode == 2 and text in r.stderr, (pair, r.stderr)
    r = milk_cmd(milk, "verify", converted[case], "--reference", d / "x.npy",
                 "--pair", "a=b")
    assert r.returncode == 2 and "--pair is for comparing two packages" in r.stderr
