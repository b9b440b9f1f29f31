"""`milk diff`: a unified diff of two programs' model.mil text, constants
compared by content. Checked by applying the printed hunks to A's text
(`milk dump --hash`) and getting B's text back exactly."""
import re
import subprocess

from conftest import FIXTURES


def dump_hash(milk, pkg):
    r = subprocess.run([milk, "dump", str(pkg), "--hash"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def apply_unified(a_lines, diff_text):
    """Apply unified hunks to a list of lines (an independent patcher)."""
    out, pos = [], 0
    body = diff_text.splitlines()[2:]  # skip the --- / +++ header
    i = 0
    while i < len(body):
        m = re.match(r"@@ -(\d+),(\d+) \+(\d+),(\d+) @@", body[i])
        assert m, body[i]
        start = int(m.group(1)) - 1
        out += a_lines[pos:start]
        pos = start
        i += 1
        while i < len(body) and not body[i].startswith("@@"):
            tag, text = body[i][0], body[i][1:]
            if tag in " -":
                assert a_lines[pos] == text, (a_lines[pos], text)
                pos += 1
            if tag in " +":
                out.append(text)
            i += 1
    return out + a_lines[pos:]


def run_diff(milk, a, b, *extra):
    return subprocess.run([milk, "diff", str(a), str(b), *extra], capture_output=True, text=True)


def test_same_program_no_diff(milk):
    pkg = FIXTURES / "resblock" / "model_fp32.mlpackage"
    r = run_diff(milk, pkg, pkg)
    assert r.returncode == 0 and r.stdout == ""


def test_lint_fix_diff_applies(milk, tmp_path):
    src = FIXTURES / "upsampler_small" / "model_fp32.mlpackage"
    fixed = tmp_path / "fixed.mlpackage"
    subprocess.run([milk, "lint", str(src), "--fix", "-o", str(fixed)], capture_output=True, check=True)
    for ctx in ("3", "0", "10"):
        r = run_diff(milk, src, fixed, "-U", ctx)
        assert r.returncode == 1, r.stderr
        assert "-" in r.stdout and "output_shape" in r.stdout
        assert apply_unified(dump_hash(milk, src), r.stdout) == dump_hash(milk, fixed)


def test_fp32_vs_fp16_diff_applies(milk):
    d = FIXTURES / "mlp_bn"
    a, b = d / "model_fp32.mlpackage", d / "model_fp16.mlpackage"
    r = run_diff(milk, a, b)
    assert r.returncode == 1
    assert apply_unified(dump_hash(milk, a), r.stdout) == dump_hash(milk, b)


def test_weights_compared_by_content(milk, tmp_path):
    """The same program converted again (weights in another file) is
    identical; a different weight is a changed line."""
    d = FIXTURES / "conv2d_edge"
    one, two = tmp_path / "a.mlpackage", tmp_path / "b.mlpackage"
    for out in (one, two):
        subprocess.run([milk, "convert", str(d / "model.onnx"), "-o", str(out), "--precision", "fp32"],
                       capture_output=True, check=True)
    assert run_diff(milk, one, two).returncode == 0
    r = run_diff(milk, one, d / "model_fp32.mlpackage")
    assert r.returncode == 1  # names and layout differ from coremltools'


def test_errors(milk, tmp_path):
    r = run_diff(milk, tmp_path / "nope.mlpackage", FIXTURES / "mlp_bn" / "model_fp32.mlpackage")
    assert r.returncode == 2 and "nope.mlpackage" in r.stderr
    r = subprocess.run([milk, "diff", "only-one"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
