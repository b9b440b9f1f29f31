"""`milk run` on programs with flexible shapes: inputs with unknown dims
(checked against the model description's shape ranges or enumerated
shapes) run at several sizes and compared with PyTorch; sizes computed at
run time (shape -> gather -> concat -> reshape, a slice whose begin is
computed, run-time pads, reps, fill shapes and range bounds) compared with
NumPy; and the errors, under ASan. The programs are built through milk's C
API by tests/tools/mkprog.c."""
import json
import subprocess

import numpy as np
import pytest
import torch

from conftest import BUILD

U = -1  # an unknown dim


def make(tmp_path, name, inputs, ops, outputs, target="ios17"):
    """Build a package with mkprog; returns its path."""
    pkg = tmp_path / f"{name}.mlpackage"
    spec = {"target": target, "output": str(pkg), "inputs": inputs,
            "ops": ops, "outputs": outputs}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    r = subprocess.run([str(BUILD / "tools" / "mkprog"), str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return pkg


def const(tmp_path, name, array):
    path = tmp_path / f"{name}.npy"
    np.save(path, np.ascontiguousarray(array, dtype=np.float32))
    return {"npy": str(path)}


def run(milk, pkg, tmp_path, inputs, *extra):
    """milk run with the given arrays; returns (process, outputs or None)."""
    args = [milk, "run", str(pkg), "--output", str(tmp_path / "out.npz")]
    for name, array in inputs.items():
        path = tmp_path / f"in_{name}.npy"
        np.save(path, array)
        args += ["--input", f"{name}={path}"]
    (tmp_path / "out.npz").unlink(missing_ok=True)
    r = subprocess.run(args + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        return r, None
    with np.load(tmp_path / "out.npz") as z:
        return r, {k: z[k] for k in z.files}


def close(got, want, tol=1e-5):
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(np.max(np.abs(want)), 1e-6)
    assert np.max(np.abs(got.astype(np.float64) - want)) / scale < tol


# ---- flexible inputs, compared with PyTorch ---------------------------------

def conv_pool_model(tmp_path):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    ops = [
        {"op": "conv", "name": "c", "inputs": {
            "x": "x", "weight": const(tmp_path, "w", conv.weight.detach()),
            "bias": const(tmp_path, "b", conv.bias.detach()),
            "pad_type": {"value": "same"}}},
        {"op": "relu", "name": "r", "inputs": {"x": "c"}},
        {"op": "reduce_mean", "name": "y", "inputs": {
            "x": "r", "axes": {"value": [2, 3]}, "keep_dims": {"value": False}}},
    ]
    x = {"name": "x", "dtype": "fp32", "shape": [1, 3, U, U],
         "ranges": [[1, 1], [3, 3], [8, 32], [8, 32]]}
    pkg = make(tmp_path, "convpool", [x], ops, ["y"])
    return pkg, lambda t: torch.relu(conv(t)).mean(dim=(2, 3))


def test_conv_relu_pool_on_any_height_and_width(milk, tmp_path):
    pkg, torch_model = conv_pool_model(tmp_path)
    rng = np.random.default_rng(0)
    for h, w in [(8, 8), (13, 21), (32, 17)]:
        x = rng.standard_normal((1, 3, h, w)).astype(np.float32)
        r, out = run(milk, pkg, tmp_path, {"x": x})
        assert r.returncode == 0, r.stderr
        assert "y: [1, 8] fp32" in r.stdout
        with torch.no_grad():
            want = torch_model(torch.from_numpy(x)).numpy()
        close(out["y"], want)
    # --keep-all writes each intermediate with the run's shape
    r, out = run(milk, pkg, tmp_path, {"x": x}, "--keep-all")
    assert r.returncode == 0, r.stderr
    assert out["c"].shape == (1, 8, 32, 17) and out["x"].shape == (1, 3, 32, 17)


def test_conv1d_stack_on_enumerated_lengths(milk, tmp_path):
    torch.manual_seed(1)
    c1 = torch.nn.Conv1d(4, 6, 3, padding=1)
    c2 = torch.nn.Conv1d(6, 5, 5, stride=2)
    ops = [
        {"op": "conv", "name": "a", "inputs": {
            "x": "x", "weight": const(tmp_path, "w1", c1.weight.detach()),
            "bias": const(tmp_path, "b1", c1.bias.detach()),
            "pad_type": {"value": "custom"}, "pad": {"value": [1, 1]}}},
        {"op": "relu", "name": "ar", "inputs": {"x": "a"}},
        {"op": "conv", "name": "b", "inputs": {
            "x": "ar", "weight": const(tmp_path, "w2", c2.weight.detach()),
            "bias": const(tmp_path, "b2", c2.bias.detach()),
            "strides": {"value": [2]}, "pad_type": {"value": "valid"}}},
        {"op": "relu", "name": "y", "inputs": {"x": "b"}},
    ]
    x = {"name": "x", "dtype": "fp32", "shape": [1, 4, U],
         "enumerated": [[1, 4, 16], [1, 4, 51], [1, 4, 100]]}
    pkg = make(tmp_path, "conv1d", [x], ops, ["y"])
    rng = np.random.default_rng(1)
    for n in [16, 51, 100]:
        x = rng.standard_normal((1, 4, n)).astype(np.float32)
        r, out = run(milk, pkg, tmp_path, {"x": x})
        assert r.returncode == 0, r.stderr
        with torch.no_grad():
            want = torch.relu(c2(torch.relu(c1(torch.from_numpy(x))))).numpy()
        close(out["y"], want)


def test_linear_on_any_batch_with_the_derived_description(milk, tmp_path):
    """No recorded description: the writer derives one (unknown dims from 1,
    unbounded), which admits any batch."""
    torch.manual_seed(2)
    lin = torch.nn.Linear(16, 8)
    ops = [{"op": "linear", "name": "y", "inputs": {
        "x": "x", "weight": const(tmp_path, "w", lin.weight.detach()),
        "bias": const(tmp_path, "b", lin.bias.detach())}}]
    pkg = make(tmp_path, "linear", [{"name": "x", "dtype": "fp32", "shape": [U, 16]}],
               ops, ["y"])
    rng = np.random.default_rng(2)
    for batch in [1, 7, 33]:
        x = rng.standard_normal((batch, 16)).astype(np.float32)
        for extra in [(), ("--reference",)]:
            r, out = run(milk, pkg, tmp_path, {"x": x}, *extra)
            assert r.returncode == 0, r.stderr
            with torch.no_grad():
                close(out["y"], lin(torch.from_numpy(x)).numpy())


# ---- sizes from run-time values, compared with NumPy ------------------------

def test_shape_gather_concat_reshape(milk, tmp_path):
    ops = [
        {"op": "shape", "name": "s", "inputs": {"x": "x"}},
        {"op": "gather", "name": "n", "inputs": {"x": "s", "indices": {"value": [0]}}},
        {"op": "concat", "name": "t", "inputs": {
            "values": ["n", {"value": [3, 4]}], "axis": {"value": 0}}},
        {"op": "reshape", "name": "y", "inputs": {"x": "x", "shape": "t"}},
        {"op": "transpose", "name": "z", "inputs": {"x": "y", "perm": {"value": [0, 2, 1]}}},
    ]
    pkg = make(tmp_path, "reshape", [{"name": "x", "dtype": "fp32", "shape": [U, 12]}],
               ops, ["z"])
    rng = np.random.default_rng(3)
    for n in [1, 5]:
        x = rng.standard_normal((n, 12)).astype(np.float32)
        r, out = run(milk, pkg, tmp_path, {"x": x})
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(out["z"], x.reshape(n, 3, 4).transpose(0, 2, 1))


def test_slice_with_a_begin_computed_at_run_time(milk, tmp_path):
    """y = x[n-2:n, 1:5] with n = x.shape[0], begin and end computed."""
    ops = [
        {"op": "shape", "name": "s", "inputs": {"x": "x"}},
        {"op": "gather", "name": "n", "inputs": {"x": "s", "indices": {"value": [0]}}},
        {"op": "sub", "name": "n2", "inputs": {"x": "n", "y": {"value": [2]}}},
        {"op": "concat", "name": "b", "inputs": {
            "values": ["n2", {"value": [1]}], "axis": {"value": 0}}},
        {"op": "concat", "name": "e", "inputs": {
            "values": ["n", {"value": [5]}], "axis": {"value": 0}}},
        {"op": "slice_by_index", "name": "y", "inputs": {"x": "x", "begin": "b", "end": "e"}},
    ]
    pkg = make(tmp_path, "slice", [{"name": "x", "dtype": "fp32", "shape": [U, 6]}],
               ops, ["y"])
    rng = np.random.default_rng(4)
    for n in [2, 3, 9]:
        x = rng.standard_normal((n, 6)).astype(np.float32)
        r, out = run(milk, pkg, tmp_path, {"x": x})
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(out["y"], x[n - 2:n, 1:5])


def test_run_time_pads_reps_fill_shape_and_range_bound(milk, tmp_path):
    """x: [H, W]. p = pad(x, [0, 1, W-2, 1]); t = tile(x, [1, H]);
    f = fill(shape(x), 2.5); a = range_1d(0, W, 1)."""
    ops = [
        {"op": "shape", "name": "s", "inputs": {"x": "x"}},
        {"op": "gather", "name": "w", "inputs": {"x": "s", "indices": {"value": [1]}}},
        {"op": "gather", "name": "h", "inputs": {"x": "s", "indices": {"value": [0]}}},
        {"op": "sub", "name": "w2", "inputs": {"x": "w", "y": {"value": [2]}}},
        {"op": "concat", "name": "pads", "inputs": {
            "values": [{"value": [0, 1]}, "w2", {"value": [1]}], "axis": {"value": 0}}},
        {"op": "pad", "name": "p", "inputs": {"x": "x", "pad": "pads"}},
        {"op": "concat", "name": "reps", "inputs": {
            "values": [{"value": [1]}, "h"], "axis": {"value": 0}}},
        {"op": "tile", "name": "t", "inputs": {"x": "x", "reps": "reps"}},
        {"op": "fill", "name": "f", "inputs": {"shape": "s", "value": {"value": 2.5}}},
        {"op": "gather", "name": "ws", "inputs": {"x": "s", "indices": {"value": 1}}},
        {"op": "range_1d", "name": "a", "inputs": {
            "end": "ws", "start": {"value": 0}, "step": {"value": 1}}},
    ]
    pkg = make(tmp_path, "values", [{"name": "x", "dtype": "fp32", "shape": [U, U]}],
               ops, ["p", "t", "f", "a"])
    rng = np.random.default_rng(5)
    for h, w in [(2, 3), (4, 7)]:
        x = rng.standard_normal((h, w)).astype(np.float32)
        r, out = run(milk, pkg, tmp_path, {"x": x})
        assert r.returncode == 0, r.stderr
        np.testing.assert_array_equal(out["p"], np.pad(x, ((0, 1), (w - 2, 1))))
        np.testing.assert_array_equal(out["t"], np.tile(x, (1, h)))
        np.testing.assert_array_equal(out["f"], np.full((h, w), 2.5, np.float32))
        np.testing.assert_array_equal(out["a"], np.arange(w, dtype=np.int32))


# ---- errors ------------------------------------------------------------------

def test_errors_name_the_input_op_and_allowed_shapes(milk_asan, tmp_path):
    pkg, _ = conv_pool_model(tmp_path)
    neg = make(tmp_path, "neg", [{"name": "x", "dtype": "fp32", "shape": [U]}], [
        {"op": "shape", "name": "s", "inputs": {"x": "x"}},
        {"op": "sub", "name": "n", "inputs": {"x": "s", "y": {"value": [5]}}},
        {"op": "fill", "name": "f", "inputs": {"shape": "n"}},
    ], ["f"])
    enum = make(tmp_path, "enum", [{"name": "x", "dtype": "fp32", "shape": [U, 2],
                                    "enumerated": [[1, 2], [4, 2]]}],
                [{"op": "relu", "name": "y", "inputs": {"x": "x"}}], ["y"])
    z = np.zeros
    cases = [
        (pkg, z((1, 3, 40, 8), np.float32),
         "input 'x' is tensor<fp32, [1, 3, 40, 8]>, outside the model "
         "description's shape range [1, 3, 8..32, 8..32]"),
        (pkg, z((3, 8, 8), np.float32),
         "input 'x' is tensor<fp32, [3, 8, 8]>, expected tensor<fp32, [1, 3, ?, ?]> "
         "(? is any size >= 1)"),
        (enum, z((3, 2), np.float32),
         "not one of the model description's enumerated shapes [1, 2], [4, 2]"),
        (neg, z((3,), np.float32),
         "op 'f' (fill): input 'shape': entry 0 is -2: sizes are >= 1 "
         "(in this run: shape is tensor<int32, [1]> = [-2])"),
    ]
    for p, x, msg in cases:
        r, out = run(milk_asan, p, tmp_path, {"x": x})
        assert r.returncode == 2, (msg, r.stderr)
        assert msg in r.stderr, (msg, r.stderr)
        assert "Sanitizer" not in r.stderr and out is None
    # the same packages run where the shapes fit
    for p, x in [(enum, z((4, 2), np.float32)), (neg, z((7,), np.float32))]:
        r, out = run(milk_asan, p, tmp_path, {"x": x})
        assert r.returncode == 0, r.stderr
