"""A tiny GPT-style decoder with a static KV cache, for the --state tests.

GPT keeps its cache in buffers updated in place at a position input (the
stateful model, run step by step in PyTorch as the reference); Export is
what ONNX sees of it: the caches as inputs and the updated caches as
outputs. One step takes T tokens at positions pos .. pos + T - 1 (T > 1: a
prefill, T = 1: a decode step); attention reads the whole cache, masked
past each token's position."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h, self.hd = h, d // h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, positions, k_cache, v_cache, mask):
        """x [1, T, d]; k_cache, v_cache [1, h, S, hd], written in place."""
        t = x.shape[1]
        q, k, v = self.qkv(self.ln1(x)).split(x.shape[-1], dim=-1)
        q, k, v = (z.view(1, t, self.h, self.hd).transpose(1, 2) for z in (q, k, v))
        k_cache[:, :, positions] = k
        v_cache[:, :, positions] = v
        att = (q @ k_cache.transpose(-2, -1)) / math.sqrt(self.hd)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v_cache).transpose(1, 2).reshape(1, t, -1)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab=64, d=32, h=2, layers=2, ctx=32):
        super().__init__()
        self.ctx, self.h, self.hd, self.n_layers = ctx, h, d // h, layers
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(layers))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        for name in self.cache_names():
            self.register_buffer(name, torch.zeros(1, h, ctx, self.hd))

    def cache_names(self):
        return [f"{kv}{i}" for i in range(self.n_layers) for kv in "kv"]

    def step(self, tok, pos, caches):
        positions = pos + torch.arange(tok.shape[1])
        x = self.tok(tok) + self.pos(positions)
        mask = torch.arange(self.ctx)[None, :] <= positions[:, None]  # [T, S]
        for i, b in enumerate(self.blocks):
            x = b(x, positions, caches[2 * i], caches[2 * i + 1], mask)
        return self.head(self.ln(x))

    def forward(self, tok, pos):
        """The stateful model: the buffers are the cache."""
        return self.step(tok, pos, [getattr(self, n) for n in self.cache_names()])


class Export(nn.Module):
    """The model as ONNX sees it: caches in, updated caches out."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt = gpt

    def forward(self, tok, pos, *caches):
        caches = [c.clone() for c in caches]
        return (self.gpt.step(tok, pos, caches), *caches)


def export(gpt, path, tokens=1):
    """ONNX of one step of `tokens` tokens: inputs tok [1, T] and pos [1]
    (int64) and the caches NAME_in; outputs logits and NAME_out. Returns
    the --state pairs."""
    names = gpt.cache_names()
    args = (torch.zeros(1, tokens, dtype=torch.int64), torch.tensor([0])) + tuple(
        torch.zeros(1, gpt.h, gpt.ctx, gpt.hd) for _ in names)
    torch.onnx.export(Export(gpt), args, str(path), input_names=["tok", "pos"] +
                      [f"{n}_in" for n in names], output_names=["logits"] +
                      [f"{n}_out" for n in names], opset_version=17)
    return [f"{n}_in={n}_out" for n in names]
