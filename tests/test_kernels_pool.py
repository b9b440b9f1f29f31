"""milk's pooling and resizing kernels against PyTorch and NumPy.

max_pool, avg_pool and l2_pool (1-D to 3-D; pad types valid, custom, same,
same_lower; ceil_mode with and without padding; exclude_padding_from_
average), upsample_nearest_neighbor, upsample_bilinear (align_corners,
half_pixel_centers, integer and fractional scales), resize_nearest_neighbor
and resize_bilinear (every sampling mode), run through milk's interpreter
(the ASan build of the opcheck helper, many cases per process) and
compared in fp32 within 1e-5 relative (max |err| / max |expected|).

Where MIL's rule differs from PyTorch's the expected value is built from
PyTorch pieces whose meaning is the rule:
- avg_pool without exclude_padding_from_average divides by the whole
  kernel, ceil_mode overhang included (docs/coreml-defects.md,
  apple/coremltools#2772): PyTorch's avg_pool with divisor_override =
  prod(kernel). PyTorch's count_include_pad=True agrees only where no
  window hangs over.
- "same" pads are MIL's (the smaller half before; same_lower after), put
  in explicitly with F.pad (-inf for max, 0 for the sums).
- l2_pool is sqrt of PyTorch's sum pool (avg_pool with divisor 1) of x^2.
- The sampling rules of upsample_bilinear without half_pixel_centers and
  of resize_bilinear's DEFAULT, ALIGN_CORNERS and OFFSET_CORNERS have no
  PyTorch mode: NumPy implements the formulas coremltools documents, and
  coremltools' own test values are checked as well.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from milkop import Value, rel_err, run_ops

RNG = np.random.RandomState(2468)
TOL = 1e-5


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def check(cases):
    """cases: (name, op, inputs, want, target). All run in one ASan helper
    process; every mismatch is reported."""
    results = run_ops([(op, inputs, {"target": tgt})
                       for _, op, inputs, _, tgt in cases], asan=True)
    bad = []
    for (name, _, _, want, _), res in zip(cases, results):
        if isinstance(res, Exception):
            bad.append(f"{name}: {res}")
            continue
        got = res[0][0]
        want = np.asarray(want, dtype=np.float32)
        if got.shape != want.shape:
            bad.append(f"{name}: shape {got.shape}, expected {want.shape}")
        elif rel_err(got, want) > TOL:
            bad.append(f"{name}: relative error {rel_err(got, want):.3g}")
    assert not bad, f"{len(bad)} of {len(cases)} cases fail:\n" + "\n".join(bad)


# ---- pooling ------------------------------------------------------------------

MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def same_pads(size, k, s, lower):
    """MIL's same / same_lower split of max(0, (ceil(in/s) - 1) * s + k -
    in): the smaller half before for same, after for same_lower."""
    total = max(0, (math.ceil(size / s) - 1) * s + k - size)
    small = total // 2
    return (total - small, small) if lower else (small, total - small)


def pad_explicit(x, pads, value):
    """x with [(before, after)] per spatial dim padded by value."""
    flat = [v for p in reversed(pads) for v in p]
    return F.pad(t(x), flat, value=value)


def sum_pool(x, k, s, ceil_mode):
    """PyTorch's sum over each window (avg_pool with divisor 1; 1-D as 2-D,
    since avg_pool1d has no divisor_override)."""
    if len(k) == 1:
        return sum_pool(x[..., None, :], [1] + k, [1] + s, ceil_mode)[..., 0, :]
    return AVG_POOL[len(k)](x, k, s, 0, ceil_mode, True, divisor_override=1)


def mil_out(size, k, s, before, after, ceil_mode):
    """coremltools' output size (_utils.spatial_dimensions_out_shape): with
    ceil_mode the division rounds up and, only when there is padding, a last
    window starting at or past size + before is dropped."""
    total = before + after
    if not ceil_mode:
        return (size + total - k) // s + 1
    o = (size + total - k + s - 1) // s + 1
    if total > 0 and (o - 1) * s >= size + total / 2:
        o -= 1
    return o


def pool_want(kind, x, k, s, pads, ceil_mode, exclude):
    """The expected output of a MIL pool with explicit (before, after)
    pads. Symmetric pads small enough for PyTorch go to max_pool as its
    padding; otherwise x is padded explicitly and pooled without padding,
    and windows past coremltools' output size (which PyTorch, seeing no
    padding, keeps) are cut off."""
    S = len(k)
    sym = all(a == b and 2 * a <= kk for (a, b), kk in zip(pads, k))
    if kind == "max" and sym:
        out = MAX_POOL[S](t(x), k, s, [a for a, _ in pads], 1, ceil_mode)
    elif kind == "max":
        out = MAX_POOL[S](pad_explicit(x, pads, -math.inf), k, s, 0, 1,
                          ceil_mode)
    elif kind == "l2":
        xp = pad_explicit(x, pads, 0.0)
        out = torch.sqrt(sum_pool(xp * xp, k, s, ceil_mode))
    else:
        # avg: the sum of the elements of x in the window over the kernel
        # size, or over the count of those elements
        xp = pad_explicit(x, pads, 0.0)
        ones = pad_explicit(np.ones_like(x), pads, 0.0)
        total = sum_pool(xp, k, s, ceil_mode)
        div = sum_pool(ones, k, s, ceil_mode) if exclude else float(np.prod(k))
        out = total / div
    crop = [slice(None)] * 2 + [
        slice(0, mil_out(x.shape[2 + i], k[i], s[i], *pads[i], ceil_mode))
        for i in range(S)]
    return out.numpy()[tuple(crop)]


def pool_case(kind, x, k, s, pad_type="valid", pad=None, ceil_mode=False,
              exclude=False, target="ios18", want=None):
    S = len(k)
    sizes = x.shape[2:]
    if pad_type == "custom":
        pads = [(pad[2 * i], pad[2 * i + 1]) for i in range(S)]
    elif pad_type in ("same", "same_lower"):
        pads = [same_pads(sizes[i], k[i], s[i], pad_type == "same_lower")
                for i in range(S)]
    else:
        pads = [(0, 0)] * S
    if want is None:
        want = pool_want(kind, x, k, s, pads, ceil_mode, exclude)
    inputs = [("x", x), ("kernel_sizes", list(k)), ("strides", list(s)),
              ("pad_type", pad_type)]
    if pad is not None:
        inputs.append(("pad", list(pad)))
    if ceil_mode:
        inputs.append(("ceil_mode", True))
    if kind == "avg":
        inputs.append(("exclude_padding_from_average", exclude))
    name = (f"{kind} k{k} s{s} {pad_type} {pad} ceil {ceil_mode} "
            f"excl {exclude}")
    return (name, f"{kind}_pool", inputs, want, target)


def test_max_avg_l2_pool():
    x1, x2, x3 = randn(2, 3, 11), randn(2, 3, 9, 10), randn(1, 2, 5, 6, 7)
    cases = []
    for kind in ("max", "avg", "l2"):
        for excl in ((False, True) if kind == "avg" else (False,)):
            c = lambda *a, **kw: pool_case(kind, *a, exclude=excl, **kw)
            cases += [
                c(x1, [3], [2]),
                c(x1, [4], [3], "custom", [1, 2]),
                c(x1, [3], [2], "same"),
                c(x1, [4], [3], "same_lower"),
                c(x1, [3], [2], "custom", [1, 1], ceil_mode=True),
                c(x1, [2], [2], ceil_mode=True),
                c(x2, [3, 2], [2, 1]),
                c(x2, [3, 3], [2, 3], "custom", [1, 0, 2, 1]),
                c(x2, [2, 3], [1, 2], "same"),
                c(x2, [4, 2], [3, 2], "same_lower"),
                # ceil_mode with padding: the last window may hang over
                c(x2, [3, 3], [2, 2], "custom", [1, 1, 1, 1], ceil_mode=True),
                c(x2, [2, 4], [3, 3], "custom", [1, 1, 2, 2], ceil_mode=True),
                # ceil_mode without padding (7 -> 3 windows of 2, stride 3)
                c(x2[:, :, :7, :7], [2, 2], [3, 3], ceil_mode=True),
                c(x2, [2, 2], [2, 2], "valid", ceil_mode=True),
            ]
            if kind != "l2":  # l2_pool is 1-D and 2-D only
                cases += [
                    c(x3, [2, 3, 2], [1, 2, 2]),
                    c(x3, [3, 2, 3], [2, 1, 2], "custom", [1, 1, 0, 1, 1, 0]),
                    c(x3, [2, 2, 3], [2, 2, 2], "same"),
                ]
    # the k=7, s=4, p=3 configuration of apple/coremltools#1901
    xb = randn(1, 2, 17, 17)
    cases += [pool_case("avg", xb, [7, 7], [4, 4], "custom", [3] * 4,
                        exclude=e) for e in (False, True)]
    # PyTorch's count_include_pad=True agrees where no window hangs over
    # the padded input
    cases.append(pool_case(
        "avg", x2, [3, 3], [2, 2], "custom", [1, 1, 1, 1],
        want=F.avg_pool2d(t(x2), 3, 2, 1, count_include_pad=True).numpy()))
    cases.append(pool_case(
        "avg", x2, [3, 3], [2, 2], "custom", [1, 1, 1, 1], exclude=True,
        want=F.avg_pool2d(t(x2), 3, 2, 1, count_include_pad=False).numpy()))
    # coremltools#2772's example: 7x7 arange, k 2, s 3, ceil_mode: Core ML
    # divides the overhanging windows by 4 ([[4, 7, 4.75], [25, 28, 15.25],
    # [21.25, 22.75, 12]], as the issue reports); with exclude, PyTorch's
    # count_include_pad=True result ([[4, 7, 9.5], ...]) by the real count
    a = np.arange(49, dtype=np.float32).reshape(1, 1, 7, 7)
    cases.append(pool_case("avg", a, [2, 2], [3, 3], ceil_mode=True, want=[[[
        [4, 7, 4.75], [25, 28, 15.25], [21.25, 22.75, 12]]]]))
    cases.append(pool_case(
        "avg", a, [2, 2], [3, 3], ceil_mode=True, exclude=True,
        want=F.avg_pool2d(t(a), 2, 3, 0, ceil_mode=True).numpy()))
    # target iOS15 (same_lower arrived in iOS16)
    cases.append(pool_case("max", x2, [3, 3], [2, 2], "same", target="ios15"))
    cases.append(pool_case("avg", x2, [3, 3], [2, 2], "same_lower",
                           target="ios16"))
    check(cases)


# ---- upsampling and resizing --------------------------------------------------

def coords_tf(out, size, mode):
    """The sampling coordinates coremltools documents (resize_bilinear's
    notes; TensorFlow's ResizeBilinear for the upsample flags), clamped to
    [0, size - 1]."""
    i = np.arange(out, dtype=np.float64)
    if mode == "STRICT_ALIGN_CORNERS":
        c = i * (size - 1) / (out - 1) if out > 1 else np.zeros(out)
    elif mode == "ALIGN_CORNERS":
        c = i * (size - 1) / (out - 1) if out > 1 else np.full(out, (size - 1) / 2)
    elif mode == "DEFAULT":
        c = i * size / out
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size - 1) / out
        c = 0.5 * delta + i * delta
    else:  # UNALIGN_CORNERS
        c = (i + 0.5) * size / out - 0.5
    return np.clip(c, 0, size - 1)


def bilinear_np(x, out_h, out_w, mode):
    """Bilinear interpolation of the last two dims at coords_tf's
    coordinates."""
    H, W = x.shape[-2:]
    ch, cw = coords_tf(out_h, H, mode), coords_tf(out_w, W, mode)
    h0, w0 = np.floor(ch).astype(int), np.floor(cw).astype(int)
    h1, w1 = np.minimum(h0 + 1, H - 1), np.minimum(w0 + 1, W - 1)
    fh, fw = (ch - h0)[:, None], (cw - w0)[None, :]
    xd = x.astype(np.float64)
    top = xd[..., h0, :][..., :, w0] * (1 - fw) + xd[..., h0, :][..., :, w1] * fw
    bot = xd[..., h1, :][..., :, w0] * (1 - fw) + xd[..., h1, :][..., :, w1] * fw
    return (top * (1 - fh) + bot * fh).astype(np.float32)


def test_upsample():
    x = randn(2, 3, 5, 7)
    x3 = randn(3, 4, 6)  # rank 3: the last two dims are H, W
    cases = []
    # nearest: PyTorch's "nearest" with the scale factors (output floor(in *
    # scale), source floor(i / scale))
    for sh, sw in ((2, 3), (1, 2), (1.5, 2.5), (2.5, 0.5)):
        want = F.interpolate(t(x), scale_factor=(sh, sw), mode="nearest",
                             recompute_scale_factor=False).numpy()
        dt = "int32" if isinstance(sh, int) and isinstance(sw, int) else "fp32"
        cases.append((f"nearest {sh} {sw}", "upsample_nearest_neighbor",
                      [("x", x), ("scale_factor_height", Value(sh, dtype=dt)),
                       ("scale_factor_width", Value(sw, dtype=dt))], want,
                      "ios18"))
    # coremltools' smoke test: [1.5, 2.5, 3.5] by (1, 2)
    s = np.array([1.5, 2.5, 3.5], np.float32).reshape(1, 1, 1, 3)
    cases.append(("nearest smoke", "upsample_nearest_neighbor",
                  [("x", s), ("scale_factor_width", 2)],
                  [[[[1.5, 1.5, 2.5, 2.5, 3.5, 3.5]]]], "ios18"))
    # bilinear: PyTorch with the output size (recompute_scale_factor=True)
    for sh, sw in ((2, 3), (1.5, 2.6), (0.5, 0.75), (3, 1)):
        oh, ow = math.floor(5 * sh), math.floor(7 * sw)
        for ac in (True, False):
            want = F.interpolate(t(x), size=(oh, ow), mode="bilinear",
                                 align_corners=ac).numpy()
            cases.append((f"bilinear {sh} {sw} ac {ac}", "upsample_bilinear",
                          [("x", x),
                           ("scale_factor_height", Value(sh, dtype="fp32")),
                           ("scale_factor_width", Value(sw, dtype="fp32")),
                           ("align_corners", ac)], want, "ios18"))
        # iOS16 flags as TensorFlow's ResizeBilinear: align_corners False
        # with half_pixel_centers False samples i * in / out (DEFAULT);
        # the explicit (False, True) and (True, False) match PyTorch
        for ac, hpc, mode in ((False, False, "DEFAULT"),
                              (False, True, "UNALIGN_CORNERS"),
                              (True, False, "STRICT_ALIGN_CORNERS")):
            cases.append((f"bilinear {sh} {sw} ac {ac} hpc {hpc}",
                          "upsample_bilinear",
                          [("x", x),
                           ("scale_factor_height", Value(sh, dtype="fp32")),
                           ("scale_factor_width", Value(sw, dtype="fp32")),
                           ("align_corners", ac), ("half_pixel_centers", hpc)],
                          bilinear_np(x, oh, ow, mode), "ios16"))
    cases.append(("bilinear rank 3", "upsample_bilinear",
                  [("x", x3), ("scale_factor_height", 2),
                   ("scale_factor_width", 2), ("align_corners", False)],
                  F.interpolate(t(x3)[None], size=(8, 12), mode="bilinear",
                                align_corners=False).numpy()[0], "ios15"))
    # coremltools' tests: [0, 1] by 3, align_corners -> 0, 0.2, ..., 1; by
    # 2.6 without -> [0, 0.1, 0.5, 0.9, 1]
    r = np.array([0, 1], np.float32).reshape(1, 1, 2)
    cases.append(("bilinear smoke ac", "upsample_bilinear",
                  [("x", r), ("scale_factor_width", 3), ("align_corners", True)],
                  [[[0, 0.2, 0.4, 0.6, 0.8, 1]]], "ios18"))
    cases.append(("bilinear smoke 2.6", "upsample_bilinear",
                  [("x", r), ("scale_factor_height", Value(1.0, dtype="fp32")),
                   ("scale_factor_width", Value(2.6, dtype="fp32")),
                   ("align_corners", False)],
                  [[[0, 0.1, 0.5, 0.9, 1]]], "ios18"))
    check(cases)


def test_resize():
    x = randn(2, 3, 5, 7)
    cases = []
    # nearest: PyTorch's "nearest-exact", floor((i + 0.5) * in / out)
    for oh, ow in ((10, 14), (3, 4), (7, 3), (5, 7), (1, 1)):
        cases.append((f"nearest {oh} {ow}", "resize_nearest_neighbor",
                      [("x", x), ("target_size_height", oh),
                       ("target_size_width", ow)],
                      F.interpolate(t(x), size=(oh, ow),
                                    mode="nearest-exact").numpy(), "ios18"))
    # coremltools' test of the iOS17 resize (same sampling): [a, b] to 3
    # rows -> a, b, b
    n = np.array([-6.174, 9.371], np.float32).reshape(1, 1, 2, 1)
    cases.append(("nearest smoke", "resize_nearest_neighbor",
                  [("x", n), ("target_size_height", 3),
                   ("target_size_width", 2)],
                  [[[[-6.174, -6.174], [9.371, 9.371], [9.371, 9.371]]]],
                  "ios18"))
    for oh, ow in ((10, 14), (3, 4), (8, 2), (1, 5), (1, 1)):
        for mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT",
                     "OFFSET_CORNERS", "UNALIGN_CORNERS"):
            cases.append((f"bilinear {oh} {ow} {mode}", "resize_bilinear",
                          [("x", x), ("target_size_height", oh),
                           ("target_size_width", ow), ("sampling_mode", mode)],
                          bilinear_np(x, oh, ow, mode), "ios18"))
        # the two modes PyTorch has
        for mode, ac in (("STRICT_ALIGN_CORNERS", True),
                         ("UNALIGN_CORNERS", False)):
            cases.append((f"bilinear {oh} {ow} {mode} torch", "resize_bilinear",
                          [("x", x), ("target_size_height", oh),
                           ("target_size_width", ow), ("sampling_mode", mode)],
                          F.interpolate(t(x), size=(oh, ow), mode="bilinear",
                                        align_corners=ac).numpy(), "ios18"))
    # coremltools' tests: [0, 1] to width 5
    r = np.array([0, 1], np.float32).reshape(1, 1, 2)
    for mode, want in (("STRICT_ALIGN_CORNERS", [0, 0.25, 0.5, 0.75, 1]),
                       ("DEFAULT", [0, 0.4, 0.8, 1, 1]),
                       ("OFFSET_CORNERS", [0.1, 0.3, 0.5, 0.7, 0.9])):
        cases.append((f"bilinear smoke {mode}", "resize_bilinear",
                      [("x", r), ("target_size_height", 1),
                       ("target_size_width", 5), ("sampling_mode", mode)],
                      [[want]], "ios18"))
    cases.append(("bilinear defaults", "resize_bilinear", [("x", x)],
                  bilinear_np(x, 1, 1, "DEFAULT"), "ios18"))
    check(cases)
