#!/usr/bin/python3
"""nanoGPT's CPU recipe for tiny shakespeare in plain PyTorch: the baseline ember-train is measured against.

The model and training loop follow nanoGPT (model.py / train.py, config/train_shakespeare_char.py with
the README's CPU overrides): n_layer 4, n_head 4, n_embd 128, block 64, batch 12, 2000 iterations,
AdamW lr 1e-3 (warmup 100, cosine to 1e-4), beta2 0.99, weight decay 0.1 on every 2-D tensor, grad
clip 1, dropout 0, GELU (erf), tied LM head, GPT-2 initialisation. --bias adds the biases ember's
model always has (nanoGPT's default is bias=False).

Prints ms/iter, the 20-batch loss estimate nanoGPT reports, and the full validation split's mean NLL
measured like ember-perplexity (non-overlapping 64-character windows, every character after the first
of a window predicted), so the two implementations can be compared on the same machine:

    /usr/bin/python3 tools/ember-train/nanogpt_baseline.py --data ../shared/data/text/tinyshakespeare.txt

For timing use a stock PyTorch build: Debian's python3-torch 1.13 on the development machine ran this
at 0.4 - 2.5 s/iter (nanoGPT's README reports 87 ms/iter for the recipe), too slow for a full run there.
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, bias):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, elementwise_affine=True)
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = nn.Linear(C, C, bias=bias)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.mlp_proj = nn.Linear(4 * C, C, bias=bias)
        if not bias:
            self.ln_1.bias = None
            self.ln_2.bias = None

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(F, "scaled_dot_product_attention") else \
            ((q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))).masked_fill(
                ~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf")).softmax(-1) @ v
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, V, T, C, H, L, bias):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block(C, H, bias) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        if not bias:
            self.ln_f.bias = None
        self.lm_head = nn.Linear(C, V, bias=False)
        self.wte.weight = self.lm_head.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        for n, p in self.named_parameters():
            if n.endswith("c_proj.weight") or n.endswith("mlp_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))

    def forward(self, idx, targets=None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.h:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--bias", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    T, B = 64, 12
    model = GPT(len(chars), T, 128, 4, 4, a.bias)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))

    def get_batch(d):
        ix = torch.randint(len(d) - T, (B,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])

    def lr_at(it):
        if it < 100:
            return 1e-3 * (it + 1) / 101
        r = (it - 100) / (a.iters - 100)
        return 1e-4 + 0.5 * (1 + math.cos(math.pi * r)) * (1e-3 - 1e-4)

    times = []
    for it in range(a.iters):
        t0 = time.time()
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = get_batch(train)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.time() - t0)
        if (it + 1) % 250 == 0:
            print(f"iter {it + 1}: loss {loss.item():.4f}, {1e3 * np.mean(times[-250:]):.1f} ms/iter", flush=True)
    model.eval()
    with torch.no_grad():
        est = np.mean([model(*get_batch(val)).item() for _ in range(20)])
        nll, cnt = 0.0, 0
        for w in range(0, len(val), T):
            win = val[w:w + T]
            if len(win) < 2:
                break
            logits = model(win[None, :-1])[0]
            nll += F.cross_entropy(logits, win[1:], reduction="sum").item()
            cnt += len(win) - 1
    print(f"done: {np.mean(times) * 1e3:.1f} ms/iter (median {np.median(times) * 1e3:.1f}); val loss estimate (20 batches) "
          f"{est:.4f}; full val mean NLL {nll / cnt:.4f} over {cnt} characters")


if __name__ == "__main__":
    main()
