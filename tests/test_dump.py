"""`milk dump`: every package coremltools made loads and prints, and the
text names every op and var of coremltools' own printout of the program
(program_*.txt), with each var's type as coremltools declared it."""
import re
import subprocess

import pytest

from conftest import CASES, FIXTURES


def coremltools_program(path):
    """(vars with their printed shape and dtype, op names) of a
    program_*.txt, coremltools' debug print of the program."""
    text = path.read_text()
    types = {}
    for var, shape in re.findall(r"%(\w+): \(([^)]*)\)\(Tensor\)", text):
        parts = [p.strip() for p in shape.split(",") if p.strip()]
        types[var] = (parts[-1], [int(p) for p in parts[:-1]])
    ops = re.findall(r'name="([^"]+)"\)', text)
    return types, ops


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", CASES)
def test_dump_names_every_op_and_var(milk, case, precision):
    d = FIXTURES / case
    r = subprocess.run([milk, "dump", str(d / f"model_{precision}.mlpackage")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    dump = r.stdout
    types, ops = coremltools_program(d / f"program_{precision}.txt")
    assert types and ops
    for name in ops:
        assert f'[name = string("{name}")' in dump, f"op {name} missing"
    for var, (dtype, shape) in types.items():
        want = (f"tensor<{dtype}, [{', '.join(map(str, shape))}]> {var}"
                if shape else f"{dtype} {var}")
        assert want in dump, f"var {var} as {want} missing"
    assert dump.startswith("program(1.3)\n")
    assert "func main<ios" in dump


def test_dump_values_flag_prints_large_constants(milk):
    pkg = FIXTURES / "resblock" / "model_fp32.mlpackage"
    short = subprocess.run([milk, "dump", str(pkg)], capture_output=True, text=True).stdout
    full = subprocess.run([milk, "dump", str(pkg), "--values"],
                          capture_output=True, text=True).stdout
    assert "BLOBFILE(path = string(\"@model_path/weights/weight.bin\")" in short
    assert "BLOBFILE" not in full
    # const_0 is the first conv's weight, [8, 3, 3, 3]: 216 values printed
    line = next(l for l in full.splitlines() if " const_0 = const()" in l)
    values = line.split("([", 1)[1].split("])", 1)[0].split(",")
    assert len(values) == 8 * 3 * 3 * 3


def test_dump_errors(milk, tmp_path):
    r = subprocess.run([milk, "dump", str(tmp_path / "nope.mlpackage")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "nope.mlpackage" in r.stderr
    r = subprocess.run([milk, "dump"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
