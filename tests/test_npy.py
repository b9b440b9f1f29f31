"""milk's .npy/.npz reader and writer against numpy.

numpy writes files of every supported dtype, many shapes and the three
header versions; milk (through the npy_tool helper, tests/tools/npy_tool.c)
reads them and writes them back as .npy and .npz; numpy reads milk's files
and the arrays must be bit-exact. Malformed files must give a clear error
naming the file, under ASan and UBSan, with no sanitizer report."""
import io
import os
import pathlib
import struct
import subprocess
import zipfile

import numpy as np
import pytest

BUILD = pathlib.Path(os.environ.get(
    "MILK_BUILD", pathlib.Path(__file__).resolve().parent.parent / "build"))
TOOLS = {"opt": BUILD / "tools" / "npy_tool",
         "asan": BUILD / "asan" / "tools" / "npy_tool"}

# Sanitizer exits get their own codes so that they cannot pass for milk's
# ordinary error exit (1).
ENV = dict(os.environ,
           ASAN_OPTIONS="detect_leaks=1:exitcode=99",
           UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98")

DTYPES = ["<f2", "<f4", "<f8", "|i1", "<i4", "<i8", "|u1", "|b1"]
MILK_NAMES = {"<f2": "fp16", "<f4": "fp32", "<f8": "fp64", "|i1": "int8",
              "<i4": "int32", "<i8": "int64", "|u1": "uint8", "|b1": "bool"}
SHAPES = [(), (0,), (5,), (2, 0, 3), (2, 3), (2, 1, 3, 2), (1, 2, 3, 2, 2)]
VERSIONS = [(1, 0), (2, 0), (3, 0)]


def tool(kind="asan"):
    path = TOOLS[kind]
    assert path.exists(), f"{path} is missing: run make pytest"
    return str(path)


def run(args, kind="asan"):
    r = subprocess.run([tool(kind)] + [str(a) for a in args],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def ok(args, kind="asan"):
    r = run(args, kind)
    assert r.returncode == 0, r.stderr
    return r.stdout


def sample(descr, shape, seed):
    """An array whose bytes cover the dtype's corners: NaN, infinities,
    -0.0, subnormals, extremes of the integer range."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(descr)
    n = int(np.prod(shape, dtype=np.int64))
    if dt.kind == "b":
        flat = rng.integers(0, 2, n).astype(bool)
    elif dt.kind == "f":
        flat = (rng.standard_normal(n) * 100).astype(dt)
        corners = np.array([np.nan, np.inf, -np.inf, -0.0,
                            np.finfo(dt).smallest_subnormal, np.finfo(dt).max],
                           dtype=dt)
        flat[:min(n, 6)] = corners[:min(n, 6)]
    else:
        info = np.iinfo(dt)
        flat = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        flat[:min(n, 2)] = [info.min, info.max][:min(n, 2)]
    return flat.reshape(shape)


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def cases():
    for d, descr in enumerate(DTYPES):
        for s, shape in enumerate(SHAPES):
            yield f"a{d}_{s}", sample(descr, shape, d * 100 + s)


def save(path, a, version):
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=version)


@pytest.mark.parametrize("kind", ["opt", "asan"])
@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v[0]}")
def test_npy_round_trip(tmp_path, version, kind):
    arrays = dict(cases())
    for name, a in arrays.items():
        save(tmp_path / f"{name}.npy", a, version)
        with open(tmp_path / f"{name}.npy", "rb") as f:  # numpy kept the version
            assert np.lib.format.read_magic(f) == version

    # milk's view of each file: dtype and shape
    names = list(arrays)
    out = ok(["info"] + [tmp_path / f"{n}.npy" for n in names], kind)
    for n, line in zip(names, out.splitlines()):
        a = arrays[n]
        shape = "(" + ", ".join(map(str, a.shape)) + ("," if a.ndim == 1 else "") + ")"
        assert line == f"- {MILK_NAMES[a.dtype.str]} {shape}"

    # .npy -> milk -> .npz -> numpy
    ok(["pack", tmp_path / "all.npz"] + [f"{n}={tmp_path / n}.npy" for n in names], kind)
    with np.load(tmp_path / "all.npz") as z:
        assert sorted(z.files) == sorted(names)
        for n in names:
            assert same(z[n], arrays[n]), n

    # .npz (milk's) -> milk -> .npy -> numpy
    (tmp_path / "out").mkdir()
    ok(["unpack", tmp_path / "all.npz", tmp_path / "out"], kind)
    for n in names:
        path = tmp_path / "out" / f"{n}.npy"
        assert same(np.load(path), arrays[n]), n
        with open(path, "rb") as f:  # milk writes version 1.0, data 64-aligned
            assert np.lib.format.read_magic(f) == (1, 0)
            np.lib.format.read_array_header_1_0(f)
            assert f.tell() % 64 == 0

    # .npy -> milk -> .npy directly, for one array of each dtype
    for d in range(len(DTYPES)):
        n = f"a{d}_4"
        ok(["copy", tmp_path / f"{n}.npy", tmp_path / "c.npy"], kind)
        assert same(np.load(tmp_path / "c.npy"), arrays[n])


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_numpy_npz(tmp_path, compressed):
    arrays = dict(cases())
    arrays["input.1"] = np.arange(3, dtype=np.float32)   # names as ONNX has them
    arrays["\u00e9t\u00e9"] = np.ones((2, 2), np.int32)  # a UTF-8 member name
    (np.savez_compressed if compressed else np.savez)(tmp_path / "np.npz", **arrays)
    lines = ok(["info", tmp_path / "np.npz"]).splitlines()
    assert [l.split(" ")[0] for l in lines] == list(arrays)

    (tmp_path / "out").mkdir()
    ok(["unpack", tmp_path / "np.npz", tmp_path / "out"])
    for n, a in arrays.items():
        assert same(np.load(tmp_path / "out" / f"{n}.npy"), a), n

    ok(["repack", tmp_path / "np.npz", tmp_path / "milk.npz"])
    with np.load(tmp_path / "milk.npz") as z:
        assert list(z.files) == list(arrays)
        for n, a in arrays.items():
            assert same(z[n], a), n

    ok(["get", tmp_path / "np.npz", "input.1", tmp_path / "one.npy"])
    assert same(np.load(tmp_path / "one.npy"), arrays["input.1"])
    r = run(["get", tmp_path / "np.npz", "input", tmp_path / "none.npy"])
    assert r.returncode == 1 and "no array named 'input'" in r.stderr
    assert not (tmp_path / "none.npy").exists()


def test_empty_npz(tmp_path):
    np.savez(tmp_path / "np.npz")
    assert ok(["info", tmp_path / "np.npz"]) == ""
    ok(["pack", tmp_path / "milk.npz"])
    with np.load(tmp_path / "milk.npz") as z:
        assert z.files == []


def test_replaces_existing(tmp_path):
    """Writing over an existing file (even one that is no zip) replaces it
    and leaves no temporary file behind."""
    a = np.arange(4, dtype=np.int64)
    np.save(tmp_path / "a.npy", a)
    (tmp_path / "out.npz").write_bytes(b"not a zip")
    (tmp_path / "out.npy").write_bytes(b"junk")
    ok(["pack", tmp_path / "out.npz", f"a={tmp_path / 'a.npy'}"])
    ok(["copy", tmp_path / "a.npy", tmp_path / "out.npy"])
    with np.load(tmp_path / "out.npz") as z:
        assert same(z["a"], a)
    assert same(np.load(tmp_path / "out.npy"), a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "out.npy", "out.npz"]


# ---- malformed files ------------------------------------------------------

def npy_bytes(a, version=(1, 0)):
    f = io.BytesIO()
    np.lib.format.write_array(f, a, version=version, allow_pickle=True)
    return f.getvalue()


def hand_npy(header, data=b"", major=1):
    """A .npy file with the header dict given as text (no padding)."""
    h = header.encode("latin1")
    size = struct.pack("<H" if major == 1 else "<I", len(h))
    return b"\x93NUMPY" + bytes([major, 0]) + size + h + data


F4 = np.arange(6, dtype="<f4").reshape(2, 3)
GOOD = npy_bytes(F4)


def bad_npy_cases():
    hl = struct.unpack("<H", GOOD[8:10])[0]
    return {
        "truncated": (GOOD[:-1], "truncated: shape (2, 3) of <f4 needs 24 bytes"),
        "trailing": (GOOD + b"\0", "trailing bytes"),
        "magic": (b"\x93NUMPZ" + GOOD[6:], "not a .npy file (bad magic)"),
        "empty": (b"", "bad magic"),
        "version": (GOOD[:6] + b"\x04\x00" + GOOD[8:], "version 4.0 is not supported"),
        "header_past_end": (GOOD[:8] + struct.pack("<H", hl + 200) + GOOD[10:],
                            f"header length {hl + 200} runs past the end"),
        "cut_in_header": (GOOD[:40], "runs past the end"),
        "bad_dict": (GOOD.replace(b"'shape'", b"'shapf'"), "unexpected key 'shapf'"),
        "not_a_dict": (hand_npy("['descr', '<f4']"), "expected '{'"),
        "missing_key": (hand_npy("{'descr': '<f4', 'shape': (1,)}", b"\0" * 4),
                        "missing key 'fortran_order'"),
        "fortran": (npy_bytes(np.asfortranarray(F4)),
                    "header field 'fortran_order': Fortran-ordered arrays"),
        "big_endian": (npy_bytes(F4.astype(">f4")), "big-endian dtype '>f4'"),
        "object": (npy_bytes(np.array([1, "a"], dtype=object)), "object arrays"),
        "complex": (npy_bytes(np.ones(2, np.complex64)), "dtype '<c8' is not supported"),
        "structured": (npy_bytes(np.zeros(2, [("a", "<f4")])), "structured dtypes"),
        "dim_overflow": (hand_npy(f"{{'descr': '<f4', 'fortran_order': False, "
                                  f"'shape': ({2**63},), }}"),
                         f"dimension {2**63} overflows int64"),
        "count_overflow": (hand_npy("{'descr': '<f4', 'fortran_order': False, "
                                    f"'shape': ({2**32}, {2**32}, {2**32}), }}"),
                           "more elements than milk supports"),
        "zero_hides_huge": (hand_npy("{'descr': '<f4', 'fortran_order': False, "
                                     f"'shape': (0, {2**32}, {2**32}), }}"),
                            "more elements than milk supports"),
        "too_many": (hand_npy("{'descr': '<i8', 'fortran_order': False, "
                              f"'shape': ({2**40}, 2), }}"), "more elements than milk supports"),
        "not_tuple": (hand_npy("{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (3), }", b"\0" * 12), "(n) is not a tuple"),
    }


@pytest.mark.parametrize("case", list(bad_npy_cases()))
def test_bad_npy(tmp_path, case):
    data, msg = bad_npy_cases()[case]
    path = tmp_path / f"{case}.npy"
    path.write_bytes(data)
    r = run(["info", path])
    assert r.returncode == 1, r.stderr
    assert f"{path}: " in r.stderr and msg in r.stderr, r.stderr
    # the same bytes as an .npz member: the message names archive and member
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("x.npy", data)
    r = run(["info", tmp_path / "z.npz"])
    assert r.returncode == 1, r.stderr
    assert f"{tmp_path / 'z.npz'}: member 'x.npy': " in r.stderr and msg in r.stderr, r.stderr


def stored_npz(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, x=np.arange(64, dtype=np.float32))
    return path, path.read_bytes()


def test_npz_cut_in_half(tmp_path):
    path, data = stored_npz(tmp_path)
    path.write_bytes(data[:len(data) // 2])
    r = run(["info", path])
    assert r.returncode == 1 and f"{path}: not a readable .npz (zip) archive" in r.stderr, r.stderr


def test_npz_crc(tmp_path):
    """A flipped bit in a stored member's data: only the CRC can tell."""
    path, data = stored_npz(tmp_path)
    at = data.index(GOOD[:6], 0) + 200  # inside the float data of x.npy
    path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1:])
    r = run(["info", path])
    assert r.returncode == 1, r.stderr
    assert f"{path}: member 'x.npy': " in r.stderr and "CRC" in r.stderr, r.stderr


def test_npz_corrupt_deflate(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, x=np.arange(1000, dtype=np.int64))
    data = bytearray(path.read_bytes())
    start = data.index(b"x.npy") + len("x.npy") + 20  # past the name and ZIP64 extra
    for i in range(start, start + 40):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))
    r = run(["info", path])
    assert r.returncode == 1, r.stderr
    assert f"{path}: member 'x.npy': " in r.stderr, r.stderr


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED],
                         ids=["stored", "deflated"])
def test_npz_lying_size(tmp_path, method):
    """A member whose directory entries claim 4 GiB: refused before any
    allocation, since neither storing nor deflate can turn the few bytes
    present into that much."""
    path = tmp_path / "l.npz"
    with zipfile.ZipFile(path, "w", compression=method) as z:
        z.writestr("x.npy", GOOD)
    data = bytearray(path.read_bytes())
    claim = struct.pack("<I", 0xFFFFFFF0)
    assert data[:4] == b"PK\3\4"
    data[22:26] = claim              # local header: uncompressed size
    cd = data.index(b"PK\1\2")
    data[cd + 24:cd + 28] = claim    # central directory: uncompressed size
    path.write_bytes(bytes(data))
    r = run(["info", path])
    assert r.returncode == 1, r.stderr
    assert f"{path}: member 'x.npy': size {0xFFFFFFF0} cannot come from" in r.stderr, r.stderr


def test_npz_bad_members(tmp_path):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", b"hello")
    r = run(["info", path])
    assert r.returncode == 1 and "member 'notes.txt' is not a <name>.npy file" in r.stderr
    with zipfile.ZipFile(path, "w") as z, pytest.warns(UserWarning, match="Duplicate"):
        z.writestr("x.npy", GOOD)
        z.writestr("x.npy", GOOD)
    r = run(["info", path])
    assert r.returncode == 1 and f"{path}: " in r.stderr, r.stderr
    assert "two members have the same name" in r.stderr, r.stderr


def test_missing_and_odd_paths(tmp_path):
    r = run(["info", tmp_path / "none.npy"])
    assert r.returncode == 1 and f"{tmp_path / 'none.npy'}: cannot open" in r.stderr
    r = run(["info", tmp_path / "none.npz"])
    assert r.returncode == 1 and f"{tmp_path / 'none.npz'}: " in r.stderr
    (tmp_path / "d.npy").mkdir()
    r = run(["info", tmp_path / "d.npy"])
    assert r.returncode == 1 and "not a regular file" in r.stderr
    np.save(tmp_path / "a.npy", F4)
    r = run(["copy", tmp_path / "a.npy", tmp_path / "no" / "b.npy"])
    assert r.returncode == 1 and f"{tmp_path / 'no' / 'b.npy'}: cannot create" in r.stderr
    r = run(["pack", tmp_path / "no" / "b.npz", f"a={tmp_path / 'a.npy'}"])
    assert r.returncode == 1 and f"{tmp_path / 'no' / 'b.npz'}: " in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "d.npy"]
