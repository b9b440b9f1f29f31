"""make bench: milk's figures next to ONNX Runtime's and `cp`'s on the same
machine, measured side by side in one run, with the ratios. A benchmark,
not a test: it prints, it asserts nothing about time.

  interpreter  six models (bench/models.py: resnet18, mobilenet_v3_small,
               efficientnet_b0, squeezenet1_1, a GPT-2-style block, a
               Whisper-style stem; fp32 packages converted by milk) run by
               milk's interpreter (bench/bench_run.c) and by ONNX Runtime's
               CPU provider on the same .onnx (bench/ort_run.js, through
               npm's onnxruntime-node), one thread each, alternating, each
               side's best median of ROUNDS rounds of N runs
  threads      resnet18 with 2 threads against 1
  milk run     whole-process time and peak RSS of `milk run` on resnet18,
               against its weight bytes plus its two largest activations
  verify       `milk verify` against a reference holding every intermediate,
               against a plain `milk run` (whole process, best of 5)
  convert      resnet18, and a model with a 1.2 GB Linear layer, converted
               at fp32 and fp16: time and peak memory vs `cp` of the .onnx

ONNX Runtime is installed on first use into build/bench-node with
`npm install --ignore-scripts onnxruntime-node` (its CPU library ships in
the package); without npm the ONNX Runtime columns are left out.

Run from the repository root: /usr/bin/python3 bench/run.py [--quick]
(--quick skips the 1.2 GB model)."""
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import models  # noqa: E402  (bench/models.py)

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("MILK_BUILD", ROOT / "build"))
MILK = str(BUILD / "milk")
WORK = BUILD / "bench-data"
NODE_DIR = BUILD / "bench-node"
ENV1 = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
ROUNDS, N = 3, 10


LAST_CPU = [0.0]  # CPU seconds (user + system) of the last measured command


def run_measured(args, env=None):
    """Run a command; return (seconds, peak RSS in MB, stdout), and leave
    its CPU seconds in LAST_CPU. Peak memory comes from GNU time: a child
    forked from this Python process would count the parent's pages in its
    maximum RSS until it execs."""
    rss_file = WORK / "rss.txt"
    os.sync()  # earlier writes still in flight would slow this one down
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", str(rss_file)] +
                       list(map(str, args)), capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t0
    if p.returncode not in (0, 1) or (p.returncode == 1 and "verify" not in map(str, args)):
        sys.exit(f"bench: {' '.join(map(str, args))} failed:\n{p.stderr}")
    user, system, rss = rss_file.read_text().split()[-3:]
    LAST_CPU[0] = float(user) + float(system)
    return secs, int(rss) / 1024.0, p.stdout


def best_cpu_of(n, args, env=None):
    """Wall seconds, peak MB (best of n by wall) and the least CPU seconds."""
    runs = []
    for _ in range(n):
        r = run_measured(args, env)
        runs.append((r, LAST_CPU[0]))
    best = min(runs, key=lambda x: x[0][0])[0]
    return best[0], best[1], min(c for _, c in runs)


def best_of(n, fn):
    """The fastest of n runs (time, peak RSS, stdout): noise only ever adds
    time."""
    return min((fn() for _ in range(n)), key=lambda r: r[0])


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


# ---- ONNX Runtime -------------------------------------------------------------

def ort_available():
    mod = NODE_DIR / "node_modules" / "onnxruntime-node"
    if mod.exists():
        return True
    if not shutil.which("npm") or not shutil.which("node"):
        print("  (no node/npm: ONNX Runtime columns left out)")
        return False
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund",
                        "--prefix", str(NODE_DIR), "onnxruntime-node"],
                       capture_output=True, text=True)
    if r.returncode != 0 or not mod.exists():
        print(f"  (npm install onnxruntime-node failed: ONNX Runtime columns left out)\n{r.stderr[-500:]}")
        return False
    return True


def ort_time(onnx_path, x_path, n=N, threads=1):
    env = dict(ENV1, NODE_PATH=str(NODE_DIR / "node_modules"))
    _, _, out = run_measured(["node", ROOT / "bench" / "ort_run.js", onnx_path, x_path,
                              n, threads], env=env)
    return json.loads(out)


def milk_bench(pkg, x_path, n=N, extra=()):
    args = [BUILD / "bench" / "bench_run", pkg, n, "--input", f"x={x_path}"] + list(extra)
    _, _, out = run_measured(args, env=ENV1)
    return json.loads(out)


# ---- the interpreter against ONNX Runtime ------------------------------------

def prepare_models():
    d = WORK / "models"
    models.export_all(d)
    pkgs = {}
    for name, _, _ in models.models():
        pkg = d / f"{name}.mlpackage"
        if not pkg.exists():
            subprocess.run([MILK, "convert", d / f"{name}.onnx", "-o", pkg, "--precision",
                            "fp32"], check=True, capture_output=True)
        pkgs[name] = (d / f"{name}.onnx", pkg, d / f"{name}.x.npy")
    return pkgs


def bench_interpreter(pkgs):
    print(f"interpreter vs ONNX Runtime (CPU provider), 1 thread each; "
          f"best median of {ROUNDS} alternating rounds of {N} runs; wall time, and the\n"
          f"  CPU time of each process per run (steadier when the machine is shared: "
          f"load average {os.getloadavg()[0]:.1f})")
    have_ort = ort_available()
    ratios, cpu_ratios = [], []
    print(f"  {'model':<20} {'milk ms':>9} {'ORT ms':>9} {'milk/ORT':>9}"
          f" {'milk cpu':>9} {'ORT cpu':>9} {'cpu ratio':>9}")
    for name, (onnx_path, pkg, x) in pkgs.items():
        mk, ot = [], []
        for _ in range(ROUNDS):
            mk.append(milk_bench(pkg, x))
            if have_ort:
                ot.append(ort_time(onnx_path, x))
        m = min(r["median_ms"] for r in mk)
        mc = min(r["cpu_ms"] for r in mk)
        if have_ort:
            o = min(r["median_ms"] for r in ot)
            oc = min(r["cpu_ms"] for r in ot)
            ratios.append(m / o)
            cpu_ratios.append(mc / oc)
            print(f"  {name:<20} {m:9.2f} {o:9.2f} {m / o:9.2f} {mc:9.2f} {oc:9.2f} {mc / oc:9.2f}")
        else:
            print(f"  {name:<20} {m:9.2f} {'':9} {'':9} {mc:9.2f}")
    if ratios:
        print(f"  {'geometric mean':<20} {'':9} {'':9} {geomean(ratios):9.2f}"
              f" {'':9} {'':9} {geomean(cpu_ratios):9.2f}")


def bench_threads(pkgs):
    _, pkg, x = pkgs["resnet18"]
    one, two = [], []
    for _ in range(ROUNDS):
        one.append(milk_bench(pkg, x)["median_ms"])
        two.append(milk_bench(pkg, x, extra=["--threads", "2"])["median_ms"])
    print(f"threads: resnet18 1 thread {min(one):.2f} ms, 2 threads {min(two):.2f} ms,"
          f" speed-up {min(one) / min(two):.2f}x")


def bench_process(pkgs):
    _, pkg, x = pkgs["resnet18"]
    out = WORK / "r18_out.npz"
    secs, rss, cpu = best_cpu_of(5, [MILK, "run", pkg, "--input", f"x={x}", "--output", out],
                                 env=ENV1)
    weights = sum(f.stat().st_size for f in (pkg / "Data").rglob("*.bin"))
    act2 = milk_bench(pkg, x, n=1)["act2_bytes"]
    bound = 1.5 * (weights + act2) / 2**20
    print(f"milk run resnet18 (whole process, best of 5): {secs:.3f} s wall, {cpu:.3f} s CPU;"
          f" peak RSS {rss:.0f} MB against 1.5 x (weights {weights / 2**20:.0f} MB + two largest"
          f" activations {act2 / 2**20:.1f} MB) = {bound:.0f} MB: {rss / bound:.2f}")


def bench_verify(pkgs):
    _, pkg, x = pkgs["resnet18"]
    ref = WORK / "r18_all.npz"
    subprocess.run([MILK, "run", pkg, "--input", f"x={x}", "--output", ref, "--keep-all"],
                   check=True, capture_output=True, env=ENV1)
    plain, _, plain_cpu = best_cpu_of(5, [MILK, "run", pkg, "--input", f"x={x}", "--output",
                                          WORK / "r18_out.npz"], env=ENV1)
    ver, _, ver_cpu = best_cpu_of(5, [MILK, "verify", pkg, "--reference", ref], env=ENV1)
    inproc = min(milk_bench(pkg, x)["cpu_ms"] for _ in range(ROUNDS))
    keep = min(milk_bench(pkg, x, extra=["--keep-all"])["cpu_ms"] for _ in range(ROUNDS))
    print(f"verify resnet18, every intermediate compared, against a plain milk run (whole"
          f" processes): wall {ver:.3f} s / {plain:.3f} s = {ver / plain:.2f}x, CPU"
          f" {ver_cpu:.3f} s / {plain_cpu:.3f} s = {ver_cpu / plain_cpu:.2f}x; in process, a run"
          f" keeping every value {keep:.2f} ms CPU against {inproc:.2f} ms: {keep / inproc:.2f}x")


# ---- convert ---------------------------------------------------------------------

def convert(onnx_path, out, precision, n=3):
    return best_of(n, lambda: run_measured([MILK, "convert", str(onnx_path), "-o", str(out),
                                            "--precision", precision]))


def export(module, x, path):
    module.eval()
    torch.onnx.export(module, x, str(path), opset_version=13,
                      input_names=["x"], output_names=["y"])


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


def bench_convert(pkgs, quick):
    print("convert (wall time and peak RSS, best of 3)")
    onnx_path = pkgs["resnet18"][0]
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
    pkgs = prepare_models()
    bench_interpreter(pkgs)
    bench_threads(pkgs)
    bench_process(pkgs)
    bench_verify(pkgs)
    bench_convert(pkgs, "--quick" in sys.argv)


if __name__ == "__main__":
    main()
