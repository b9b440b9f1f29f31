"""`milk verify` options of issue 15: per-output tolerances, the error
statistic checked, --fail-fast, --save-inputs / --save-outputs, SNR and
PSNR in every report, and the HTML report's extract commands.

Expected values are recomputed here with NumPy from the values `milk run
--keep-all` writes, or from references built by hand (one element off)."""
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import FIXTURES
from test_verify import PLANTED_OP, UPS, keep_all, milk_cmd, planted_ref, verify_json  # noqa: F401

EDGE = FIXTURES / "conv2d_edge"


def snr_psnr(got, want):
    got, want = got.astype(np.float64), want.astype(np.float64)
    noise = ((got - want) ** 2).sum()
    return (10 * np.log10((want ** 2).sum() / noise),
            10 * np.log10(np.abs(want).max() ** 2 * want.size / noise))


def test_per_output_tolerance(milk, tmp_path):
    """NAME:VALUE sets one var's tolerance, over --atol/--rtol and the
    defaults."""
    pkg = UPS / "model_fp16.mlpackage"
    a = UPS / "model_fp32.mlpackage"
    args = [a, pkg, "--input", f"x={UPS / 'x.npy'}"]
    rc, res = verify_json(milk, *args, "--atol", 0, "--rtol", 0)
    assert rc == 1 and all(r["status"] != "ok" for r in res["rows"])
    out = res["rows"][-1]["var"]
    rc, res = verify_json(milk, *args, "--atol", 0, "--rtol", 0, "--rtol", f"{out}:0.01",
                          "--atol", f"{out}:0.002")
    last = res["rows"][-1]
    assert last["var"] == out and last["rtol"] == 0.01 and last["atol"] == 0.002
    assert all(r["rtol"] == 0 and r["atol"] == 0 for r in res["rows"][:-1])
    assert res["tolerances"] == [{"var": out, "rtol": 0.01, "atol": 0.002}]
    # the output's error is that of fp16 rounding: within its own tolerance,
    # but it inherits the divergence of the ops before it
    assert last["max_abs"] <= 0.002 + 0.01 * last["max_abs"] / last["max_rel"]
    # a name that is no var of the program is an error, not ignored
    r = milk_cmd(milk, "verify", *args, "--rtol", "no_such_var:0.1")
    assert r.returncode == 2 and "no_such_var" in r.stderr
    r = milk_cmd(milk, "verify", *args, "--rtol", f"{out}:-1")
    assert r.returncode == 2


@pytest.fixture
def one_off(milk, tmp_path):
    """A reference equal to milk's output except one element, off by 10."""
    pkg = EDGE / "model_fp32.mlpackage"
    r = milk_cmd(milk, "run", pkg, "--input", f"x={EDGE / 'x.npy'}", "--output",
                 tmp_path / "o.npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "o.npz") as z:
        (name,) = z.files
        want = z[name].copy()
    want.flat[3] += 10.0
    np.savez(tmp_path / "ref.npz", x=np.load(EDGE / "x.npy"), **{name: want})
    return pkg, tmp_path / "ref.npz", name, want


def test_error_statistics(milk, one_off, tmp_path):
    pkg, ref, name, want = one_off
    err = np.zeros(want.size)
    err[3] = 10.0  # milk's own output against the reference
    scale = np.abs(want).max()
    rtol = (err.mean() * 4) / scale  # the mean passes, the max does not
    verdict = {}
    for stat in ("max", "mean", "median", "elemwise"):
        rc, res = verify_json(milk, pkg, "--reference", ref, "--atol", 0, "--rtol", rtol,
                              "--check-error-stat", stat)
        [row] = res["rows"]
        assert res["error_stat"] == stat
        assert row["max_abs"] == pytest.approx(10.0, rel=1e-6)
        assert row["mean_abs"] == pytest.approx(err.mean(), rel=1e-5)
        assert row["median_abs"] == pytest.approx(np.median(err), abs=1e-6)
        assert row["beyond"] == int((err > rtol * np.abs(want).ravel()).sum()) == 1
        verdict[stat] = rc
    assert verdict == {"max": 1, "mean": 0, "median": 0, "elemwise": 1}
    text = milk_cmd(milk, "verify", pkg, "--reference", ref, "--check-error-stat", "median")
    assert "checking the median error" in text.stdout and "median abs" in text.stdout
    r = milk_cmd(milk, "verify", pkg, "--reference", ref, "--check-error-stat", "p99")
    assert r.returncode == 2


def test_snr_and_psnr_in_every_report(milk, one_off, tmp_path):
    pkg, ref, name, want = one_off
    got = want.copy()
    got.flat[3] -= 10.0
    snr, psnr = snr_psnr(got, want)
    rc, res = verify_json(milk, pkg, "--reference", ref, "--report", tmp_path / "r.html")
    [row] = res["rows"]
    assert row["snr_db"] == pytest.approx(snr, rel=1e-4)
    assert row["psnr_db"] == pytest.approx(psnr, rel=1e-4)
    text = milk_cmd(milk, "verify", pkg, "--reference", ref).stdout
    assert "PSNR dB" in text and f"{psnr:.1f}" in text and f"{snr:.1f}" in text
    html = (tmp_path / "r.html").read_text()
    assert "PSNR dB" in html and f"{psnr:.1f}" in html


def test_fail_fast(milk, tmp_path, planted_ref):
    pkg = UPS / "model_fp32.mlpackage"
    _, full = verify_json(milk, pkg, "--reference", planted_ref)
    rc, res = verify_json(milk, pkg, "--reference", planted_ref, "--fail-fast")
    assert rc == 1 and res["stopped"] is True and full["stopped"] is False
    assert res["rows"][-1]["op"] == PLANTED_OP and res["rows"][-1]["status"] == "diverged"
    assert res["rows"] == full["rows"][:len(res["rows"])]
    assert len(res["rows"]) < len(full["rows"])
    text = milk_cmd(milk, "verify", pkg, "--reference", planted_ref, "--fail-fast").stdout
    assert "stopped at the first var beyond tolerance" in text


def test_save_inputs_and_outputs(milk, tmp_path):
    a, b = UPS / "model_fp32.mlpackage", UPS / "model_fp16.mlpackage"
    rc, res = verify_json(milk, a, b, "--seed", 7, "--save-inputs", tmp_path / "in.npz",
                          "--save-outputs", tmp_path / "out.npz")
    with np.load(tmp_path / "in.npz") as z:
        assert z.files == ["x"]
        np.save(tmp_path / "x.npy", z["x"])
    # the saved inputs repeat the run: milk run on them gives the saved outputs
    r = milk_cmd(milk, "run", b, "--input", f"x={tmp_path / 'x.npy'}", "--output",
                 tmp_path / "again.npz")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "out.npz") as got, np.load(tmp_path / "again.npz") as want:
        assert got.files == want.files == [res["rows"][-1]["var"]]
        np.testing.assert_array_equal(got[got.files[0]], want[want.files[0]])
    # reference mode: the inputs are those of the reference
    ref = tmp_path / "ref.npz"
    np.savez(ref, x=np.load(UPS / "x.npy"))
    vals = keep_all(milk, a, tmp_path / "all.npz", UPS / "x.npy")
    np.savez(ref, x=np.load(UPS / "x.npy"), var_115=vals["var_115"])
    rc, _ = verify_json(milk, a, "--reference", ref, "--save-inputs", tmp_path / "in2.npz",
                        "--save-outputs", tmp_path / "out2.npz")
    assert rc == 0
    with np.load(tmp_path / "in2.npz") as z, np.load(tmp_path / "out2.npz") as o:
        np.testing.assert_array_equal(z["x"], np.load(UPS / "x.npy"))
        np.testing.assert_array_equal(o["var_115"], vals["var_115"])


def test_html_report_extract_commands(milk, tmp_path, planted_ref):
    """Each op of the table opens to the command that extracts it; the
    first divergence's command runs as printed."""
    html = tmp_path / "report.html"
    rc, res = verify_json(milk, UPS / "model_fp32.mlpackage", "--reference", planted_ref,
                          "--report", html)
    tree = ET.parse(html)
    rows = {e.get("id"): e for e in tree.iter() if e.tag.endswith("}tr") and e.get("id")}
    assert len(rows) == len(res["rows"])
    first = res["first_divergence"]["row"]
    codes = [e for e in rows[f"row-{first}"].iter() if e.tag.endswith("}code")]
    cmd = "".join(codes[0].itertext())
    assert cmd.startswith("milk extract ") and f"--op {PLANTED_OP}" in cmd
    args = shlex.split(cmd)
    r = subprocess.run([milk] + args[1:], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / f"{PLANTED_OP}.mlpackage").is_dir()
    assert (tmp_path / f"{PLANTED_OP}.npz").exists()
    # chart points link to their rows
    links = [e.get("href") for e in tree.iter() if e.tag.endswith("}a")]
    assert f"#row-{first}" in links
    assert re.search(r"Extract it", html.read_text())
