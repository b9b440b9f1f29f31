"""`milk run` on the packages coremltools made: every fixture, fp32 and
fp16, must reproduce PyTorch's output (expected.npy) within the accuracy
the format allows; plus the command's input checking and --keep-all."""
import json
import subprocess

import numpy as np
import pytest

from conftest import CASES, FIXTURES


def rel_err(got, want):
    got = got.astype(np.float64)
    want = want.astype(np.float64)
    assert got.shape == want.shape
    return np.max(np.abs(got - want)) / np.max(np.abs(want))


def run(milk, pkg, out, *extra, inputs=None):
    args = [milk, "run", str(pkg), "--output", str(out)]
    for name, path in (inputs or {}).items():
        args += ["--input", f"{name}={path}"]
    return subprocess.run(args + list(extra), capture_output=True, text=True)


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-5), ("fp16", 1e-2)])
@pytest.mark.parametrize("case", CASES)
def test_fixture_matches_pytorch(milk, tmp_path, case, precision, tol):
    d = FIXTURES / case
    pkg = d / f"model_{precision}.mlpackage"
    out_name = json.loads((d / "case.json").read_text())["packages"][precision]["outputs"][0][0]
    r = run(milk, pkg, tmp_path / "out.npz", inputs={"x": d / "x.npy"})
    assert r.returncode == 0, r.stderr
    assert out_name in r.stdout  # the one-line summary names the output
    with np.load(tmp_path / "out.npz") as z:
        got = z[out_name]
    err = rel_err(got, np.load(d / "expected.npy"))
    assert err < tol, f"{case} {precision}: relative error {err:.3g}"


@pytest.mark.parametrize("case", CASES)
def test_reference_kernels_agree(milk, tmp_path, case):
    """The plain reference kernels and the fast paths give the same result."""
    d = FIXTURES / case
    pkg = d / "model_fp32.mlpackage"
    fast = run(milk, pkg, tmp_path / "fast.npz", inputs={"x": d / "x.npy"})
    ref = run(milk, pkg, tmp_path / "ref.npz", "--reference", inputs={"x": d / "x.npy"})
    assert fast.returncode == 0 and ref.returncode == 0, fast.stderr + ref.stderr
    with np.load(tmp_path / "fast.npz") as a, np.load(tmp_path / "ref.npz") as b:
        for k in a.files:
            assert rel_err(a[k], b[k]) < 1e-5, k


def test_keep_all_writes_every_intermediate(milk, tmp_path):
    d = FIXTURES / "resblock"
    r = run(milk, d / "model_fp32.mlpackage", tmp_path / "all.npz", "--keep-all",
            inputs={"x": d / "x.npy"})
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "all.npz") as z:
        names = set(z.files)
    # every var printed by coremltools for this program (program_fp32.txt)
    text = (d / "program_fp32.txt").read_text()
    import re
    for var in set(re.findall(r"%(\w+):", text)):
        assert var in names, var


def test_fp32_precision_mode_on_fp16_package(milk, tmp_path):
    """--precision fp32 computes an fp16 program without rounding: closer
    to PyTorch than fp16 allows, and written as fp32."""
    d = FIXTURES / "upsampler_small"
    r = run(milk, d / "model_fp16.mlpackage", tmp_path / "o.npz", "--precision", "fp32",
            inputs={"x": d / "x.npy"})
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "o.npz") as z:
        got = z["var_115"]
    assert got.dtype == np.float32
    # weights are still fp16, so not 1e-5; but no activation rounding
    assert rel_err(got, np.load(d / "expected.npy")) < 2e-3


def test_input_errors_name_the_signature(milk, tmp_path):
    d = FIXTURES / "conv2d_edge"
    pkg = d / "model_fp32.mlpackage"
    np.save(tmp_path / "bad.npy", np.zeros((1, 2, 4, 5), np.float32))
    np.save(tmp_path / "i.npy", np.zeros((1, 2, 5, 5), np.int32))
    cases = [
        ({"y": d / "x.npy"}, "no input called 'y'"),
        ({"x": tmp_path / "bad.npy"}, "expected tensor<fp32, [1, 2, 5, 5]>"),
        ({"x": tmp_path / "i.npy"}, "input 'x' is tensor<int32"),
        ({}, "input 'x' was not given"),
        ({"x": tmp_path / "missing.npy"}, "missing.npy"),
    ]
    for inputs, msg in cases:
        r = run(milk, pkg, tmp_path / "o.npz", inputs=inputs)
        assert r.returncode == 2, (inputs, r.stderr)
        assert msg in r.stderr, (msg, r.stderr)
        if "missing" not in msg:
            assert "main(tensor<fp32, [1, 2, 5, 5]> x)" in r.stderr
    assert not (tmp_path / "o.npz").exists()


def test_fp32_input_to_fp16_model_is_converted_with_notice(milk, tmp_path):
    d = FIXTURES / "conv2d_edge"
    r = run(milk, d / "model_fp16.mlpackage", tmp_path / "o.npz", inputs={"x": d / "x.npy"})
    assert r.returncode == 0, r.stderr
    assert "converting fp32" in r.stderr
    with np.load(tmp_path / "o.npz") as z:
        assert z["var_22"].dtype == np.float16
