"""`milk extract`: one op, or the ops between two, cut out of a fixture
into a standalone package that loads, runs and reproduces, bit for bit
in fp32, what that op computed inside the full program (`milk run
--keep-all` of the full program is the reference); the .npz of captured
inputs beside it; the zero-bias and lift-1d variants; errors."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import FIXTURES


def milk_cmd(milk, *args):
    return subprocess.run([milk, *map(str, args)], capture_output=True, text=True)


def full_run(milk, case, tmp_path, precision="fp32"):
    """Every value of the fixture's program on its x.npy."""
    d = FIXTURES / case
    out = tmp_path / f"full_{case}.npz"
    r = milk_cmd(milk, "run", d / f"model_{precision}.mlpackage", "--input", f"x={d / 'x.npy'}",
                 "--output", out, "--keep-all")
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def x_ref(case, tmp_path):
    ref = tmp_path / f"x_{case}.npz"
    np.savez(ref, x=np.load(FIXTURES / case / "x.npy"))
    return ref


def extract(milk, case, tmp_path, *args, name="sub", capture=True):
    pkg = tmp_path / f"{name}.mlpackage"
    extra = ["--inputs-from", x_ref(case, tmp_path)] if capture else []
    r = milk_cmd(milk, "extract", FIXTURES / case / "model_fp32.mlpackage", *args, "-o", pkg,
                 *extra)
    assert r.returncode == 0, r.stderr
    return pkg, tmp_path / f"{name}.npz"


def run_with(milk, pkg, inputs, tmp_path):
    """Run pkg with inputs {name: array}; every value it computes."""
    args = []
    for k, v in inputs.items():
        np.save(tmp_path / f"in_{k}.npy", v)
        args += ["--input", f"{k}={tmp_path / f'in_{k}.npy'}"]
    out = tmp_path / "sub_out.npz"
    r = milk_cmd(milk, "run", pkg, *args, "--output", out, "--keep-all")
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def signature(milk, pkg):
    """main's inputs as printed by milk dump: [(type, name)]."""
    text = milk_cmd(milk, "dump", pkg).stdout
    sig = re.search(r"func main<\w+>\((.*)\)", text).group(1)
    return re.findall(r"(tensor<[^>]*>) (\w+)", sig)


def bias_of(case, op_name):
    for line in (FIXTURES / case / "program_fp32.txt").read_text().splitlines():
        if f'name="{op_name}"' in line:
            return np.array(json.loads(re.search(r"bias=(\[[^\]]*\])", line).group(1)), np.float32)
    raise KeyError(op_name)


@pytest.mark.parametrize("case,op,inputs,output", [
    ("resblock", "input_11", ["input_7"], "input_11"),             # a conv of the residual block
    ("upsampler_small", "input_9_has_output_shape", ["input_7"], "input_9_has_output_shape"),
    ("convt1d_small", "var_18", ["x"], "var_18"),                   # named by its var
    ("attention", "op_38", ["var_35"], "var_38_0"),                 # split: three outputs
])
def test_one_op_bit_for_bit(milk, tmp_path, case, op, inputs, output):
    full = full_run(milk, case, tmp_path)
    pkg, npz = extract(milk, case, tmp_path, "--op", op)
    assert [n for _, n in signature(milk, pkg)] == inputs
    with np.load(npz) as z:
        captured = {k: z[k] for k in z.files}
    for name in inputs:  # the captured inputs are the values in the full run
        assert np.array_equal(captured[name], full[name])
    got = run_with(milk, pkg, {k: captured[k] for k in inputs}, tmp_path)
    assert got[output].dtype == np.float32
    assert np.array_equal(got[output], full[output])
    assert np.array_equal(captured[output], full[output])
    # the .npz is a ready reference for the repro
    r = milk_cmd(milk, "verify", pkg, "--reference", npz, "--atol", 0, "--rtol", 0)
    assert r.returncode == 0, r.stdout + r.stderr


def test_input_types_follow_the_program(milk, tmp_path):
    """Boundary vars keep their names and types, fp16 included."""
    d = FIXTURES / "upsampler_small"
    pkg = tmp_path / "s16.mlpackage"
    r = milk_cmd(milk, "extract", d / "model_fp16.mlpackage", "--op", "input_13_cast_fp16",
                 "-o", pkg, "--inputs-from", x_ref("upsampler_small", tmp_path))
    assert r.returncode == 0, r.stderr
    assert signature(milk, pkg) == [("tensor<fp16, [1, 8, 1280]>", "input_11_cast_fp16")]
    full = full_run(milk, "upsampler_small", tmp_path, "fp16")
    with np.load(tmp_path / "s16.npz") as z:
        assert z["input_11_cast_fp16"].dtype == np.float16
        got = run_with(milk, pkg, {"input_11_cast_fp16": z["input_11_cast_fp16"]}, tmp_path)
    assert np.array_equal(got["input_13_cast_fp16"], full["input_13_cast_fp16"])


@pytest.mark.parametrize("case,first,last,inputs,n_ops", [
    ("resblock", "input_11", "op_69", ["input_7"], 4),  # conv, relu, conv, residual add
    ("resblock", "input_3", "linear_0", ["x"], 10),     # everything
    ("attention", "op_38", "a", ["var_35"], 8),         # split .. softmax, not the v branch
])
def test_subgraph_bit_for_bit(milk, tmp_path, case, first, last, inputs, n_ops):
    full = full_run(milk, case, tmp_path)
    pkg, npz = extract(milk, case, tmp_path, "--from", first, "--to", last)
    r = milk_cmd(milk, "extract", FIXTURES / case / "model_fp32.mlpackage", "--from", first,
                 "--to", last, "-o", tmp_path / "again.mlpackage")
    assert f": {n_ops} op" in r.stdout
    assert [n for _, n in signature(milk, pkg)] == inputs
    with np.load(npz) as z:
        captured = {k: z[k] for k in z.files}
    got = run_with(milk, pkg, {k: captured[k] for k in inputs}, tmp_path)
    # every value the subgraph computes equals the full program's
    shared = [k for k in got if k not in inputs and k in full]
    assert len(shared) >= n_ops
    for k in shared:
        assert np.array_equal(got[k], full[k]), k


def test_weights_are_copied(milk, tmp_path):
    """The package stands alone: it runs after the source is gone."""
    src = tmp_path / "src.mlpackage"
    shutil.copytree(FIXTURES / "resblock" / "model_fp32.mlpackage", src)
    pkg = tmp_path / "sub.mlpackage"
    r = milk_cmd(milk, "extract", src, "--op", "input_11", "-o", pkg)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "sub.npz").exists()  # nothing captured without --inputs-from
    shutil.rmtree(src)
    full = full_run(milk, "resblock", tmp_path)
    got = run_with(milk, pkg, {"input_7": full["input_7"]}, tmp_path)
    assert np.array_equal(got["input_11"], full["input_11"])


@pytest.mark.parametrize("case,op,inp", [
    ("upsampler_small", "input_9_has_output_shape", "input_7"),  # conv_transpose, stride 8
    ("upsampler_small", "input_21_has_output_shape", "input_19"),
    ("convt1d_small", "var_18", "x"),                            # the defect's shape
    ("upsampler_small", "input_7", "input_5"),                   # a 1-D conv
])
def test_lift_1d_matches(milk, tmp_path, case, op, inp):
    full = full_run(milk, case, tmp_path)
    pkg, _ = extract(milk, case, tmp_path, "--op", op, "--variant", "lift-1d", capture=False)
    text = milk_cmd(milk, "dump", pkg).stdout
    assert "expand_dims" in text and "squeeze" in text
    assert re.search(r"strides = tensor<int32, \[2\]>\(\[\d+, 1\]\)", text)
    out = op  # each of these ops has a var of its own name
    got = run_with(milk, pkg, {inp: full[inp]}, tmp_path)
    want = full[out]
    assert got[out].shape == want.shape
    assert np.abs(got[out] - want).max() <= 1e-5 * np.abs(want).max()


def test_zero_bias_gives_output_minus_bias(milk, tmp_path):
    op = "input_9_has_output_shape"
    full = full_run(milk, "upsampler_small", tmp_path)
    pkg, npz = extract(milk, "upsampler_small", tmp_path, "--op", op, "--variant", "zero-bias")
    with np.load(npz) as z:
        got = run_with(milk, pkg, {"input_7": z["input_7"]}, tmp_path)
    bias = bias_of("upsampler_small", op)
    want = full[op] - bias[None, :, None]
    np.testing.assert_allclose(got[op], want, rtol=0, atol=1e-6)
    assert not np.allclose(got[op], full[op], atol=1e-3)


def test_errors_exit_2(milk, tmp_path):
    pkg = FIXTURES / "resblock" / "model_fp32.mlpackage"
    out = tmp_path / "o.mlpackage"
    np.savez(tmp_path / "nox.npz", y=np.zeros(3, np.float32))
    cases = [
        (["--op", "nope", "-o", out], "no op or var called 'nope'"),
        (["--op", "const_0", "-o", out], "is a const"),
        (["--op", "x", "--from", "input_3", "-o", out], "give --op, or both"),
        (["--from", "input_3", "-o", out], "give --op, or both"),
        (["--op", "input_11"], "needs a package and -o"),
        (["--from", "op_69", "--to", "input_11", "-o", out], "comes after"),
        (["--op", "input_5", "--variant", "zero-bias", "-o", out], "no extracted op has a bias"),
        (["--op", "input_11", "--variant", "lift-1d", "-o", out], "rank-3"),
        (["--op", "input_11", "--variant", "sideways", "-o", out], "--variant"),
        (["--op", "input_11", "-o", out, "--inputs-from", tmp_path / "none.npz"], "none.npz"),
        (["--op", "input_11", "-o", out, "--inputs-from", tmp_path / "nox.npz"],
         "model input 'x' is neither in"),
        (["--op", "input_11", "-o", out, "--input", "x=a.npy"], "--inputs-from"),
    ]
    for args, msg in cases:
        r = milk_cmd(milk, "extract", pkg, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert msg in r.stderr, (msg, r.stderr)
        assert not out.exists() and not (tmp_path / "o.npz").exists(), args
    att = FIXTURES / "attention" / "model_fp32.mlpackage"
    r = milk_cmd(milk, "extract", att, "--from", "op_45", "--to", "op_52", "-o", out)
    assert r.returncode == 2 and "does not depend on op 'op_45'" in r.stderr


def test_no_leaks_under_asan(milk_asan, tmp_path):
    r = milk_cmd(milk_asan, "extract", FIXTURES / "upsampler_small" / "model_fp32.mlpackage",
                 "--from", "input_7", "--to", "input_15_has_output_shape", "--variant", "lift-1d",
                 "-o", tmp_path / "s.mlpackage", "--inputs-from", x_ref("upsampler_small", tmp_path))
    assert r.returncode == 0, r.stderr
    r = milk_cmd(milk_asan, "verify", tmp_path / "s.mlpackage", "--reference", tmp_path / "s.npz")
    assert r.returncode == 0, r.stdout + r.stderr
    r = milk_cmd(milk_asan, "extract", FIXTURES / "resblock" / "model_fp32.mlpackage",
                 "--op", "input_11", "--variant", "zero-bias", "-o", tmp_path / "z.mlpackage")
    assert r.returncode == 0, r.stderr
