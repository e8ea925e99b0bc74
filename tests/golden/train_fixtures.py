#!/usr/bin/python3
"""Trains the four golden fixture architectures on tiny shakespeare (PyTorch, CPU).

Writes tests/golden/trained/<name>.safetensors: float32 weights under this script's module names
(nn.Linear layout [out, in]; tied models store only wte.weight), with the training settings and
final losses in the file's metadata. tests/golden/make_golden.py reads these files, converts them
to each fixture's naming and dtype and computes the golden outputs with its own numpy forward.

Why trained: random-weight fixtures are nothing like real models (near-ties everywhere, held-out
perplexity in the thousands, extreme sensitivity to any rounding); trained ones make confident
predictions and have meaningful held-out perplexities. (They still pass near-ties on their greedy
paths, where int8 may choose differently: tests/golden/README.md.)

Run:   nice /usr/bin/python3 tests/golden/train_fixtures.py [name ...]   (then make_golden.py)
Needs: torch + numpy (/usr/bin/python3 has both). Data: train on the first 90% of
/work/shared/data/text/tinyshakespeare.txt, mapped into each fixture's ids (make_golden.VOCABS);
the val loss (float32) is measured on the last 10%, which also holds the golden text.

Matmuls run under bf16 autocast (oneDNN): Debian's torch uses the reference BLAS, with which the
float32 steps were ~7x slower. Weights, optimizer state and loss are float32, and the float32
weights are saved.

Deterministic: one thread (torch.set_num_threads(1)), torch.manual_seed(seed) for the init, batch
offsets from numpy default_rng(seed), no dropout: re-running on the same machine and torch build
reproduces byte-identical files (checked with torch 1.13 / numpy 1.24.2 on x86-64 with AVX-512
BF16 / AMX). A different CPU or torch build may round differently, which is why the trained
weights are committed.
"""

import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as mg  # noqa: E402  (numpy only: shared model table, vocabularies, safetensors writer)

# Training settings, the same for every fixture.
STEPS = 2000
BATCH = 32            # sequences of n_ctx tokens per step
# AdamW peak learning rate; linear warmup, then cosine decay to a tenth of it. The 3-layer post-LN
# GELU model stalls near 3.3 nats/char at 1e-2 (post-LN's known sensitivity), so it trains at 3e-3.
LR = {"gpt2": 1e-2, "openai_gpt": 3e-3, "gpt1_relu": 1e-2, "nanogpt": 1e-2}
WARMUP = 50
WEIGHT_DECAY = 0.1    # matrices and embeddings only (not LayerNorm gains/biases, not biases)
BETAS = (0.9, 0.99)
GRAD_CLIP = 1.0
INIT_STD = 0.02       # GPT-2 init: N(0, 0.02) weights and embeddings, residual projections / sqrt(2L)


class LayerNorm(nn.Module):
    def __init__(self, C, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, mg.LN_EPS)


class Attention(nn.Module):
    def __init__(self, C, H, bias):
        super().__init__()
        self.H = H
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)  # output rows Q | K | V, heads contiguous blocks
        self.c_proj = nn.Linear(C, C, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        hd = C // self.H
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, hd).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
        y = torch.softmax(s, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, C, act, bias):
        super().__init__()
        self.act = act
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.c_proj = nn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        h = self.c_fc(x)
        if self.act == "gelu_tanh":
            h = F.gelu(h, approximate="tanh")
        elif self.act == "gelu_erf":
            h = F.gelu(h)
        else:
            h = F.relu(h)
        return self.c_proj(h)


class Block(nn.Module):
    def __init__(self, m):
        super().__init__()
        bias = mg.model_has_bias(m)
        self.pre_ln = m["pre_ln"]
        self.ln_1 = LayerNorm(m["C"], bias)
        self.attn = Attention(m["C"], m["H"], bias)
        self.ln_2 = LayerNorm(m["C"], bias)
        self.mlp = MLP(m["C"], m["act"], bias)

    def forward(self, x):
        if self.pre_ln:  # GPT-2 / nanoGPT
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))
        n = self.ln_1(x + self.attn(x))  # GPT-1
        return self.ln_2(n + self.mlp(n))


class GPT(nn.Module):
    def __init__(self, m):
        super().__init__()
        V, T, C, L = m["V"], m["T"], m["C"], m["L"]
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block(m) for _ in range(L)])
        self.ln_f = LayerNorm(C, mg.model_has_bias(m)) if m["pre_ln"] else None  # GPT-1: none
        self.lm_head = None if mg.model_tied(m) else nn.Linear(C, V, bias=False)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, INIT_STD / math.sqrt(2 * L))
            elif p.dim() == 2:
                nn.init.normal_(p, 0.0, INIT_STD)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for blk in self.h:
            x = blk(x)
        if self.ln_f is not None:
            x = self.ln_f(x)
        return x @ (self.wte.weight if self.lm_head is None else self.lm_head.weight).T


def lr_at(step, peak):
    if step < WARMUP:
        return peak * (step + 1) / WARMUP
    t = (step - WARMUP) / max(1, STEPS - WARMUP)
    low = peak / 10
    return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def mean_loss(model, ids, T):
    """Mean NLL over non-overlapping windows of T tokens (every token after a window's first)."""
    n = (len(ids) - 1) // T
    x = torch.from_numpy(ids[:n * T].reshape(n, T))
    total, count = 0.0, 0
    for i in range(0, n, 256):
        xb = x[i:i + 256]
        logits = model(xb)
        total += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1),
                                 reduction="sum").item()
        count += xb.shape[0] * (T - 1)
    return total / count


def train(m):
    torch.manual_seed(m["seed"])
    rng = np.random.default_rng(m["seed"])
    train_text, val_text = mg.shakespeare_splits()
    train_ids = np.array(mg.text_to_ids(m, train_text), dtype=np.int64)
    val_ids = np.array(mg.text_to_ids(m, val_text), dtype=np.int64)
    T = m["T"]
    model = GPT(m)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR[m["name"]], betas=BETAS)
    t0 = time.time()
    losses = []
    for step in range(STEPS):
        offs = rng.integers(0, len(train_ids) - T - 1, size=BATCH)
        xb = torch.from_numpy(np.stack([train_ids[o:o + T] for o in offs]))
        yb = torch.from_numpy(np.stack([train_ids[o + 1:o + T + 1] for o in offs]))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, LR[m["name"]])
        with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 matmuls (oneDNN), float32 weights and loss
            logits = model(xb)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), yb.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == STEPS - 1:
            print("  %-10s step %4d  loss %.4f  (%.1f s)" % (m["name"], step, loss.item(), time.time() - t0),
                  flush=True)
    seconds = time.time() - t0
    model.eval()
    val = mean_loss(model, val_ids, T)
    train_tail = float(np.mean(losses[-50:]))
    meta = {"trained_by": "tests/golden/train_fixtures.py",
            "data": "tiny shakespeare, first %d%% (train split), ids per make_golden.VOCABS[%r]"
                    % (round(mg.TRAIN_FRAC * 100), m["vocab"]),
            "settings": "seed %d, %d steps x %d sequences x %d tokens, AdamW lr %g (warmup %d, cosine to %g), "
                        "betas %s, weight decay %g, clip %g, init std %g, bf16 autocast"
                        % (m["seed"], STEPS, BATCH, T, LR[m["name"]], WARMUP, LR[m["name"]] / 10, BETAS,
                           WEIGHT_DECAY, GRAD_CLIP, INIT_STD),
            "train_loss_last50": "%.4f" % train_tail,
            "val_loss": "%.4f" % val}
    tensors = [(k, v.detach().numpy().astype(np.float32)) for k, v in model.state_dict().items()]
    os.makedirs(mg.TRAINED_ROOT, exist_ok=True)
    path = os.path.join(mg.TRAINED_ROOT, m["name"] + ".safetensors")
    mg.write_safetensors(path, tensors, "F32", meta)
    print("%-10s %d steps in %.1f s: train loss (last 50) %.4f, val loss %.4f nats/token -> %s"
          % (m["name"], STEPS, seconds, train_tail, val, os.path.relpath(path, mg.REPO)), flush=True)


def main(argv):
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    names = argv[1:] or [m["name"] for m in mg.MODELS]
    for m in mg.MODELS:
        if m["name"] in names:
            train(m)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
