#!/usr/bin/python3
"""Golden training steps for ember's trainer, from an independent GPT written in plain PyTorch.

For each case a tiny GPT (pre-LN GPT-2 or post-LN GPT-1 topology, nanoGPT-like code, float64) with
fixed random weights runs two AdamW steps:
  step 1: one batch: loss, every gradient, clip_grad_norm_, AdamW step;
  step 2: two micro-batches accumulated (each loss / 2), clip, AdamW step at another learning rate.
Outputs under tests/data/train/<case>/ (little-endian f32, tensors concatenated in ember's canonical
order, i.e. required_tensors(config), weights [out, in]):
  params0.f32  initial parameters          grads1.f32   gradients of step 1 (before clipping)
  params1.f32  parameters after step 1     params2.f32  parameters after step 2
  meta.json    config, batches, hyper-parameters, losses and gradient norms.

Weight decay follows ember's default: only linear-layer weights decay (not biases, LN, embeddings).
Deterministic (numpy default_rng with fixed seeds). Regenerate from the repository root:
    /usr/bin/python3 tests/train/make_train_golden.py
Needs Debian's python3-torch and python3-numpy (checked with torch 1.13, numpy 1.24).
"""
import json
import math
import os

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "train")


class Block(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, F = cfg["n_embd"], cfg["n_ff"]
        self.cfg = cfg
        self.ln_1 = torch.nn.LayerNorm(C, eps=cfg["norm_eps"])
        self.c_attn = torch.nn.Linear(C, 3 * C)
        self.c_proj = torch.nn.Linear(C, C)
        self.ln_2 = torch.nn.LayerNorm(C, eps=cfg["norm_eps"])
        self.c_fc = torch.nn.Linear(C, F)
        self.mlp_proj = torch.nn.Linear(F, C)
        act = cfg["activation"]
        self.act = {"gelu_tanh": torch.nn.GELU(approximate="tanh"), "gelu_erf": torch.nn.GELU(), "relu": torch.nn.ReLU()}[act]

    def attn(self, x):
        B, T, C = x.shape
        H = self.cfg["n_head"]
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, H, C // H).transpose(1, 2)
        k = k.view(B, T, H, C // H).transpose(1, 2)
        v = v.view(B, T, H, C // H).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def mlp(self, x):
        return self.mlp_proj(self.act(self.c_fc(x)))

    def forward(self, x):
        if self.cfg["norm"] == "pre":
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))
        x = self.ln_1(x + self.attn(x))
        return self.ln_2(x + self.mlp(x))


class GPT(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        V, T, C = cfg["n_vocab"], cfg["n_ctx"], cfg["n_embd"]
        self.wte = torch.nn.Embedding(V, C)
        self.wpe = torch.nn.Embedding(T, C)
        self.h = torch.nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])
        if cfg["norm"] == "pre":
            self.ln_f = torch.nn.LayerNorm(C, eps=cfg["norm_eps"])
        if not cfg["tied_lm_head"]:
            self.lm_head = torch.nn.Linear(C, V, bias=False)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for blk in self.h:
            x = blk(x)
        if self.cfg["norm"] == "pre":
            x = self.ln_f(x)
        w = self.wte.weight if self.cfg["tied_lm_head"] else self.lm_head.weight
        logits = x @ w.t()
        return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def canonical(self):
        """(ember name, parameter, is linear weight) in required_tensors order."""
        out = [("wte", self.wte.weight, False), ("wpe", self.wpe.weight, False)]
        for i, b in enumerate(self.h):
            p = f"h.{i}."
            out += [(p + "ln_1.weight", b.ln_1.weight, False), (p + "ln_1.bias", b.ln_1.bias, False),
                    (p + "attn.c_attn.weight", b.c_attn.weight, True), (p + "attn.c_attn.bias", b.c_attn.bias, False),
                    (p + "attn.c_proj.weight", b.c_proj.weight, True), (p + "attn.c_proj.bias", b.c_proj.bias, False),
                    (p + "ln_2.weight", b.ln_2.weight, False), (p + "ln_2.bias", b.ln_2.bias, False),
                    (p + "mlp.c_fc.weight", b.c_fc.weight, True), (p + "mlp.c_fc.bias", b.c_fc.bias, False),
                    (p + "mlp.c_proj.weight", b.mlp_proj.weight, True), (p + "mlp.c_proj.bias", b.mlp_proj.bias, False)]
        if self.cfg["norm"] == "pre":
            out += [("ln_f.weight", self.ln_f.weight, False), ("ln_f.bias", self.ln_f.bias, False)]
        if not self.cfg["tied_lm_head"]:
            out += [("lm_head.weight", self.lm_head.weight, True)]
        return out


def flat(tensors):
    return np.concatenate([t.detach().numpy().astype(np.float32).ravel() for t in tensors])


def make_case(name, cfg, seed, B, T, clip, lr1, lr2):
    rng = np.random.default_rng(seed)
    model = GPT(cfg)
    canon = model.canonical()
    # Fixed weights, drawn in f32 (what the file holds) so both sides start from identical values.
    for n, p, is_w in canon:
        if n in ("wte", "wpe"):
            v = rng.normal(0.0, 0.5 if n == "wte" else 0.3, p.shape)
        elif n.endswith("ln_1.weight") or n.endswith("ln_2.weight") or n == "ln_f.weight":
            v = 1.0 + rng.normal(0.0, 0.1, p.shape)
        elif is_w:
            v = rng.normal(0.0, 0.2, p.shape)
        else:
            v = rng.normal(0.0, 0.05, p.shape)
        with torch.no_grad():
            p.copy_(torch.from_numpy(v.astype(np.float32).astype(np.float64)))
    params0 = flat([p for _, p, _ in canon])

    V = cfg["n_vocab"]
    def batch():
        x = rng.integers(0, V, size=(B, T))
        y = rng.integers(0, V, size=(B, T))
        y[0, 1] = -1  # one ignored target
        return x, y
    x1, y1 = batch()
    x2a, y2a = batch()
    x2b, y2b = batch()

    adam = {"beta1": 0.9, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.1}
    decay = [p for _, p, w in canon if w]
    no_decay = [p for _, p, w in canon if not w]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": adam["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr1, betas=(adam["beta1"], adam["beta2"]), eps=adam["eps"])
    all_params = [p for _, p, _ in canon]

    opt.zero_grad()
    loss1 = model(torch.from_numpy(x1), torch.from_numpy(y1))
    loss1.backward()
    grads1 = flat([p.grad for _, p, _ in canon])
    norm1 = float(torch.nn.utils.clip_grad_norm_(all_params, clip))
    opt.step()
    params1 = flat(all_params)

    for g in opt.param_groups:
        g["lr"] = lr2
    opt.zero_grad()
    la = model(torch.from_numpy(x2a), torch.from_numpy(y2a))
    (la / 2).backward()
    lb = model(torch.from_numpy(x2b), torch.from_numpy(y2b))
    (lb / 2).backward()
    norm2 = float(torch.nn.utils.clip_grad_norm_(all_params, clip))
    opt.step()
    params2 = flat(all_params)

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for fn, arr in [("params0.f32", params0), ("grads1.f32", grads1), ("params1.f32", params1), ("params2.f32", params2)]:
        arr.astype("<f4").tofile(os.path.join(d, fn))
    meta = {
        "config": cfg, "B": B, "T": T,
        "step1": {"tokens": x1.ravel().tolist(), "targets": y1.ravel().tolist(), "lr": lr1,
                  "loss": float(loss1), "grad_norm": norm1},
        "step2": {"micro": [{"tokens": x2a.ravel().tolist(), "targets": y2a.ravel().tolist(), "loss": float(la)},
                            {"tokens": x2b.ravel().tolist(), "targets": y2b.ravel().tolist(), "loss": float(lb)}],
                  "lr": lr2, "grad_norm": norm2},
        "adamw": adam, "grad_clip": clip,
        "tensors": [{"name": n, "shape": list(p.shape)} for n, p, _ in canon],
        "generator": "tests/train/make_train_golden.py (torch %s, float64)" % torch.__version__,
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"{name}: loss1 {float(loss1):.6f} norm1 {norm1:.4f} norm2 {norm2:.4f} params {params0.size}")


def cfg(norm, act, tied):
    return {"n_vocab": 19, "n_ctx": 9, "n_embd": 16, "n_head": 2, "n_layer": 2, "n_ff": 48, "norm_eps": 1e-5,
            "norm": norm, "activation": act, "tied_lm_head": tied}


if __name__ == "__main__":
    make_case("gpt2_tanh", cfg("pre", "gelu_tanh", True), 1, 3, 7, 1.0, 1e-2, 3e-3)
    make_case("gpt2_erf_untied", cfg("pre", "gelu_erf", False), 2, 3, 7, 1.0, 1e-2, 3e-3)
    make_case("gpt1_erf", cfg("post", "gelu_erf", True), 3, 3, 7, 1.0, 1e-2, 3e-3)
    make_case("gpt1_relu_untied", cfg("post", "relu", False), 4, 3, 7, 1.0, 1e-2, 3e-3)
