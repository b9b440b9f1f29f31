"""milk's data-movement kernels against NumPy and PyTorch.

reshape, transpose, expand_dims, squeeze, flatten2d, shape, concat,
split, stack, slice_by_index, slice_by_size, pad, gather,
gather_along_axis, tile, depth_to_space, space_to_depth, pixel_shuffle,
fill, range_1d, reverse, cumsum and topk, each run through milk's
interpreter (the ASan build of the opcheck helper, many cases per process)
and compared with NumPy or PyTorch computed at test time. Pure data
movement must match exactly, dtypes included (fp32, int32 and bool for the
layout ops); cumsum of floats within 1e-6 relative (milk sums in double).
Where MIL has a rule of its own (slice_by_index's clamping of negative
ends, depth_to_space's channel order) the comment at the case says where
the expected value comes from.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from milkop import Const, In, Value, rel_err, run_ops

RNG = np.random.RandomState(4321)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def randi(*shape):
    return RNG.randint(-100, 100, size=shape).astype(np.int32)


def randb(*shape):
    return RNG.rand(*shape) < 0.5


# Layout ops run on each storage type the interpreter has.
SAMPLES = {"fp32": randn, "int32": randi, "bool": randb}


class Case:
    """One op run: `want` lists the expected outputs (NumPy arrays; their
    dtype says what milk must produce: float32, int32 or bool). tol None
    means exact equality."""

    def __init__(self, name, op, inputs, want, target="ios18", tol=None):
        self.name, self.op, self.inputs = name, op, inputs
        self.want = want if isinstance(want, list) else [want]
        self.target, self.tol = target, tol


def mismatch(case, outs):
    if len(outs) != len(case.want):
        return f"{len(outs)} outputs, expected {len(case.want)}"
    for k, (got, want) in enumerate(zip(outs, case.want)):
        want = np.asarray(want)
        kind = {"f": np.float32, "i": np.int32, "u": np.int32, "b": np.bool_}
        want = want.astype(kind[want.dtype.kind])
        if got.shape != want.shape:
            return f"output {k}: shape {got.shape}, expected {want.shape}"
        if got.dtype != want.dtype:
            return f"output {k}: dtype {got.dtype}, expected {want.dtype}"
        if case.tol is None and not np.array_equal(got, want):
            return f"output {k}: values differ\n got {got}\n want {want}"
        if case.tol is not None and rel_err(got, want) > case.tol:
            return f"output {k}: relative error {rel_err(got, want):.3g}"
    return None


def check(cases):
    """Run every case in one ASan helper process; report all mismatches."""
    results = run_ops([(c.op, c.inputs, {"target": c.target}) for c in cases],
                      asan=True)
    bad = []
    for case, res in zip(cases, results):
        why = str(res) if isinstance(res, Exception) else mismatch(case, res[0])
        if why:
            bad.append(f"{case.name}: {why}")
    assert not bad, f"{len(bad)} of {len(cases)} cases fail:\n" + "\n".join(bad)


def expect_error(cases):
    """cases: (name, op, inputs, target, words the message must hold)."""
    results = run_ops([(op, inputs, {"target": tgt})
                       for _, op, inputs, tgt, _ in cases], asan=True)
    for (name, op, _, _, words), res in zip(cases, results):
        assert isinstance(res, Exception), f"{name}: no error"
        for w in words:
            assert w in str(res), f"{name}: '{w}' not in: {res}"


# ---- reshape, transpose, expand_dims, squeeze, flatten2d, shape ----------

def test_reshape_family():
    cases = []
    for dt, gen in SAMPLES.items():
        x = gen(2, 3, 4)
        cases += [
            Case(f"reshape {dt}", "reshape", [("x", x), ("shape", [4, -1])],
                 x.reshape(4, -1)),
            # iOS17: a 0 copies x's dim, shapes aligned at the end
            # (coremltools' example: [2, 50] by [1, 0, -1, 0] is [1, 1, 2,
            # 50]); here the 0s take x's 2 and 4
            Case(f"reshape 0 {dt}", "reshape",
                 [("x", x), ("shape", [1, 0, -1, 0])], x.reshape(1, 2, 3, 4)),
            Case(f"reshape ios15 0 {dt}", "reshape",
                 [("x", x), ("shape", [0, -1, 1])], x.reshape(2, 12, 1),
                 target="ios15"),
            Case(f"transpose {dt}", "transpose",
                 [("x", x), ("perm", [2, 0, 1])], x.transpose(2, 0, 1)),
            Case(f"transpose negative perm {dt}", "transpose",
                 [("x", x), ("perm", [0, -1, -2])], x.transpose(0, 2, 1)),
            Case(f"expand_dims {dt}", "expand_dims",
                 [("x", x), ("axes", [0, -1])], x[None, ..., None]),
            Case(f"squeeze {dt}", "squeeze",
                 [("x", x.reshape(2, 1, 3, 1, 4)), ("axes", [1])],
                 x.reshape(2, 3, 1, 4)),
            Case(f"squeeze all {dt}", "squeeze",
                 [("x", x.reshape(1, 2, 1, 12, 1))], x.reshape(2, 12)),
            Case(f"flatten2d {dt}", "flatten2d", [("x", x)], x.reshape(2, 12)),
            Case(f"flatten2d -1 {dt}", "flatten2d", [("x", x), ("axis", -1)],
                 x.reshape(6, 4)),
            Case(f"flatten2d 0 {dt}", "flatten2d", [("x", x), ("axis", 0)],
                 x.reshape(1, 24)),
            Case(f"flatten2d rank {dt}", "flatten2d", [("x", x), ("axis", 3)],
                 x.reshape(24, 1)),
        ]
    x8 = RNG.randint(-100, 100, size=(3, 4)).astype(np.int8)
    x5 = randn(2, 1, 3, 2, 4)
    cases += [
        Case("reshape int8", "reshape", [("x", x8), ("shape", [2, 6])],
             x8.reshape(2, 6).astype(np.int32)),
        Case("transpose 5-D", "transpose",
             [("x", x5), ("perm", [4, 2, 0, 3, 1])], x5.transpose(4, 2, 0, 3, 1)),
        Case("shape", "shape", [("x", randn(2, 3, 4))],
             np.array([2, 3, 4], np.int32)),
        Case("shape bool", "shape", [("x", randb(5))], np.array([5], np.int32)),
    ]
    check(cases)


# ---- concat, split, stack -------------------------------------------------

def test_concat_split_stack():
    cases = []
    for dt, gen in SAMPLES.items():
        a, b, c = gen(2, 3, 4), gen(2, 1, 4), gen(2, 2, 4)
        d, e = gen(3, 2), gen(3, 2)
        x = gen(2, 6, 5)
        cases += [
            Case(f"concat {dt}", "concat",
                 [("values", a), ("values", b), ("values", Const(c)),
                  ("axis", 1)], np.concatenate([a, b, c], axis=1)),
            Case(f"concat -1 {dt}", "concat",
                 [("values", a), ("values", a), ("axis", -1)],
                 np.concatenate([a, a], axis=-1)),
            # interleave: out[0::2] = d, out[1::2] = e (coremltools' example)
            Case(f"concat interleave 0 {dt}", "concat",
                 [("values", d), ("values", e), ("axis", 0),
                  ("interleave", True)],
                 np.stack([d, e], axis=1).reshape(6, 2)),
            Case(f"concat interleave 1 {dt}", "concat",
                 [("values", d), ("values", e), ("values", d), ("axis", 1),
                  ("interleave", True)],
                 np.stack([d, e, d], axis=2).reshape(3, 6)),
            Case(f"split num {dt}", "split",
                 [("x", x), ("num_splits", 3), ("axis", 1)],
                 np.split(x, 3, axis=1)),
            Case(f"split sizes {dt}", "split",
                 [("x", x), ("split_sizes", [1, 4, 0, 1]), ("axis", 1)],
                 np.split(x, [1, 5, 5], axis=1)),
            Case(f"split -1 {dt}", "split",
                 [("x", x), ("split_sizes", [2, 3]), ("axis", -1)],
                 np.split(x, [2], axis=-1)),
            Case(f"stack 0 {dt}", "stack",
                 [("values", d), ("values", e), ("axis", 0)],
                 np.stack([d, e], axis=0)),
            Case(f"stack 1 {dt}", "stack",
                 [("values", d), ("values", e), ("values", d), ("axis", 1)],
                 np.stack([d, e, d], axis=1)),
            Case(f"stack -1 {dt}", "stack",
                 [("values", d), ("values", e), ("axis", -1)],
                 np.stack([d, e], axis=-1)),
        ]
    s = [np.array(v, np.float32) for v in (1.5, -2.0, 3.25)]
    cases += [
        Case("concat scalars", "concat",
             [("values", s[0]), ("values", s[1]), ("values", s[2]),
              ("axis", 0)], np.array([1.5, -2.0, 3.25], np.float32)),
        Case("stack scalars", "stack",
             [("values", s[0]), ("values", s[1]), ("axis", 0)],
             np.array([1.5, -2.0], np.float32)),
    ]
    check(cases)


# ---- slice_by_index, slice_by_size ------------------------------------------

def slice_case(name, x, begin, end, stride=None, bm=None, em=None, sq=None,
               want=None, target="ios18", runtime_begin=False):
    """want defaults to NumPy's x[b:e:s, ...] with the masks applied."""
    rank = x.ndim
    if want is None:
        idx = []
        for i in range(rank):
            b = None if bm and bm[i] else begin[i]
            e = None if em and em[i] else end[i]
            s = stride[i] if stride else 1
            if sq and sq[i]:
                idx.append(b if b is not None else 0)
            else:
                idx.append(slice(b, e, s))
        want = x[tuple(idx)]
    inputs = [("x", x),
              ("begin", np.array(begin, np.int32) if runtime_begin
               else Value(begin, dtype="int32")),
              ("end", Value(end, dtype="int32"))]
    for p, v in (("stride", stride), ("begin_mask", bm), ("end_mask", em),
                 ("squeeze_mask", sq)):
        if v is not None:
            inputs.append((p, v))
    return Case(name, "slice_by_index", inputs, np.asarray(want), target)


def test_slice_by_index():
    x = randn(4, 5, 6)
    cases = [
        slice_case("plain", x, [1, 0, 2], [3, 5, 6]),
        slice_case("strides", x, [0, 1, 5], [4, 5, 0], stride=[2, 3, -2]),
        slice_case("negative indices", x, [-3, -4, -1], [-1, 5, -6],
                   stride=[1, 1, -1]),
        slice_case("begin mask", x, [3, 3, 3], [4, 5, 6],
                   bm=[True, False, True]),
        slice_case("end mask", x, [1, 2, 3], [0, 0, 0],
                   em=[True, True, True]),
        slice_case("both masks reversed", x, [0, 0, 0], [0, 0, 0],
                   stride=[-1, 2, -3], bm=[True] * 3, em=[True] * 3),
        slice_case("squeeze", x, [2, 0, -1], [3, 5, 0], sq=[True, False, True]),
        slice_case("squeeze all", x, [-1, 4, 0], [0, 0, 0],
                   sq=[True, True, True]),
        slice_case("squeeze with begin mask", x, [3, 1, 0], [0, 4, 0],
                   bm=[True, False, False], sq=[True, False, True]),
        # begin -1 with end_mask: one element whatever the dim
        slice_case("last element", x, [0, -1, 0], [4, 0, 6],
                   em=[False, True, False]),
        # the coremltools rule: a negative end beyond the start clamps at
        # index 0 (exclusive), so the backward slice stops before x[0]:
        # NumPy's x[3:0:-1], not x[3:-10:-1]
        slice_case("clamped backward end", x, [3, 0, 0], [-10, 5, 6],
                   stride=[-1, 1, 1], want=x[3:0:-1]),
        slice_case("ios15", x, [1, 0, 2], [3, 5, 6], target="ios15"),
        # a run-time begin: x[i] picks a row at run time (the masks fix the
        # other sizes, which the interpreter needs)
        slice_case("runtime begin masks", x, [1, 0, 0], [0, 5, 6],
                   bm=[False, True, True], em=[False, True, True],
                   sq=[True, False, False], runtime_begin=True),
    ]
    for dt in ("int32", "bool"):
        xi = SAMPLES[dt](4, 5)
        cases.append(slice_case(f"{dt}", xi, [1, -1], [4, 0],
                                stride=[2, -2]))
    check(cases)


def test_slice_by_size():
    x = randn(4, 5, 6)
    xi = randi(3, 4)
    cases = [
        Case("size", "slice_by_size",
             [("x", x), ("begin", [1, 0, 2]), ("size", [2, 5, 3])],
             x[1:3, 0:5, 2:5]),
        Case("size -1", "slice_by_size",
             [("x", x), ("begin", [1, 2, 3]), ("size", [-1, 2, -1])],
             x[1:, 2:4, 3:]),
        Case("negative begin", "slice_by_size",
             [("x", x), ("begin", [-2, -5, -1]), ("size", [2, -1, 1])],
             x[2:4, 0:, 5:6]),
        Case("runtime begin", "slice_by_size",
             [("x", x), ("begin", np.array([2, 1, 0], np.int32)),
              ("size", [1, 3, 6])], x[2:3, 1:4, 0:6]),
        Case("int32", "slice_by_size",
             [("x", xi), ("begin", [1, 1]), ("size", [2, 2])], xi[1:3, 1:3]),
    ]
    check(cases)
    # a run-time begin that leaves x fails, naming the op
    expect_error([
        ("runtime begin outside", "slice_by_size",
         [("x", x), ("begin", np.array([3, 0, 0], np.int32)),
          ("size", [2, 5, 6])], "ios18", ["(slice_by_size)", "begin"]),
        ("squeeze index outside", "slice_by_index",
         [("x", x), ("begin", np.array([4, 0, 0], np.int32)),
          ("end", [0, 5, 6]), ("begin_mask", [False, True, True]),
          ("end_mask", [False, True, True]),
          ("squeeze_mask", [True, False, False])],
         "ios18", ["(slice_by_index)", "outside"]),
    ])


# ---- pad --------------------------------------------------------------------

NUMPY_PAD_MODE = {"constant": "constant", "reflect": "reflect",
                  "replicate": "edge"}


def test_pad():
    cases = []
    x = randn(2, 3, 5, 6)
    xt = torch.from_numpy(x)
    for mode in ("constant", "reflect", "replicate"):
        for pad in ([1, 2], [2, 0, 1, 3], [0, 1, 1, 0, 4, 4]):
            # MIL lists (before, after) from the first padded dim on
            pairs = [tuple(pad[i:i + 2]) for i in range(0, len(pad), 2)]
            np_pad = [(0, 0)] * (4 - len(pairs)) + pairs
            want = np.pad(x, np_pad, mode=NUMPY_PAD_MODE[mode])
            inputs = [("x", x), ("pad", pad), ("mode", mode)]
            cases.append(Case(f"{mode} {pad}", "pad", inputs, want))
        # and PyTorch's 2-D padding of a 4-D tensor (F.pad lists the pairs
        # from the last dim back)
        cases.append(Case(f"{mode} torch", "pad",
                          [("x", x), ("pad", [2, 1, 0, 3]), ("mode", mode)],
                          F.pad(xt, [0, 3, 2, 1], mode=mode).numpy()))
    cases += [
        Case("constant_val", "pad",
             [("x", x), ("pad", [1, 1, 2, 0]),
              ("constant_val", Value(-2.5, dtype="fp32"))],
             F.pad(torch.from_numpy(x), [2, 0, 1, 1], value=-2.5).numpy()),
        # reflect at the widest (D - 1) and replicate beyond the dim
        Case("reflect widest", "pad",
             [("x", x), ("pad", [4, 4, 5, 5]), ("mode", "reflect")],
             np.pad(x, [(0, 0), (0, 0), (4, 4), (5, 5)], mode="reflect")),
        Case("replicate wide", "pad",
             [("x", x), ("pad", [5, 5]), ("mode", "replicate")],
             np.pad(x, [(0, 0), (0, 0), (0, 0), (5, 5)], mode="edge")),
        # an fp16 input (rounded when declared fp16): the same movement
        Case("fp16", "pad",
             [("x", In(x, dtype="fp16")), ("pad", [1, 1]), ("mode", "reflect")],
             np.pad(x.astype(np.float16).astype(np.float32),
                    [(0, 0), (0, 0), (0, 0), (1, 1)], mode="reflect")),
    ]
    check(cases)


# ---- gather, gather_along_axis ----------------------------------------------

def batched_take(x, ind, axis, batch_dims):
    """tf.gather with batch_dims, written with np.take per batch element."""
    if batch_dims == 0:
        return np.take(x, ind, axis=axis)
    return np.stack([batched_take(x[b], ind[b], axis - 1, batch_dims - 1)
                     for b in range(x.shape[0])])


def test_gather():
    x = randn(4, 5, 6)
    xi = randi(4, 5)
    ind = RNG.randint(0, 5, size=(2, 3)).astype(np.int32)
    neg = np.array([[-1, 0], [-5, 4]], np.int32)
    bind = RNG.randint(0, 5, size=(4, 3)).astype(np.int32)
    bind2 = RNG.randint(0, 6, size=(4, 5, 2)).astype(np.int32)
    cases = [
        Case("axis 0", "gather", [("x", x), ("indices", ind[:, :2] % 4)],
             np.take(x, ind[:, :2] % 4, axis=0)),
        Case("axis 1", "gather",
             [("x", x), ("indices", ind), ("axis", 1)], np.take(x, ind, axis=1)),
        Case("axis -1 const", "gather",
             [("x", x), ("indices", Const(ind)), ("axis", -1)],
             np.take(x, ind, axis=-1)),
        Case("scalar index", "gather",
             [("x", x), ("indices", np.array(3, np.int32)), ("axis", 1)],
             x[:, 3, :]),
        Case("int32", "gather", [("x", xi), ("indices", ind), ("axis", 1)],
             np.take(xi, ind, axis=1)),
        # negative indices count from the end before iOS17
        Case("negative ios16", "gather",
             [("x", x), ("indices", neg), ("axis", 1)],
             np.take(x, neg, axis=1), target="ios16"),
        Case("negative ios15", "gather",
             [("x", x), ("indices", neg), ("axis", 1)],
             np.take(x, neg, axis=1), target="ios15"),
        Case("batch_dims 1", "gather",
             [("x", x), ("indices", bind), ("axis", 1), ("batch_dims", 1)],
             batched_take(x, bind, 1, 1)),
        Case("batch_dims 1 axis 2", "gather",
             [("x", x), ("indices", bind), ("axis", 2), ("batch_dims", 1)],
             batched_take(x, bind, 2, 1)),
        Case("batch_dims 2", "gather",
             [("x", x), ("indices", bind2), ("axis", 2), ("batch_dims", 2)],
             batched_take(x, bind2, 2, 2)),
    ]
    ga = RNG.randint(0, 5, size=(4, 3, 6)).astype(np.int32)
    gneg = -RNG.randint(1, 6, size=(4, 5, 2)).astype(np.int32)
    ga0 = RNG.randint(0, 4, size=(3, 5)).astype(np.int32)
    cases += [
        Case("along axis 1", "gather_along_axis",
             [("x", x), ("indices", ga), ("axis", 1)],
             np.take_along_axis(x, ga, axis=1)),
        Case("along axis -1 negative ios16", "gather_along_axis",
             [("x", x), ("indices", gneg), ("axis", -1)],
             np.take_along_axis(x, gneg, axis=-1), target="ios16"),
        Case("along axis 0 int32", "gather_along_axis",
             [("x", xi), ("indices", ga0)], np.take_along_axis(xi, ga0, axis=0)),
    ]
    check(cases)
    expect_error([
        ("out of range", "gather",
         [("x", x), ("indices", np.array([0, 5], np.int32)), ("axis", 1)],
         "ios18", ["op 'op' (gather)", "indices", "index 5"]),
        ("negative ios17", "gather",
         [("x", x), ("indices", np.array([-1], np.int32)), ("axis", 1)],
         "ios17", ["(gather)", "index -1"]),
        ("negative below -dim ios16", "gather",
         [("x", x), ("indices", np.array([-6], np.int32)), ("axis", 1)],
         "ios16", ["(gather)", "index -6"]),
        ("along axis out of range", "gather_along_axis",
         [("x", x), ("indices", np.full((4, 5, 1), 6, np.int32)),
          ("axis", 2)], "ios18", ["(gather_along_axis)", "index 6"]),
    ])


# ---- tile, reverse ----------------------------------------------------------

def test_tile_reverse():
    cases = []
    for dt, gen in SAMPLES.items():
        x = gen(2, 3, 4)
        cases += [
            Case(f"tile {dt}", "tile", [("x", x), ("reps", [2, 1, 3])],
                 np.tile(x, (2, 1, 3))),
            Case(f"reverse all {dt}", "reverse", [("x", x)], x[::-1, ::-1, ::-1]),
            Case(f"reverse axes {dt}", "reverse",
                 [("x", x), ("axes", [0, -1])], np.flip(x, (0, 2))),
        ]
    v = randn(5)
    cases += [
        Case("tile 1-D", "tile", [("x", v), ("reps", [3])], np.tile(v, 3)),
        Case("reverse 1-D", "reverse", [("x", v), ("axes", [0])], v[::-1]),
    ]
    check(cases)


# ---- depth_to_space, space_to_depth, pixel_shuffle -------------------------

def dcr_depth_to_space(x, b):
    """ONNX DepthToSpace, mode DCR (the formula of the ONNX spec), which is
    TensorFlow's depth_to_space."""
    n, c, h, w = x.shape
    t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return t.reshape(n, c // (b * b), h * b, w * b)


def onnx_space_to_depth(x, b):
    """ONNX SpaceToDepth (the formula of the ONNX spec)."""
    n, c, h, w = x.shape
    t = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return t.reshape(n, c * b * b, h // b, w // b)


def test_depth_space():
    x = randn(2, 8, 3, 4)
    y = randn(2, 3, 6, 4)
    x9 = randn(1, 18, 2, 3)
    smoke = np.array([9.0, 5.0, 1.0, 3.0], np.float32).reshape(1, 4, 1, 1)
    cases = [
        Case("depth_to_space 2", "depth_to_space",
             [("x", x), ("block_size", 2)], dcr_depth_to_space(x, 2)),
        Case("depth_to_space 3", "depth_to_space",
             [("x", x9), ("block_size", 3)], dcr_depth_to_space(x9, 3)),
        # coremltools' own test of depth_to_space and pixel_shuffle
        Case("depth_to_space smoke", "depth_to_space",
             [("x", smoke), ("block_size", 2)],
             np.array([[[[9.0, 5.0], [1.0, 3.0]]]], np.float32)),
        Case("pixel_shuffle smoke", "pixel_shuffle",
             [("x", smoke), ("upscale_factor", 2)],
             np.array([[[[9.0, 5.0], [1.0, 3.0]]]], np.float32)),
        Case("space_to_depth 2", "space_to_depth",
             [("x", y), ("block_size", 2)], onnx_space_to_depth(y, 2)),
        Case("space_to_depth inverse", "space_to_depth",
             [("x", dcr_depth_to_space(x, 2)), ("block_size", 2)], x),
        Case("pixel_shuffle 2", "pixel_shuffle",
             [("x", x), ("upscale_factor", 2)],
             F.pixel_shuffle(torch.from_numpy(x), 2).numpy()),
        Case("pixel_shuffle 3", "pixel_shuffle",
             [("x", x9), ("upscale_factor", 3)],
             F.pixel_shuffle(torch.from_numpy(x9), 3).numpy()),
    ]
    check(cases)


# ---- fill, range_1d ---------------------------------------------------------

def test_fill_range():
    cases = [
        Case("fill default", "fill", [("shape", [2, 3])],
             np.zeros((2, 3), np.float32)),
        Case("fill fp32", "fill",
             [("shape", [3, 1, 2]), ("value", Value(-1.5, dtype="fp32"))],
             np.full((3, 1, 2), -1.5, np.float32)),
        Case("fill int32", "fill", [("shape", [4]), ("value", 7)],
             np.full(4, 7, np.int32)),
        Case("fill bool", "fill", [("shape", [2, 2]), ("value", True)],
             np.full((2, 2), True)),
    ]
    for start, end, step, dt in ((0, 10, 1, "int32"), (3, -7, -2, "int32"),
                                 (5, 6, 3, "int32"), (0.5, 3.25, 0.25, "fp32"),
                                 (-1.0, -4.0, -0.75, "fp32")):
        tdt = torch.int32 if dt == "int32" else torch.float32
        want = torch.arange(start, end, step, dtype=tdt).numpy()
        cases.append(Case(f"range_1d {start} {end} {step}", "range_1d",
                          [("end", Value(end, dtype=dt)),
                           ("start", Value(start, dtype=dt)),
                           ("step", Value(step, dtype=dt))], want,
                          tol=None if dt == "int32" else 1e-6))
    check(cases)


# ---- cumsum -----------------------------------------------------------------

def torch_cumsum(x, axis, exclusive, reverse):
    """torch.cumsum, flipped for reverse, shifted by one for exclusive."""
    t = torch.from_numpy(x).double()
    if reverse:
        t = t.flip(axis)
    c = t.cumsum(axis)
    if exclusive:
        c = c - t
    if reverse:
        c = c.flip(axis)
    return c.numpy().astype(x.dtype)


def test_cumsum():
    cases = []
    for dt in ("fp32", "int32"):
        x = SAMPLES[dt](3, 4, 5)
        for axis in (0, 1, 2, -1):
            for excl in (False, True):
                for rev in (False, True):
                    cases.append(Case(
                        f"{dt} axis {axis} excl {excl} rev {rev}", "cumsum",
                        [("x", x), ("axis", axis), ("exclusive", excl),
                         ("reverse", rev)], torch_cumsum(x, axis, excl, rev),
                        tol=1e-6 if dt == "fp32" else None))
    x = randn(6)
    cases.append(Case("defaults", "cumsum", [("x", x)],
                      torch_cumsum(x, 0, False, False), tol=1e-6))
    check(cases)


# ---- topk -------------------------------------------------------------------

def torch_topk(x, k, axis, largest):
    v, i = torch.topk(torch.from_numpy(x), k, dim=axis, largest=largest)
    return [v.numpy(), i.numpy().astype(np.int32)]


def test_topk():
    x = randn(3, 7, 5)  # distinct values: the indices are unambiguous
    xi = RNG.permutation(60).astype(np.int32).reshape(4, 15)
    cases = [
        Case("default k 1", "topk", [("x", x)], torch_topk(x, 1, -1, True)),
        Case("k 3 axis 1", "topk", [("x", x), ("k", 3), ("axis", 1)],
             torch_topk(x, 3, 1, True)),
        Case("ascending axis 0", "topk",
             [("x", x), ("k", 2), ("axis", 0), ("ascending", True)],
             torch_topk(x, 2, 0, False)),
        Case("whole axis", "topk", [("x", x), ("k", 5)],
             torch_topk(x, 5, -1, True)),
        Case("int32", "topk", [("x", xi), ("k", 4)],
             torch_topk(xi, 4, -1, True)),
        # iOS17: k = -1 takes the whole axis
        Case("k -1 ios17", "topk", [("x", x), ("k", -1), ("axis", 1)],
             torch_topk(x, 7, 1, True), target="ios17"),
        Case("uint16 indices ios17", "topk",
             [("x", x), ("k", 2), ("output_indices_dtype", "uint16")],
             torch_topk(x, 2, -1, True), target="ios17"),
        Case("values only ios16", "topk",
             [("x", x), ("k", 2), ("return_indices", False)],
             torch_topk(x, 2, -1, True)[:1], target="ios16"),
        Case("ios15", "topk", [("x", x), ("k", 2)],
             torch_topk(x, 2, -1, True), target="ios15"),
        # equal values keep their order along the axis (hand-worked)
        Case("ties", "topk",
             [("x", np.array([1, 3, 3, 2, 3], np.float32)), ("k", 3)],
             [np.array([3, 3, 3], np.float32), np.array([1, 2, 4], np.int32)]),
        Case("ties ascending", "topk",
             [("x", np.array([2, 1, 2, 1], np.float32)), ("k", 3),
              ("ascending", True)],
             [np.array([1, 1, 2], np.float32), np.array([1, 3, 0], np.int32)]),
    ]
    check(cases)


# ---- type inference refuses what coremltools refuses ------------------------

def test_new_ops_refuse_bad_parameters():
    x = randn(2, 6, 4, 4)
    expect_error([
        # coremltools' cumsum admits -1 but no other negative axis
        ("cumsum axis -2", "cumsum", [("x", x), ("axis", -2)], "ios18",
         ["(cumsum)", "'axis'"]),
        ("tile reps 0", "tile", [("x", x), ("reps", [1, 0, 1, 1])], "ios18",
         ["(tile)", "'reps'"]),
        ("tile reps length", "tile", [("x", x), ("reps", [2, 2])], "ios18",
         ["(tile)", "'reps'"]),
        ("depth_to_space channels", "depth_to_space",
         [("x", x), ("block_size", 2)], "ios18",
         ["(depth_to_space)", "not a multiple"]),
        ("space_to_depth height", "space_to_depth",
         [("x", x), ("block_size", 3)], "ios18",
         ["(space_to_depth)", "not a multiple"]),
        ("topk k beyond", "topk", [("x", x), ("k", 5)], "ios18",
         ["(topk)", "'k'"]),
        ("topk k -1 ios16", "topk", [("x", x), ("k", -1)], "ios16",
         ["(topk)", "'k'"]),
        ("topk sort ios15", "topk", [("x", x), ("sort", False)], "ios15",
         ["(topk)", "'sort'", "ios16"]),
        ("topk indices dtype without indices", "topk",
         [("x", x), ("return_indices", False),
          ("output_indices_dtype", "int32")], "ios17",
         ["(topk)", "output_indices_dtype"]),
        ("stack shapes", "stack",
         [("values", x), ("values", x[:, :3]), ("axis", 0)], "ios18",
         ["(stack)", "stack needs equal shapes"]),
        ("flatten2d axis", "flatten2d", [("x", x), ("axis", 5)], "ios18",
         ["(flatten2d)", "'axis'"]),
        ("fill size 0", "fill", [("shape", [2, 0])], "ios18",
         ["(fill)", "'shape'"]),
        ("range_1d step 0", "range_1d",
         [("end", 5), ("start", 0), ("step", 0)], "ios18",
         ["(range_1d)", "'step'"]),
        ("range_1d dtypes", "range_1d",
         [("end", Value(5, dtype="fp32")), ("start", 0), ("step", 1)],
         "ios18", ["(range_1d)", "differs"]),
        ("resize_bilinear mode", "resize_bilinear",
         [("x", x), ("sampling_mode", "BILINEAR")], "ios18",
         ["(resize_bilinear)", "'sampling_mode'"]),
        ("l2_pool 3-D", "l2_pool",
         [("x", randn(1, 1, 4, 4, 4)), ("kernel_sizes", [2, 2, 2]),
          ("pad_type", "valid")], "ios18", ["(l2_pool)", "rank 5"]),
        ("gather_along_axis dims", "gather_along_axis",
         [("x", x), ("indices", np.zeros((2, 5, 4, 4), np.int32)),
          ("axis", 2)], "ios18", ["(gather_along_axis)", "'indices'"]),
        ("slice_by_size outside", "slice_by_size",
         [("x", x), ("begin", [1, 0, 0, 0]), ("size", [2, 6, 4, 4])],
         "ios18", ["(slice_by_size)", "'begin'"]),
        ("reverse axis", "reverse", [("x", x), ("axes", [4])], "ios18",
         ["(reverse)", "'axes'"]),
    ])
