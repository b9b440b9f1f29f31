"""`milk inspect`: its JSON on every fixture package, checked against what
the fixtures say independently of milk: coremltools' case.json (the
package's inputs, outputs, states, functions, specification version and
constexpr ops), coremltools' own printout of each program (program*.txt:
the op histogram) and the blob records of weight.bin read here with the
format of docs/coreml-format.md (the bytes stored there); ONNX models
against the onnx package's own reading."""
import json
import re
import struct
import subprocess

import numpy as np
import onnx
import pytest

from conftest import FIXTURES, ROOT

FIX2 = ROOT / "tests" / "fixtures" / "coremltools2"

DTYPES = {65568: "fp32", 65552: "fp16", 131104: "int32", "FLOAT32": "fp32",
          "FLOAT16": "fp16", "INT32": "int32"}


def packages():
    out = []
    for case in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        for prec in ("fp32", "fp16"):
            out.append((case, case / f"model_{prec}.mlpackage", case / f"program_{prec}.txt", prec))
    for case in sorted(p for p in FIX2.iterdir() if p.is_dir()):
        out.append((case, case / "model.mlpackage", case / "program.txt", None))
    return out


PKGS = packages()


def inspect(milk, path, *args):
    r = subprocess.run([milk, "inspect", str(path), "--json", *args], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def expected_io(case, prec):
    """{function: (inputs, outputs, states)} as [(name, dtype, shape)]."""
    meta = json.loads((case / "case.json").read_text())
    if prec:  # the first fixture set
        pk = meta["packages"][prec]
        io = lambda lst: [(n, DTYPES[d], list(s)) for n, s, d in lst]  # noqa: E731
        return pk["specificationVersion"], None, {"main": (io(pk["inputs"]), io(pk["outputs"]), [])}
    pk = meta["package"]
    io = lambda lst: [(e["name"], DTYPES[e["dtype"]], e["shape"]) for e in lst]  # noqa: E731
    if "functions" in pk:
        fns = {n: (io(f["inputs"]), io(f["outputs"]), io(f["states"]))
               for n, f in pk["functions"].items()}
        return pk["specificationVersion"], pk["defaultFunctionName"], fns
    return pk["specificationVersion"], None, {"main": (io(pk["inputs"]), io(pk["outputs"]),
                                                       io(pk.get("states", [])))}


def printed_histograms(txt):
    """{function: {op type: count}} from coremltools' printout: one line per
    op, `%out: (...) = type(...)`; consts are not printed.
    coreml_update_state is serialized as write_state, and read_state when
    its output is used."""
    hist, fn, text = {}, None, txt.read_text()
    for line in text.splitlines():
        m = re.match(r"^(\w+)\[\w+\]\(", line)
        if m:
            fn = m.group(1)
            hist[fn] = {}
            continue
        m = re.search(r"%(\w+): .*\) = (\w+)\(", line)
        if m and fn:
            types = [m.group(2)]
            if m.group(2) == "coreml_update_state":
                used = len(re.findall(rf"%{m.group(1)}\b", text)) > 1
                types = ["write_state"] + (["read_state"] if used else [])
            for t in types:
                hist[fn][t] = hist[fn].get(t, 0) + 1
    return hist


def blob_bytes(pkg):
    """Bytes of data in weight.bin: its blob records walked one by one."""
    path = pkg / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    if not path.exists():
        return 0
    data = path.read_bytes()
    count, version = struct.unpack_from("<II", data, 0)
    assert version == 2
    off, total = 64, 0
    for _ in range(count):
        sentinel, _dt, size, data_off = struct.unpack_from("<IIQQ", data, off)
        assert sentinel == 0xDEADBEEF
        total += size
        off = (data_off + size + 63) // 64 * 64
    return total


@pytest.mark.parametrize("case,pkg,txt,prec", PKGS, ids=[str(p[1].relative_to(ROOT / "tests"))
                                                        for p in PKGS])
def test_inspect_json_on_every_fixture(milk, case, pkg, txt, prec):
    res = inspect(milk, pkg)
    spec, default, fns = expected_io(case, prec)
    assert res["specification_version"] == spec
    assert res["source"] is None and res["format"] == "mlprogram"
    if default:
        assert res["default_function"] == default
    got = {f["name"]: f for f in res["functions"]}
    assert set(got) == set(fns)
    for name, (ins, outs, states) in fns.items():
        f = got[name]
        assert [(v["name"], v["dtype"], v["shape"]) for v in f["inputs"]] == ins
        assert [(v["name"], v["dtype"], v["shape"]) for v in f["outputs"]] == outs
        assert [(v["name"], v["dtype"], v["shape"]) for v in f["states"]] == states
    # the op histogram of each function is that of coremltools' printout
    printed = printed_histograms(txt)
    for name, f in got.items():
        assert f["op_histogram"] == printed[name], name
        assert f["ops"] == sum(printed[name].values())
    total = {}
    for h in printed.values():
        for t, n in h.items():
            total[t] = total.get(t, 0) + n
    assert res["op_histogram"] == total
    # the weights stored in weight.bin, as its records say
    w = res["weights"]
    assert w["weight_file_bytes"] == blob_bytes(pkg)
    assert w["bytes"] >= w["weight_file_bytes"]
    assert sum(d["bytes"] for d in w["by_dtype"].values()) == w["bytes"]
    assert sum(c.get("bytes", 0) for c in w["compression"].values()) == w["bytes"]
    sizes = [t["bytes"] for t in res["largest_weights"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == min(8, w["count"])
    acts = [t["bytes"] for t in res["largest_activations"]]
    assert acts == sorted(acts, reverse=True)
    # every compute-unit choice is listed; the Neural Engine's notes only there
    assert set(res["rules"]) == {"all", "cpu_only", "cpu_and_gpu", "cpu_and_ne"}
    for units in ("all", "cpu_only", "cpu_and_gpu"):
        assert not any(r["id"].startswith("ne-") for r in res["rules"][units])
    fb = {e["rule"] for e in res["neural_engine_fallbacks"]}
    ne_ids = {r["id"] for r in res["rules"]["cpu_and_ne"]}
    assert fb <= ne_ids


BITS = {"uint1": 1, "uint2": 2, "uint3": 3, "uint4": 4, "int4": 4, "uint6": 6, "uint8": 8,
        "int8": 8, "uint16": 16, "int16": 16, "fp16": 16, "uint32": 32, "int32": 32, "fp32": 32}


@pytest.mark.parametrize("case", sorted(p.name for p in FIX2.iterdir()
                                         if p.is_dir() and p.name.startswith("cmp_")))
def test_inspect_compression(milk, case):
    """Each constexpr op of case.json is counted under its kind; the bytes
    of its constant inputs (case.json's dtypes and shapes, sub-byte ones
    packed) are the compressed bytes of that kind; the dense size covers
    the decompressed weights (weights_decompressed.npz, fp32)."""
    meta = json.loads((FIX2 / case / "case.json").read_text())
    comp = inspect(milk, FIX2 / case / "model.mlpackage")["weights"]["compression"]
    kinds, stored = {}, {}
    for c in meta["constexpr"]:
        kinds[c["op"]] = kinds.get(c["op"], 0) + 1
        for param, (dt, shape, how) in c["inputs"].items():
            # in joint compression the dense step's mask is the blob of the
            # step before (one record of weight.bin, counted once, there)
            shared = param == "mask" and c["inputs"]["nonzero_data"][2] != "const"
            if how == "const" and not shared:
                n = (BITS[dt] * int(np.prod(shape)) + 7) // 8
                stored[c["op"]] = stored.get(c["op"], 0) + n
    assert {k: v["count"] for k, v in comp.items() if k != "none"} == kinds
    assert {k: v.get("bytes", 0) for k, v in comp.items() if k != "none" and v.get("bytes")} == \
        {k: n for k, n in stored.items() if n}
    with np.load(FIX2 / case / "weights_decompressed.npz") as z:
        final = 4 * sum(z[k].size for k in meta["weights_decompressed"]["final_weights"])
    dense = sum(v.get("dense_bytes", 0) for k, v in comp.items() if k != "none")
    chained = sum(kinds.values()) > len(meta["weights_decompressed"]["final_weights"])
    assert dense == final if not chained else dense > final


def test_inspect_text_is_one_screen(milk):
    r = subprocess.run([milk, "inspect", FIX2 / "state_kv_cache" / "model.mlpackage"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) <= 40
    assert "states:" in r.stdout and "cache" in r.stdout
    assert "rules that fire, by compute units:" in r.stdout
    assert "Neural Engine fallbacks (cpu_and_ne)" in r.stdout
    r = subprocess.run([milk, "inspect", FIX2 / "mf_two_heads" / "model.mlpackage"],
                       capture_output=True, text=True)
    assert "main (opset ios18" in r.stdout and "embed (opset ios18" in r.stdout
    assert "function embed: inputs:" in r.stdout


def test_inspect_onnx(milk, tmp_path):
    """An ONNX model: converted as milk would (no rewrites), with its opset
    and node count as onnx reads them; the Neural Engine's fallbacks of
    an integer op and a rank-5 tensor listed with their reasons."""
    import torch

    class M(torch.nn.Module):
        def forward(self, x):
            y = torch.nn.functional.conv1d(x, torch.ones(2, 2, 17))  # a kernel 17 wide
            return y, torch.argmax(x, dim=-1), x.reshape(1, 2, 2, 5, 4)

    x = torch.randn(1, 2, 40)
    path = tmp_path / "m.onnx"
    torch.onnx.export(M(), x, str(path), opset_version=17, input_names=["x"])
    model = onnx.load(str(path))
    res = inspect(milk, path)
    assert res["source"] == {"format": "onnx", "opset": 17, "nodes": len(model.graph.node)}
    fb = {e["rule"]: e for e in res["neural_engine_fallbacks"]}
    assert {"ne-conv-kernel16", "ne-dtype", "ne-rank5"} <= set(fb)
    assert "17 wide" in fb["ne-conv-kernel16"]["reason"]
    assert "int32" in fb["ne-dtype"]["reason"]
    assert any(r["id"] == "argmax-ties" for r in res["rules"]["all"])
    text = subprocess.run([milk, "inspect", path], capture_output=True, text=True).stdout
    assert "converted from ONNX opset 17" in text and "ne-conv-kernel16: 1 op" in text


def test_inspect_errors(milk, milk_asan, tmp_path):
    r = subprocess.run([milk, "inspect"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    r = subprocess.run([milk, "inspect", tmp_path / "missing.mlpackage"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "missing.mlpackage" in r.stderr
    r = subprocess.run([milk, "inspect", FIX2 / "state_accumulator" / "model.mlpackage",
                        "--target", "ios17"], capture_output=True, text=True)
    assert r.returncode == 2
    for case, pkg, _, _ in PKGS[::3]:
        r = subprocess.run([milk_asan, "inspect", pkg, "--json"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
