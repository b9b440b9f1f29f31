"""examples/convt1d_2d.c builds BigVGAN's ConvTranspose1d(768 -> 384, k=7,
s=3, p=2) in its 2-D form with the public API. The test loads the saved
package back, checks every type against PyTorch's shapes, and runs it
against torch.nn.ConvTranspose1d with the same weights (regenerated here
from the example's fixed-seed generator)."""
import subprocess

import numpy as np
import pytest
import torch

from conftest import BUILD


def xorshift_weights(n, scale, seed):
    """The example's fill_random(): xorshift32, values in [-scale, scale)."""
    out = np.empty(n, np.float32)
    s = seed
    for i in range(n):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        out[i] = np.float32(scale) * (np.float32(s >> 8) / np.float32(1 << 23) - np.float32(1))
    return out


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("ex") / "convt1d_2d.mlpackage"
    r = subprocess.run([str(BUILD / "examples" / "convt1d_2d"), str(out), "40"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def test_types_match_pytorch(milk, package):
    length = 40
    y = torch.nn.ConvTranspose1d(768, 384, 7, stride=3, padding=2)(torch.zeros(1, 768, length))
    n = y.shape[-1]  # (40 - 1) * 3 - 2 * 2 + 7 = 120
    dump = subprocess.run([milk, "dump", str(package)], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    text = dump.stdout
    assert f"func main<ios17>(tensor<fp32, [1, 768, {length}]> x)" in text
    assert f"tensor<fp32, [1, 768, {length}, 1]> x_2d = expand_dims(" in text
    assert "tensor<fp32, [768, 384, 7, 1]> up_weight = const()" in text
    assert f"tensor<fp32, [1, 384, {n}, 1]> up_2d = conv_transpose(" in text
    assert f"tensor<fp32, [1, 384, {n}]> y = squeeze(" in text
    assert "-> (y);" in text


def test_output_matches_conv_transpose_1d(milk, package, tmp_path):
    w = xorshift_weights(768 * 384 * 7, 0.05, 12345).reshape(768, 384, 7)
    b = xorshift_weights(384, 0.5, 678)
    m = torch.nn.ConvTranspose1d(768, 384, 7, stride=3, padding=2)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(w))
        m.bias.copy_(torch.from_numpy(b))
    x = np.random.default_rng(0).standard_normal((1, 768, 40)).astype(np.float32)
    want = m(torch.from_numpy(x)).detach().numpy()
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([milk, "run", str(package), "--input", f"x={tmp_path / 'x.npy'}",
                        "--output", str(tmp_path / "o.npz")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "o.npz")["y"]
    err = np.max(np.abs(got - want)) / np.max(np.abs(want))
    assert err < 1e-5, err
