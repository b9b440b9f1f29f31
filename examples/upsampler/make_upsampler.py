"""Makes the bundled example: a small BigVGAN-style upsampler (the vocoder
stage of Qwen2.5-Omni and BigVGAN: transposed 1-D convolutions that raise
the sample rate, each followed by LeakyReLU and a 1-D convolution),
exported from PyTorch to ONNX, with an input and PyTorch's output.

    /usr/bin/python3 examples/upsampler/make_upsampler.py

writes model.onnx, x.npy and reference.npz ({"x": input, "y": PyTorch's
output}) beside this file. Seeded: the same files every time."""
import pathlib

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent


class Upsampler(torch.nn.Module):
    # (in, out, kernel, stride, padding) of each ConvTranspose1d; the second
    # has BigVGAN's k=7, s=3, p=2, the shape of the Neural Engine bias defect
    STAGES = [(64, 32, 16, 8, 4), (32, 16, 7, 3, 2), (16, 8, 4, 2, 1)]

    def __init__(self):
        super().__init__()
        layers = []
        for cin, cout, k, s, p in self.STAGES:
            layers += [torch.nn.ConvTranspose1d(cin, cout, k, s, p),
                       torch.nn.LeakyReLU(0.1),
                       torch.nn.Conv1d(cout, cout, 7, padding=3)]
        layers += [torch.nn.LeakyReLU(0.1), torch.nn.Conv1d(8, 1, 7, padding=3),
                   torch.nn.Tanh()]
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def main():
    torch.manual_seed(0)
    model = Upsampler().eval()
    x = torch.randn(1, 64, 32)
    with torch.no_grad():
        y = model(x)
    torch.onnx.export(model, x, str(HERE / "model.onnx"), opset_version=17,
                      input_names=["x"], output_names=["y"])
    np.save(HERE / "x.npy", x.numpy())
    np.savez(HERE / "reference.npz", x=x.numpy(), y=y.numpy())
    print(f"wrote model.onnx, x.npy, reference.npz: x {tuple(x.shape)} -> y {tuple(y.shape)}")


if __name__ == "__main__":
    main()
