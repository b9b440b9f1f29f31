"""make bench: milk's figures next to PyTorch's and coremltools' on the same
machine, with the ratios. A benchmark, not a test: it prints, it asserts
nothing about time.

  interpreter  resnet18 (torchvision, random weights, batch 1, 224x224) and
               the upsampler fixture: milk's interpreter vs PyTorch, 1 thread
  convert      resnet18, and a model with a 1.2 GB Linear layer, converted
               at fp32 and fp16: time and peak memory vs `cp` of the .onnx

Run from the repository root: /usr/bin/python3 bench/run.py [--quick]
(--quick skips the 1.2 GB model)."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("MILK_BUILD", ROOT / "build"))
MILK = str(BUILD / "milk")
WORK = BUILD / "bench-data"
ENV1 = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def run_measured(args, env=None):
    """Run a command; return (seconds, peak RSS in MB, stdout). Peak memory
    comes from GNU time: a child forked from this Python process would
    count the parent's pages in its maximum RSS until it execs."""
    rss_file = WORK / "rss.txt"
    os.sync()  # earlier writes still in flight would slow this one down
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] + list(map(str, args)),
                       capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, args))} failed:\n{p.stderr}")
    return secs, int(rss_file.read_text().split()[-1]) / 1024.0, p.stdout


def torch_time(module, x, n=10):
    torch.set_num_threads(1)
    with torch.no_grad():
        module(x)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1e3


def milk_time(pkg, n=10, inputs=()):
    args = [str(BUILD / "bench" / "bench_run"), str(pkg), str(n)]
    for spec in inputs:
        args += ["--input", spec]
    _, _, out = run_measured(args, env=ENV1)
    return json.loads(out)["median_ms"]


def has_convert():
    r = subprocess.run([MILK, "--help"], capture_output=True, text=True)
    return "convert" in r.stdout


def best_of(n, fn):
    """The fastest of n runs (time, peak RSS, stdout): file-system noise only
    ever adds time."""
    return min((fn() for _ in range(n)), key=lambda r: r[0])


def convert(onnx_path, out, precision, n=3):
    return best_of(n, lambda: run_measured([MILK, "convert", str(onnx_path), "-o", str(out),
                                            "--precision", precision]))


def export(module, x, path):
    module.eval()
    torch.onnx.export(module, x, str(path), opset_version=13,
                      input_names=["x"], output_names=["y"])


def row(name, milk_ms, ref_ms, ref_name):
    print(f"  {name:<28} milk {milk_ms:9.2f} ms   {ref_name} {ref_ms:9.2f} ms"
          f"   ratio {milk_ms / ref_ms:6.2f}")


def upsampler_module():
    """The upsampler fixture's architecture (tests/fixtures/coremltools/
    upsampler_small: shapes read off its program), with random weights: the
    time does not depend on their values."""
    torch.manual_seed(0)
    layers = []
    for cin, cout, k, s, p in [(32, 16, 16, 8, 4), (16, 8, 16, 8, 4),
                               (8, 4, 4, 2, 1), (4, 2, 4, 2, 1)]:
        layers += [torch.nn.ConvTranspose1d(cin, cout, k, s, p), torch.nn.LeakyReLU(0.1),
                   torch.nn.Conv1d(cout, cout, 7, padding=3)]
    return torch.nn.Sequential(*layers).eval()


def bench_interpreter():
    print("interpreter (1 thread, median of 10 runs)")
    d = ROOT / "tests/fixtures/coremltools/upsampler_small"
    x = np.load(d / "x.npy")
    row("upsampler_small fp32", milk_time(d / "model_fp32.mlpackage", 20, [f"x={d / 'x.npy'}"]),
        torch_time(upsampler_module(), torch.from_numpy(x), 20), "torch")
    if not has_convert():
        print("  resnet18: needs `milk convert` (not built yet)")
        return
    import torchvision
    torch.manual_seed(0)
    m = torchvision.models.resnet18().eval()
    x = torch.randn(1, 3, 224, 224)
    onnx_path = WORK / "resnet18.onnx"
    if not onnx_path.exists():
        export(m, x, onnx_path)
    pkg = WORK / "resnet18_fp32.mlpackage"
    convert(onnx_path, pkg, "fp32")
    np.save(WORK / "resnet_x.npy", x.numpy())
    row("resnet18 fp32 224x224", milk_time(pkg, 10, [f"x={WORK / 'resnet_x.npy'}"]),
        torch_time(m, x), "torch")


class BigLinear(torch.nn.Module):
    """AdaptiveAvgPool2d((128,72)), Flatten, Linear(16*2*128*72, 1024),
    BatchNorm1d, ReLU, Dropout, Linear(1024, 512), ReLU on 1x32x256x144: the
    1.2 GB Linear of the issue."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.AdaptiveAvgPool2d((128, 72)), torch.nn.Flatten(),
            torch.nn.Linear(16 * 2 * 128 * 72, 1024), torch.nn.BatchNorm1d(1024),
            torch.nn.ReLU(), torch.nn.Dropout(), torch.nn.Linear(1024, 512), torch.nn.ReLU())

    def forward(self, x):
        return self.net(x)


def cp_time(path):
    dst = WORK / "cp-copy.onnx"

    def once():
        r = run_measured(["cp", str(path), str(dst)])
        dst.unlink()
        return r
    secs, rss, _ = best_of(3, once)
    return secs, rss


def bench_convert(quick):
    print("convert (wall time and peak RSS, best of 3)")
    if not has_convert():
        print("  needs `milk convert` (not built yet)")
        return
    onnx_path = WORK / "resnet18.onnx"
    for prec in ("fp32", "fp16"):
        secs, rss, _ = convert(onnx_path, WORK / f"r18_{prec}.mlpackage", prec)
        cps, _ = cp_time(onnx_path)
        print(f"  resnet18 {prec:<5} milk {secs:7.2f} s {rss:8.0f} MB   cp {cps:6.2f} s"
              f"   ratio {secs / cps:6.2f}")
    if quick:
        return
    big = WORK / "big_linear.onnx"
    if not big.exists():
        torch.manual_seed(0)
        export(BigLinear(), torch.randn(1, 32, 256, 144), big)
    size_gb = big.stat().st_size / 1e9
    cps, _ = cp_time(big)
    coreml = {"fp32": (6.1, 2.7), "fp16": (27.0, 11.0)}
    for prec in ("fp32", "fp16"):
        secs, rss, _ = convert(big, WORK / f"big_{prec}.mlpackage", prec)
        ct_s, ct_gb = coreml[prec]
        print(f"  big linear ({size_gb:.2f} GB) {prec}: milk {secs:6.2f} s {rss:7.0f} MB"
              f"   cp {cps:5.2f} s (ratio {secs / cps:5.2f})"
              f"   coremltools {ct_s} s {ct_gb} GB (ratio {secs / ct_s:5.3f})")
        shutil.rmtree(WORK / f"big_{prec}.mlpackage")


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"milk bench on {os.cpu_count()} cores; torch {torch.__version__}")
    bench_interpreter()
    bench_convert("--quick" in sys.argv)


if __name__ == "__main__":
    main()
