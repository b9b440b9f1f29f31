"""Helpers shared by the kernel tests (test_kernels_*.py): comparing
milk's output with an expected array computed outside milk, and making
reproducible inputs."""
import zlib

import numpy as np
import torch

from milkop import Value, run_op, run_ops

TOL = 1e-5    # fp32: max |err| / max |expected|
TOL16 = 1e-2  # fp16 vars in as-declared mode


def assert_close(got, want, tol=TOL, elementwise=False):
    """Same shape; NaN and +-inf at the same places; exact for integer and
    bool results; otherwise max |err| / max |want| <= tol, or, with
    elementwise, |err| <= tol * |want| at every element (for arrays mixing
    magnitudes, where one large value would hide the others)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if want.dtype == bool or np.issubdtype(want.dtype, np.integer):
        assert np.array_equal(got, want), f"\ngot  {got}\nwant {want}"
        return
    got, want = got.astype(np.float64), want.astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"NaN: got {got} want {want}"
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]), f"inf: got {got} want {want}"
    fin = np.isfinite(want)
    assert np.all(np.isfinite(got[fin])), f"got {got} want {want}"
    err = np.abs(got[fin] - want[fin])
    if elementwise:
        bad = err > tol * np.abs(want[fin]) + 1e-37
        assert not bad.any(), f"got {got[fin][bad]} want {want[fin][bad]}"
    elif err.size:
        scale = np.max(np.abs(want[fin]))
        rel = np.max(err) / scale if scale > 0 else np.max(err)
        assert rel <= tol, f"relative error {rel:.3g} > {tol}"


def check(op, inputs, want, tol=TOL, dtype=None, elementwise=False, **kw):
    """Run op through milk (tests/milkop.py) and compare its only (or
    first) output with want: declared dtype, shape, values."""
    outs, types = run_op(op, inputs, **kw)
    if dtype is not None:
        assert types[0]["dtype"] == dtype
    assert list(types[0]["shape"]) == list(np.shape(want))
    assert_close(outs[0], want, tol, elementwise)


def t(x):
    """A torch tensor holding a copy of x (0-d arrays stay 0-d)."""
    return torch.from_numpy(np.array(x))


def f32(v):
    """A float constant that stays fp32 even when it is a whole number."""
    return Value(v, dtype="fp32")


def seed_of(*args):
    """A seed that is the same in every run (hash() of str is not)."""
    return zlib.crc32(repr(args).encode())


def rng(seed):
    return np.random.default_rng(seed)


def normal(seed, shape, scale=3.0):
    return np.asarray(rng(seed).standard_normal(shape) * scale, dtype=np.float32)


def check_batch(cases, asan=False, tol=TOL):
    """check() for many cases in one helper process (opcheck --batch):
    cases are (op, inputs, want) or (op, inputs, want, options), options
    being run_op's target, precision, reference."""
    results = run_ops([(c[0], c[1]) + tuple(c[3:]) for c in cases], asan=asan)
    for case, res in zip(cases, results):
        if isinstance(res, Exception):
            raise res
        outs, types = res
        assert list(types[0]["shape"]) == list(np.shape(case[2])), case[0]
        assert_close(outs[0], case[2], tol)
