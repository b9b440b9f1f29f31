"""`milk lint`: the defect patterns it reports on the packages coremltools
made (tests/fixtures/coremltools), rule selection by target, compute units
and ids, exit codes, --json, --fix (the fixed package still computes
PyTorch's output), refusals, and docs/defects.md kept in step with the rule
table and with docs/coreml-defects.md."""
import json
import pathlib
import re
import subprocess

import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from rulecase import Batch, Const, Value, op

DOCS = ROOT / "docs"


def lint(milk, *args):
    return subprocess.run([milk, "lint", *map(str, args)], capture_output=True, text=True)


def lint_json(milk, *args):
    r = lint(milk, *args, "--json")
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def rules_of(report, fixed=False):
    return [h["rule"] for h in report["hits"] if h["fixed"] == fixed]


def run_pkg(milk, pkg, x, tmp_path):
    out = tmp_path / "out.npz"
    r = subprocess.run([milk, "run", str(pkg), "--input", f"x={x}", "--output", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def rel_err(got, want):
    got, want = got.astype(np.float64), want.astype(np.float64)
    assert got.shape == want.shape
    return np.max(np.abs(got - want)) / np.max(np.abs(want))


# ---- reports on coremltools' packages ----------------------------------------------------


def test_convt1d_small_reports_bias_and_output_shape(milk):
    pkg = FIXTURES / "convt1d_small" / "model_fp32.mlpackage"
    rc, rep = lint_json(milk, pkg)
    assert rc == 1
    found = {h["rule"]: h for h in rep["hits"]}
    assert {"convt1d-bias", "convt-output-shape"} <= set(found)
    h = found["convt1d-bias"]
    assert h["op"] == "op_18_has_output_shape" and h["op_type"] == "conv_transpose"
    assert h["severity"] == "error" and h["action"] == "rewrite"
    assert "[1, 64, 50]" in h["condition"] and "Neural Engine" in h["scope"]
    assert "MNN" in h["source"] and "expand_dims" in h["fix"]
    assert found["convt-output-shape"]["source"].startswith("apple/coremltools#2281")
    assert rep["errors"] == len(rep["hits"])
    text = lint(milk, pkg)
    assert text.returncode == 1
    assert "convt1d-bias" in text.stdout and "op 'op_18_has_output_shape'" in text.stdout


def test_conv2d_edge_reports_conv2d_edge(milk):
    rc, rep = lint_json(milk, FIXTURES / "conv2d_edge" / "model_fp32.mlpackage")
    assert rc == 1 and rules_of(rep) == ["conv2d-edge"]
    assert "kernel 3x2" in rep["hits"][0]["condition"]


@pytest.mark.parametrize("case", ["mlp_bn", "resblock", "attention"])
def test_clean_packages_exit_0(milk, case):
    rc, rep = lint_json(milk, FIXTURES / case / "model_fp32.mlpackage")
    assert rc == 0 and rep["errors"] == 0


def test_info_only_exits_0(milk):
    # batch_norm in fp16 for iOS15: a note for the simulator only
    rc, rep = lint_json(milk, FIXTURES / "mlp_bn" / "model_fp16.mlpackage")
    assert rc == 0 and rules_of(rep) == ["batchnorm-fp16-sim"] and rep["infos"] == 1


# ---- selection -----------------------------------------------------------------------------


def test_selection_by_compute_units_and_ids(milk):
    pkg = FIXTURES / "convt1d_small" / "model_fp32.mlpackage"
    base = set(rules_of(lint_json(milk, pkg)[1]))
    assert "convt1d-bias" in base
    _, cpu = lint_json(milk, pkg, "--compute-units", "cpu_only")
    assert "convt1d-bias" not in rules_of(cpu)          # a Neural Engine defect
    assert "convt-fp16-shift" not in rules_of(cpu)      # fp32 on the CPU is fp32
    assert "convt-output-shape" in rules_of(cpu)
    _, gpu = lint_json(milk, pkg, "--compute-units", "cpu_and_gpu")
    assert "convt1d-bias" not in rules_of(gpu)
    _, ne = lint_json(milk, pkg, "--compute-units", "cpu_and_ne")
    assert "convt1d-bias" in rules_of(ne)
    _, forced = lint_json(milk, pkg, "--compute-units", "cpu_only", "--enable-rule", "convt1d-bias")
    assert "convt1d-bias" in rules_of(forced)
    _, off = lint_json(milk, pkg, "--disable-rule", "convt-output-shape")
    assert "convt-output-shape" not in rules_of(off) and "convt1d-bias" in rules_of(off)
    rc, none = lint_json(milk, pkg, "--disable-rule", "all")
    assert rc == 0 and none["hits"] == []
    rc, one = lint_json(milk, pkg, "--disable-rule", "all", "--enable-rule", "convt1d-bias")
    assert rc == 1 and rules_of(one) == ["convt1d-bias"]


def test_selection_by_target_and_precision(milk, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 7, 6)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = Batch()
    b.case(inputs=[("x", x)], target="ios16", apply="none", save=tmp_path / "sl.mlpackage",
           ops=[op("conv", "y", x="x", weight=Const(w), strides=Value([1, 1]),
                   dilations=Value([1, 1]), pad_type=Value("same_lower"), pad=Value([0] * 4))],
           outputs=["y"])
    b.case(inputs=[("x", x)], apply="none", save=tmp_path / "sp.mlpackage",
           ops=[op("softplus", "y", x="x")], outputs=["y"])
    for r in b.run(tmp_path):
        assert r.error == ""
    sl = tmp_path / "sl.mlpackage"
    assert "same-lower-ios15" not in rules_of(lint_json(milk, sl)[1])
    rc, rep = lint_json(milk, sl, "--target", "ios15")
    assert rc == 1 and "same-lower-ios15" in rules_of(rep)
    sp = tmp_path / "sp.mlpackage"
    # fp32 softplus: an fp16 overflow only where fp16 is computed
    assert "fp16-softplus" in rules_of(lint_json(milk, sp)[1])             # ALL: Neural Engine
    assert rules_of(lint_json(milk, sp, "--compute-units", "cpu_only")[1]) == []
    rc, rep = lint_json(milk, sp, "--compute-units", "cpu_only", "--precision", "fp16")
    assert rc == 0 and rules_of(rep) == ["fp16-softplus"]   # a warning: exit 0
    assert rep["warnings"] == 1


# ---- exit codes and errors ---------------------------------------------------------------------


def test_errors_exit_2(milk, tmp_path):
    pkg = FIXTURES / "convt1d_small" / "model_fp32.mlpackage"
    cases = [
        ([tmp_path / "missing.mlpackage"], "missing.mlpackage"),
        ([pkg, "--enable-rule", "no-such-rule"], "unknown rule id 'no-such-rule'"),
        ([pkg, "--disable-rule", "nope"], "unknown rule id 'nope'"),
        ([pkg, "--compute-units", "tpu"], "--compute-units"),
        ([pkg, "--target", "ios9"], "--target"),
        ([pkg, "--fix"], "--fix and -o"),
        ([pkg, "-o", tmp_path / "o.mlpackage"], "--fix and -o"),
        ([], "lint needs a package"),
    ]
    for args, msg in cases:
        r = lint(milk, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert msg in r.stderr, (msg, r.stderr)
    assert not (tmp_path / "o.mlpackage").exists()


def test_refused_patterns_block_fix(milk, tmp_path):
    b = Batch()
    b.case(inputs=[("x", np.zeros((1, 20000), np.float32))], apply="none",
           save=tmp_path / "big.mlpackage", ops=[op("relu", "y", x="x")], outputs=["y"])
    b.case(inputs=[("x", np.zeros((2, 3, 4, 5, 6), np.float32))], apply="none",
           save=tmp_path / "r6.mlpackage",
           ops=[op("reshape", "y", x="x", shape=Value([2, 3, 4, 5, 3, 2]))], outputs=["y"])
    for r in b.run(tmp_path):
        assert r.error == ""
    big = tmp_path / "big.mlpackage"
    rc, rep = lint_json(milk, big)
    # a dimension above 16384 is a warning (Core ML runs such ops on the CPU):
    # lint reports it and exits 0, --fix writes the package unchanged in it
    assert rc == 0 and {"dim-16384"} <= set(rules_of(rep))
    assert "dimension 1 is 20000" in " ".join(h["condition"] for h in rep["hits"])
    assert "dim-16384" not in rules_of(lint_json(milk, big, "--compute-units", "cpu_only")[1])
    out = tmp_path / "fixed.mlpackage"
    r = lint(milk, big, "--fix", "-o", out)
    assert r.returncode == 0 and out.exists(), r.stdout
    import shutil
    shutil.rmtree(out)
    rc, rep = lint_json(milk, tmp_path / "r6.mlpackage", "--fix", "-o", out)
    assert rc == 1 and "rank-gt-5" in rules_of(rep) and rep["output"] is None
    assert "rank 6 > 5" in rep["refused"]
    assert not out.exists()
    # for the CPU alone the big dimension is fine, and --fix writes
    r = lint(milk, big, "--compute-units", "cpu_only", "--fix", "-o", out)
    assert r.returncode == 0 and out.exists(), r.stdout + r.stderr


# ---- --fix ---------------------------------------------------------------------------------


def dump(milk, pkg):
    r = subprocess.run([milk, "dump", str(pkg)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def conv_transposes(text):
    """(output rank, whether output_shape is bound) of each conv_transpose."""
    found = []
    for line in text.splitlines():
        m = re.search(r"tensor<\w+, \[([^\]]*)\]> \w+ = conv_transpose\((.*)\)\[", line)
        if m:
            found.append((len(m.group(1).split(",")), "output_shape = " in m.group(2)))
    return found


@pytest.mark.parametrize("case,precision,tol", [
    ("convt1d_small", "fp32", 1e-5), ("upsampler_small", "fp32", 1e-5),
    ("upsampler_small", "fp16", 1e-2), ("convt1d_small", "fp16", 1e-2)])
def test_fix_conv_transpose_packages(milk, tmp_path, case, precision, tol):
    d = FIXTURES / case
    src = d / f"model_{precision}.mlpackage"
    assert all(rank == 3 and shape for rank, shape in conv_transposes(dump(milk, src)))
    out = tmp_path / "fixed.mlpackage"
    r = lint(milk, src, "--fix", "-o", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fixed    convt1d-bias" in r.stdout and "created expand_dims" in r.stdout
    assert f"wrote {out}" in r.stdout
    found = conv_transposes(dump(milk, out))
    assert found and all(rank == 4 and not shape for rank, shape in found), found
    want = np.load(d / "expected.npy")
    got = run_pkg(milk, out, d / "x.npy", tmp_path)
    out_name = json.loads((d / "case.json").read_text())["packages"][precision]["outputs"][0][0]
    assert out_name in got  # the model output keeps its name
    assert rel_err(got[out_name], want) < tol
    # the fixed package lints clean for the same target and units
    rc, rep = lint_json(milk, out)
    assert rc == 0 and rep["errors"] == 0, rep["hits"]


def test_fix_conv2d_edge(milk, tmp_path):
    d = FIXTURES / "conv2d_edge"
    out = tmp_path / "fixed.mlpackage"
    rc, rep = lint_json(milk, d / "model_fp32.mlpackage", "--fix", "-o", out)
    assert rc == 0 and rules_of(rep, fixed=True) == ["conv2d-edge"]
    assert "created pad" in rep["hits"][0]["touched"]
    text = dump(milk, out)
    assert " = pad(" in text
    got = run_pkg(milk, out, d / "x.npy", tmp_path)
    assert rel_err(got["var_22"], np.load(d / "expected.npy")) < 1e-5


def test_fix_with_simplify_and_json(milk, tmp_path):
    d = FIXTURES / "convt1d_small"
    out = tmp_path / "fixed.mlpackage"
    rc, rep = lint_json(milk, d / "model_fp32.mlpackage", "--fix", "-o", out, "--simplify")
    assert rc == 0 and rep["output"] == str(out) and rep["fixed"] >= 2
    got = run_pkg(milk, out, d / "x.npy", tmp_path)
    assert rel_err(got["var_18"], np.load(d / "expected.npy")) < 1e-5


def test_fix_under_asan(milk_asan, tmp_path):
    d = FIXTURES / "upsampler_small"
    out = tmp_path / "fixed.mlpackage"
    r = subprocess.run([milk_asan, "lint", str(d / "model_fp16.mlpackage"), "--fix", "-o",
                        str(out), "--simplify", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["fixed"] == 8


# ---- the rule table and docs/defects.md ---------------------------------------------------------


def defect_ids():
    """Every id in the first column of the tables of docs/coreml-defects.md."""
    ids = []
    for line in (DOCS / "coreml-defects.md").read_text().splitlines():
        m = re.match(r"\|\s*([a-z0-9][a-z0-9-]*)\s*\|", line)
        if m and m.group(1) != "id":
            ids.append(m.group(1))
    return ids


def test_every_documented_defect_has_a_rule(milk):
    ids = defect_ids()
    assert len(ids) >= 29 and "convt1d-bias" in ids and "io-types" in ids
    r = lint(milk, "--list-rules", "--json")
    assert r.returncode == 0
    table = {row["id"]: row for row in json.loads(r.stdout)}
    assert set(ids) == set(table)
    for row in table.values():
        assert row["action"] in ("rewrite", "warn", "refuse")
        assert row["severity"] in ("error", "warning", "info")
        assert row["condition"] and row["scope"] and row["source"] and row["fix"]


def test_defects_md_is_generated_from_the_table(milk):
    r = lint(milk, "--list-rules", "--markdown")
    assert r.returncode == 0
    committed = (DOCS / "defects.md").read_text()
    assert committed == r.stdout, "regenerate: milk lint --list-rules --markdown > docs/defects.md"
    for i in defect_ids():
        assert f"| `{i}` |" in committed, i
