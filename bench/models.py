"""The models `make bench` compares milk's interpreter with ONNX Runtime on:
four torchvision CNNs, a GPT-2-style transformer block and a Whisper-style
audio stem, with random weights (time does not depend on their values),
exported to ONNX at fp32 with a fixed batch of 1.

  /usr/bin/python3 bench/models.py OUT_DIR

writes OUT_DIR/NAME.onnx and OUT_DIR/NAME.x.npy (a fixed random input) for
each model, skipping files that exist. Not a test."""
import math
import pathlib
import sys

import numpy as np
import torch


class GPT2Block(torch.nn.Module):
    """One pre-norm GPT-2 block: causal self-attention (12 heads... here 4
    heads of 32) and a 4x GELU MLP, d=128, on T=16 tokens."""

    def __init__(self, d=128, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(d)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d)
        self.fc = torch.nn.Linear(d, 4 * d)
        self.out = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q = q.reshape(b, t, h, d // h).transpose(1, 2)
        k = k.reshape(b, t, h, d // h).transpose(1, 2)
        v = v.reshape(b, t, h, d // h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h))
        mask = torch.triu(torch.full((t, t), float("-inf")), diagonal=1)
        att = torch.softmax(att + mask, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(y)
        return x + self.out(torch.nn.functional.gelu(self.fc(self.ln2(x))))


class WhisperStem(torch.nn.Module):
    """Whisper's audio encoder stem (tiny: 80 mel bins, d=384): two 1-D
    convolutions with GELU, the second of stride 2, plus the positional
    embedding, on 3000 frames (30 s)."""

    def __init__(self, mels=80, d=384, frames=3000):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(mels, d, 3, padding=1)
        self.conv2 = torch.nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.pos = torch.nn.Parameter(torch.randn(frames // 2, d) * 0.02)

    def forward(self, x):
        x = torch.nn.functional.gelu(self.conv1(x))
        x = torch.nn.functional.gelu(self.conv2(x))
        return x.permute(0, 2, 1) + self.pos


def models():
    import torchvision
    tv = torchvision.models
    img = (1, 3, 224, 224)
    return [
        ("resnet18", lambda: tv.resnet18(), img),
        ("mobilenet_v3_small", lambda: tv.mobilenet_v3_small(), img),
        ("efficientnet_b0", lambda: tv.efficientnet_b0(), img),
        ("squeezenet1_1", lambda: tv.squeezenet1_1(), img),
        ("gpt2_block", lambda: GPT2Block(), (1, 16, 128)),
        ("whisper_stem", lambda: WhisperStem(), (1, 80, 3000)),
    ]


def export_all(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, make, shape in models():
        onnx_path, x_path = out / f"{name}.onnx", out / f"{name}.x.npy"
        if onnx_path.exists() and x_path.exists():
            continue
        torch.manual_seed(0)
        m = make().eval()
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.onnx.export(m, x, str(onnx_path), opset_version=17,
                              input_names=["x"], output_names=["y"])
        np.save(x_path, x.numpy())


if __name__ == "__main__":
    export_all(sys.argv[1] if len(sys.argv) > 1 else "build/bench-data/models")
