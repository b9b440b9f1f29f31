"""`milk debug reduce`: a failing program reduced to a small subgraph that
still fails. Defects are planted at a known op (tests/tools/plant_defect.c)
of a converted torchvision resnet18 (a bias that reaches only the first
outputs) and of a GPT-2-style block in fp16 (an overflow); the reference
values come from `milk run --keep-all` of the program before planting, and
each reduced package is checked again here, independently of the search:
its values are recomputed and compared with NumPy."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import BUILD, FIXTURES
from test_convert import GPT2Block, calibrate_batch_norm, export

UPS = FIXTURES / "upsampler_small"
R18_OP = "_layer2_layer2_1_conv1_Conv_output_0"  # a conv in the middle of resnet18
GPT_OP = "_fc_Add_output_0"                       # the first MLP layer's bias add


def milk_cmd(milk, *args, **kw):
    return subprocess.run([milk, *map(str, args)], capture_output=True, text=True, **kw)


def plant(tmp, kind, pkg, op, arg, name):
    out = tmp / name
    r = subprocess.run([str(BUILD / "tools" / "plant_defect"), kind, str(pkg), op, str(arg),
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def keep_all(milk, pkg, x, out):
    r = milk_cmd(milk, "run", pkg, "--input", f"x={x}", "--output", out, "--keep-all")
    assert r.returncode == 0, r.stderr
    return out


def reduce(milk, pkg, out, *args):
    r = milk_cmd(milk, "debug", "reduce", pkg, "-o", out, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    base = str(out)[:-len(".mlpackage")]
    log = json.loads(pathlib.Path(base + ".json").read_text())
    # the text says how many candidates were tried, as the log lists them
    assert f"candidates tried: {len(log['candidates'])} (" in r.stdout
    assert pathlib.Path(base + ".txt").read_text() in r.stdout
    print(f"{pkg.name}: {log['ops_before']} ops -> {log['ops_after']}, "
          f"{len(log['candidates'])} candidates tried", file=sys.stderr)
    return log, pathlib.Path(base + ".npz")


def ops_of(milk, pkg):
    """(op name, type) of every non-const op, from the model.mil text."""
    r = milk_cmd(milk, "dump", pkg)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        if "[name = string(" not in line or " = const()" in line:
            continue
        typ = line.split(" = ", 1)[1].split("(", 1)[0]
        name = line.split('[name = string("', 1)[1].split('")', 1)[0]
        out.append((name, typ))
    return out


def run_npz(milk, pkg, npz, tmp, *args):
    """Run pkg on the inputs held in npz (every model input is in it)."""
    with np.load(npz) as z:
        vals = {k: z[k] for k in z.files}
    r = milk_cmd(milk, "dump", pkg)
    sig = r.stdout.split("func main<", 1)[1].split(") {", 1)[0]
    names = [p.split(">")[-1].strip() for p in sig.split(", tensor<")]
    cmd = ["run", pkg, "--output", tmp / "run.npz", *args]
    for n in names:
        np.save(tmp / f"in_{n}.npy", vals[n])
        cmd += ["--input", f"{n}={tmp / f'in_{n}.npy'}"]
    r = milk_cmd(milk, *cmd)
    assert r.returncode == 0, r.stderr
    with np.load(tmp / "run.npz") as z:
        return {k: z[k] for k in z.files}, vals


def check_log(log):
    assert log["candidates"][0]["phase"] == "whole"
    assert log["candidates"][0]["verdict"] == "bad"
    assert all(c["verdict"] in ("good", "bad", "invalid") for c in log["candidates"])
    kept = [c for c in log["candidates"] if c["kept"]]
    assert kept[-1]["ops"] == log["ops_after"] and kept[-1]["verdict"] == "bad"


# ---- the models ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet18(milk, tmp_path_factory):
    tv = pytest.importorskip("torchvision")
    tmp = tmp_path_factory.mktemp("r18")
    torch.manual_seed(0)
    m = tv.models.resnet18()
    x = torch.randn(1, 3, 64, 64)
    calibrate_batch_norm(m, x.shape)
    export(m, x, tmp / "r18.onnx", 13)
    np.save(tmp / "x.npy", x.numpy())
    pkg = tmp / "r18.mlpackage"
    r = milk_cmd(milk, "convert", tmp / "r18.onnx", "-o", pkg, "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    ref = keep_all(milk, pkg, tmp / "x.npy", tmp / "ref.npz")
    return {"pkg": pkg, "x": tmp / "x.npy", "ref": ref, "onnx": tmp / "r18.onnx"}


@pytest.fixture(scope="module")
def gpt2(milk, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpt2r")
    torch.manual_seed(1)
    m = GPT2Block().eval()
    x = torch.randn(1, 16, 64)
    export(m, x, tmp / "gpt2.onnx", 17)
    np.save(tmp / "x.npy", x.numpy().astype(np.float16))
    pkg = tmp / "gpt2_fp16.mlpackage"
    r = milk_cmd(milk, "convert", tmp / "gpt2.onnx", "-o", pkg)  # fp16, iOS17
    assert r.returncode == 0, r.stderr
    ref = keep_all(milk, pkg, tmp / "x.npy", tmp / "ref.npz")
    return {"pkg": pkg, "x": tmp / "x.npy", "ref": ref, "onnx": tmp / "gpt2.onnx"}


# ---- planted defects -----------------------------------------------------------------


def test_resnet18_planted_bias_defect(milk, tmp_path, resnet18):
    """The bias of one conv reaches only the first 4 columns of each
    channel: reduced against the good program's values to <= 3 ops
    holding the planted op."""
    pkg = plant(tmp_path, "bias", resnet18["pkg"], R18_OP, 4, "planted.mlpackage")
    n_ops = len(ops_of(milk, pkg))
    log, npz = reduce(milk, pkg, tmp_path / "min.mlpackage", "--against", resnet18["ref"])
    check_log(log)
    ops = ops_of(milk, tmp_path / "min.mlpackage")
    assert log["ops_before"] == n_ops > 45
    assert len(ops) == log["ops_after"] <= 3
    assert (R18_OP, "add") in ops  # the planted op
    assert log["inputs"][0]["origin"] == f"cut: output of op '{R18_OP}' (conv)"
    # bisection, not one op at a time: far fewer candidates than ops
    assert len(log["candidates"]) < n_ops // 2
    # Independently of the search: the package run on its inputs differs
    # from the good values by the bias, missing past the 4th column.
    got, vals = run_npz(milk, tmp_path / "min.mlpackage", npz, tmp_path)
    diff = vals[R18_OP].astype(np.float64) - got[R18_OP]
    np.testing.assert_allclose(diff[..., :4], 0, atol=1e-5)
    per_channel = diff[..., 4:].reshape(diff.shape[1], -1)
    np.testing.assert_allclose(per_channel, per_channel[:, :1] * np.ones_like(per_channel),
                               atol=1e-4)
    assert np.abs(per_channel).max() > 1e-2
    # and `milk verify` on the files written names it
    r = milk_cmd(milk, "verify", tmp_path / "min.mlpackage", "--reference", npz, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["first_divergence"]["op"] == R18_OP


def test_gpt2_planted_overflow(milk, tmp_path, gpt2):
    """A mul by 60000 after the first MLP layer overflows fp16: reduced to
    <= 3 ops holding the planted op, against the good program's values and
    by comparing fp16 storage with fp32."""
    pkg = plant(tmp_path, "scale", gpt2["pkg"], GPT_OP, 60000, "planted.mlpackage")
    for how in (["--against", gpt2["ref"]], ["--fp16-vs-fp32", "--input", f"x={gpt2['x']}"]):
        out = tmp_path / f"min_{how[0][2:]}.mlpackage"
        log, npz = reduce(milk, pkg, out, *how)
        check_log(log)
        ops = ops_of(milk, out)
        assert len(ops) == log["ops_after"] <= 3
        assert (GPT_OP, "mul") in ops
        # the reduced package overflows in fp16 and not in fp32
        fp16, vals = run_npz(milk, out, npz, tmp_path)
        fp32, _ = run_npz(milk, out, npz, tmp_path, "--precision", "fp32")
        assert np.isinf(fp16[GPT_OP]).any() and np.isfinite(fp32[GPT_OP]).all()
        x = vals[log["inputs"][0]["name"]].astype(np.float32)
        np.testing.assert_allclose(fp32[GPT_OP], x * np.float32(60000), rtol=1e-6)


# ---- the external check ----------------------------------------------------------------


def test_check_command_finds_one_op(milk, tmp_path, gpt2):
    """--check with a shell script failing when a named op is present
    finds the 1-op package; the script gets a package and its inputs."""
    script = tmp_path / "has_softmax.sh"
    script.write_text(f"""#!/bin/sh
test -d "$1" || exit 3
test -f "${{1%.mlpackage}}.npz" || exit 4
"{milk}" dump "$1" | grep -q 'name = string("_Softmax_output_0")' && {{ echo softmax here; exit 1; }}
exit 0
""")
    script.chmod(0o755)
    log, npz = reduce(milk, gpt2["pkg"], tmp_path / "min.mlpackage", "--check",
                      f"{script} {{}}", "--input", f"x={gpt2['x']}")
    check_log(log)
    assert ops_of(milk, tmp_path / "min.mlpackage") == [("_Softmax_output_0", "softmax")]
    assert log["failure"] == "exit 1: softmax here"
    assert all(c["verdict"] != "invalid" for c in log["candidates"])
    with np.load(npz) as z:
        assert "_Where_output_0" in z.files  # its input, cut, with its value


def test_check_command_exit_codes(milk, tmp_path):
    """Exit 0 good, 1 bad, anything else invalid (treated as good); the
    whole program must fail."""
    pkg = UPS / "model_fp32.mlpackage"
    script = tmp_path / "c.sh"
    # bad while a conv_transpose is present; invalid (exit 3) without a leaky_relu
    script.write_text(f"""#!/bin/sh
p=$("{milk}" dump "$1")
echo "$p" | grep -q "= leaky_relu(" || exit 3
echo "$p" | grep -q "= conv_transpose(" && exit 1
exit 0
""")
    script.chmod(0o755)
    log, _ = reduce(milk, pkg, tmp_path / "m.mlpackage", "--check", str(script))  # path appended
    verdicts = {c["verdict"] for c in log["candidates"]}
    assert "invalid" in verdicts and "bad" in verdicts
    assert all(c["detail"].startswith("exit 3") for c in log["candidates"]
               if c["verdict"] == "invalid")
    types = [t for _, t in ops_of(milk, tmp_path / "m.mlpackage")]
    assert "conv_transpose" in types and "leaky_relu" in types
    # a program that does not fail: nothing to reduce, exit 2, nothing written
    r = milk_cmd(milk, "debug", "reduce", pkg, "-o", tmp_path / "n.mlpackage", "--check", "true")
    assert r.returncode == 2 and "does not fail the check" in r.stderr
    assert not (tmp_path / "n.mlpackage").exists() and not (tmp_path / "n.json").exists()


def test_work_dir_keeps_the_last_candidate(milk, tmp_path):
    pkg = UPS / "model_fp32.mlpackage"
    work = tmp_path / "work"
    r = milk_cmd(milk, "debug", "reduce", pkg, "-o", tmp_path / "m.mlpackage", "--check",
                 "echo checking; exit 1", "--work-dir", work, "--mode", "bisect")
    assert r.returncode == 0, r.stderr
    assert (work / "candidate.mlpackage").is_dir() and (work / "candidate.npz").exists()
    assert (work / "candidate.log").read_text() == "checking\n"


# ---- the built-in checks, modes, ONNX --------------------------------------------------------


def test_lint_check_and_onnx_input(milk, tmp_path, gpt2):
    """--lint RULE on an ONNX model (converted as `milk convert` would):
    the smallest subgraph the rule still matches in."""
    log, _ = reduce(milk, gpt2["onnx"], tmp_path / "m.mlpackage", "--lint", "fp16-general")
    check_log(log)
    assert ops_of(milk, tmp_path / "m.mlpackage") == [("_Pow_1_output_0", "pow")]
    assert "fp16-general" in log["check"] and "pow" in log["failure"]
    r = milk_cmd(milk, "debug", "reduce", gpt2["onnx"], "-o", tmp_path / "x.mlpackage",
                 "--lint", "no-such-rule")
    assert r.returncode == 2 and "no-such-rule" in r.stderr


def test_modes_and_candidate_limit(milk, tmp_path, resnet18):
    pkg = plant(tmp_path, "bias", resnet18["pkg"], R18_OP, 4, "planted.mlpackage")
    log, _ = reduce(milk, pkg, tmp_path / "b.mlpackage", "--against", resnet18["ref"],
                    "--mode", "bisect")
    assert {c["phase"] for c in log["candidates"]} <= {"whole", "outputs", "inputs"}
    log, _ = reduce(milk, pkg, tmp_path / "l.mlpackage", "--against", resnet18["ref"],
                    "--mode", "linear", "--max-candidates", 12)
    assert {c["phase"] for c in log["candidates"]} == {"whole", "one-op"}
    assert len(log["candidates"]) == 12
    assert log["ops_after"] < log["ops_before"]  # what it removed so far


def test_per_output_tolerance_in_the_check(milk, tmp_path, resnet18):
    """The check's tolerances are verify's: a tolerance the planted error
    fits in makes the program pass."""
    pkg = plant(tmp_path, "bias", resnet18["pkg"], R18_OP, 4, "planted.mlpackage")
    r = milk_cmd(milk, "debug", "reduce", pkg, "-o", tmp_path / "m.mlpackage", "--against",
                 resnet18["ref"], "--atol", 1e6)
    assert r.returncode == 2 and "does not fail the check" in r.stderr
    r = milk_cmd(milk, "debug", "reduce", pkg, "-o", tmp_path / "m.mlpackage", "--against",
                 resnet18["ref"], "--check-error-stat", "median")
    assert r.returncode == 0, r.stderr


def test_usage_errors(milk, tmp_path):
    pkg = UPS / "model_fp32.mlpackage"
    out = tmp_path / "m.mlpackage"
    for args in ([pkg, "-o", out], [pkg, "-o", out, "--fp16-vs-fp32", "--lint", "names"],
                 [pkg, "--fp16-vs-fp32"], [pkg, "-o", out, "--fp16-vs-fp32", "--mode", "x"]):
        r = milk_cmd(milk, "debug", "reduce", *args)
        assert r.returncode == 2 and "usage" in r.stderr, args
    r = milk_cmd(milk, "debug", "shrink", pkg)
    assert r.returncode == 2
    # a reference without the model input
    np.savez(tmp_path / "ref.npz", y=np.zeros(3, np.float32))
    r = milk_cmd(milk, "debug", "reduce", pkg, "-o", out, "--against", tmp_path / "ref.npz")
    assert r.returncode == 2 and "'x'" in r.stderr
    assert not out.exists()


def test_under_sanitizers(milk, milk_san, tmp_path):
    """One reduction of each kind through the sanitized build."""
    ref = keep_all(milk, UPS / "model_fp32.mlpackage", UPS / "x.npy", tmp_path / "ref.npz")
    pkg = plant(tmp_path, "bias", UPS / "model_fp32.mlpackage", "input_9_has_output_shape", 4,
                "p.mlpackage")
    for args in (["--against", ref], ["--check", "exit 1", "--mode", "linear"],
                 ["--fp16-vs-fp32", "--input", f"x={UPS / 'x.npy'}", "--atol", 0, "--rtol", 0],
                 ["--lint", "convt1d-bias"]):
        src = UPS / "model_fp16.mlpackage" if args[0] == "--fp16-vs-fp32" else pkg
        r = milk_cmd(milk_san, "debug", "reduce", src, "-o", tmp_path / "m.mlpackage", *args)
        assert r.returncode == 0, r.stderr
