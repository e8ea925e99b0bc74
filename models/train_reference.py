#!/usr/bin/python3
"""Reference trainer for ember's default model: a character-level GPT on Tiny Shakespeare.

Independent PyTorch script, nanoGPT-style (written from scratch, same architecture, data prep
and optimizer recipe as karpathy/nanoGPT's shakespeare_char config, but a smaller model).

  /usr/bin/python3 models/train_reference.py --max_iters N --out /tmp/ember-default

Without --max_iters, the script times the first 20 iterations and picks max_iters so training
fills --time_budget seconds; the chosen value is printed so the run can be repeated exactly.

Outputs in --out:
  model.safetensors  F32, nanoGPT state-dict names (lm_head.weight == transformer.wte.weight)
  config.json        nanoGPT model_args
  vocab_chars.json   the 65 characters in id order
  samples.txt        greedy and temperature-0.8 samples from the prompt "ROMEO:"
  val_nll.json       mean NLL over the whole val split, non-overlapping windows of block_size
  train_log.json     run settings and eval history
"""
import argparse
import json
import math
import os
import struct
import time

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

# ----------------------------------------------------------------------------- model (nanoGPT)


class LayerNorm(nn.Module):
    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        assert cfg["n_embd"] % cfg["n_head"] == 0
        self.c_attn = nn.Linear(cfg["n_embd"], 3 * cfg["n_embd"], bias=cfg["bias"])
        self.c_proj = nn.Linear(cfg["n_embd"], cfg["n_embd"], bias=cfg["bias"])
        self.attn_dropout = nn.Dropout(cfg["dropout"])
        self.resid_dropout = nn.Dropout(cfg["dropout"])
        self.n_head, self.n_embd = cfg["n_head"], cfg["n_embd"]
        T = cfg["block_size"]
        self.register_buffer("mask", torch.tril(torch.ones(T, T)).view(1, 1, T, T), persistent=False)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg["n_embd"], 4 * cfg["n_embd"], bias=cfg["bias"])
        self.gelu = nn.GELU()  # exact (erf) GELU, as nanoGPT
        self.c_proj = nn.Linear(4 * cfg["n_embd"], cfg["n_embd"], bias=cfg["bias"])
        self.dropout = nn.Dropout(cfg["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = LayerNorm(cfg["n_embd"], cfg["bias"])
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = LayerNorm(cfg["n_embd"], cfg["bias"])
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg["vocab_size"], cfg["n_embd"]),
            wpe=nn.Embedding(cfg["block_size"], cfg["n_embd"]),
            drop=nn.Dropout(cfg["dropout"]),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])]),
            ln_f=LayerNorm(cfg["n_embd"], cfg["bias"]),
        ))
        self.lm_head = nn.Linear(cfg["n_embd"], cfg["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg["n_layer"]))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            torch.nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            torch.nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        T = idx.size(1)
        assert T <= self.cfg["block_size"]
        pos = torch.arange(T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, n_new, temperature=1.0, generator=None):
        for _ in range(n_new):
            logits, _ = self(idx[:, -self.cfg["block_size"]:])
            logits = logits[:, -1, :]
            if temperature == 0.0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                probs = F.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


# ----------------------------------------------------------------------------- safetensors writer


def write_safetensors(path, tensors):
    """Minimal writer: u64 LE header length, JSON header, contiguous little-endian F32 data."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].detach().cpu().numpy().astype("<f4"))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # pad header so data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, m in header.items():
        s, e = m["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[s:e], dtype="<f4").reshape(m["shape"]).copy())
    return out


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/text/tinyshakespeare.txt")
    ap.add_argument("--out", default="/tmp/ember-default")
    ap.add_argument("--max_iters", type=int, default=0, help="0 = size from --time_budget")
    ap.add_argument("--time_budget", type=float, default=600.0, help="seconds of training (auto mode)")
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--eval_interval", type=int, default=250)
    ap.add_argument("--eval_iters", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(1337)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    # data prep exactly as nanoGPT data/shakespeare_char/prepare.py
    with open(args.data, "r", encoding="utf-8") as f:
        text = f.read()
    chars = sorted(list(set(text)))
    stoi = {c: i for i, c in enumerate(chars)}
    n = len(text)
    split = int(n * 0.9)
    train_data = torch.tensor([stoi[c] for c in text[:split]], dtype=torch.long)
    val_data = torch.tensor([stoi[c] for c in text[split:]], dtype=torch.long)
    print(f"chars {n:,} vocab {len(chars)} train {len(train_data):,} val {len(val_data):,}", flush=True)

    cfg = dict(n_layer=4, n_head=4, n_embd=128, block_size=256, bias=True,
               vocab_size=len(chars), dropout=args.dropout)
    B, T = args.batch_size, cfg["block_size"]
    model = GPT(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"params {n_params:,} (incl. tied wte; minus wpe: {n_params - T * cfg['n_embd']:,})", flush=True)

    def get_batch(data):
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([data[i:i + T] for i in ix])
        y = torch.stack([data[i + 1:i + 1 + T] for i in ix])
        return x, y

    @torch.no_grad()
    def estimate_loss():
        model.eval()
        out = {}
        for name, data in (("train", train_data), ("val", val_data)):
            losses = torch.zeros(args.eval_iters)
            for k in range(args.eval_iters):
                _, loss = model(*get_batch(data))
                losses[k] = loss.item()
            out[name] = losses.mean().item()
        model.train()
        return out

    # AdamW: weight decay on >=2D params (matmul weights and embeddings), none on biases/LN
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    lr_max, lr_min, warmup = 1e-3, 1e-4, 100

    def get_lr(it, max_iters):
        if it < warmup:
            return lr_max * (it + 1) / (warmup + 1)
        if it > max_iters:
            return lr_min
        r = (it - warmup) / (max_iters - warmup)
        return lr_min + 0.5 * (1.0 + math.cos(math.pi * r)) * (lr_max - lr_min)

    max_iters = args.max_iters
    auto = max_iters <= 0
    if auto:
        max_iters = 10 ** 9  # placeholder until timed; warmup (100 it) doesn't depend on it
    history = []
    t_start = time.time()
    t_last = t_start
    t_eval_total = 0.0
    it = 0
    while True:
        if it % args.eval_interval == 0 or it == max_iters:
            te = time.time()
            l = estimate_loss()
            t_eval_total += time.time() - te
            history.append({"iter": it, "train": l["train"], "val": l["val"], "elapsed_s": time.time() - t_start})
            print(f"step {it}: train loss {l['train']:.4f}, val loss {l['val']:.4f} "
                  f"(elapsed {time.time() - t_start:.0f}s)", flush=True)
            t_last = time.time()
        if it == max_iters:
            break
        lr = get_lr(it, max_iters)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = get_batch(train_data)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        it += 1
        if auto and it == 20:
            train_time = time.time() - t_start - t_eval_total
            ms = 1000.0 * train_time / 20
            # each eval is 2*eval_iters forward passes (~1/3 of a train step each) every eval_interval iters
            eval_frac = (2 * args.eval_iters / 3.0) / args.eval_interval
            max_iters = max(200, int(args.time_budget / (1.0 + eval_frac) * 1000.0 / ms) // 50 * 50)
            print(f"timing: {ms:.0f} ms/iter over first 20 iters -> max_iters = {max_iters}", flush=True)
        if it % 10 == 0:
            now = time.time()
            print(f"iter {it}: loss {loss.item():.4f}, lr {lr:.2e}, {1000.0 * (now - t_last) / 10:.0f} ms/iter",
                  flush=True)
            t_last = now
    train_wall = time.time() - t_start
    print(f"done: {max_iters} iters in {train_wall:.0f}s wall ({train_wall / 60:.1f} min)", flush=True)

    # ------------------------------------------------------------------ export
    model.eval()
    sd = {k: v for k, v in model.state_dict().items()}  # includes both lm_head.weight and transformer.wte.weight
    st_path = os.path.join(args.out, "model.safetensors")
    write_safetensors(st_path, sd)
    back = read_safetensors(st_path)
    assert set(back) == set(sd) and all(torch.equal(back[k], sd[k].float()) for k in sd), "safetensors round-trip"
    mcfg = {"n_layer": cfg["n_layer"], "n_head": cfg["n_head"], "n_embd": cfg["n_embd"],
            "block_size": cfg["block_size"], "bias": cfg["bias"], "vocab_size": cfg["vocab_size"], "dropout": 0.0}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(mcfg, f)
        f.write("\n")
    with open(os.path.join(args.out, "vocab_chars.json"), "w") as f:
        json.dump(chars, f)
        f.write("\n")

    # full-split val NLL: non-overlapping windows of block_size, every token after the first in each
    # window is scored, last shorter window included (same rule as ember-perplexity)
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(0, len(val_data), T):
            win = val_data[w:w + T]
            if len(win) < 2:
                break
            logits, _ = model(win.unsqueeze(0))
            lp = F.log_softmax(logits[0, :-1].double(), dim=-1)
            nll += -lp.gather(1, win[1:].unsqueeze(1)).sum().item()
            count += len(win) - 1
    mean_nll = nll / count
    vj = {"n_tokens": count, "mean_nll": mean_nll, "ppl": math.exp(mean_nll)}
    with open(os.path.join(args.out, "val_nll.json"), "w") as f:
        json.dump(vj, f, indent=1)
        f.write("\n")
    print(f"full-split val: n_tokens {count}, mean_nll {mean_nll:.6f}, ppl {math.exp(mean_nll):.4f}", flush=True)

    # samples
    prompt = "ROMEO:"
    ctx = torch.tensor([[stoi[c] for c in prompt]], dtype=torch.long)
    dec = lambda ids: "".join(chars[i] for i in ids)
    parts = []
    g = model.generate(ctx, 300, temperature=0.0)[0].tolist()
    parts.append(("greedy (temperature 0)", dec(g)))
    for seed in (1, 2, 3):
        gen = torch.Generator().manual_seed(seed)
        s = model.generate(ctx, 300, temperature=0.8, generator=gen)[0].tolist()
        parts.append((f"temperature 0.8, torch.Generator seed {seed}, no top-k", dec(s)))
    with open(os.path.join(args.out, "samples.txt"), "w") as f:
        f.write(f'# prompt "{prompt}", 300 new characters each, PyTorch reference model\n')
        for title, s in parts:
            f.write(f"\n=== {title} ===\n{s}\n")
    for title, s in parts[:2]:
        print(f"--- {title} ---\n{s}\n", flush=True)

    final = history[-1]
    log = {"max_iters": max_iters, "batch_size": B, "block_size": T, "dropout": args.dropout,
           "threads": args.threads, "seed": 1337, "n_params": n_params, "train_wall_s": train_wall,
           "final_train_loss_est": final["train"], "final_val_loss_est": final["val"],
           "val_full_split": vj, "history": history, "torch_version": torch.__version__}
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(log, f, indent=1)
        f.write("\n")
    print("wrote", ", ".join(sorted(os.listdir(args.out))), "to", args.out, flush=True)


if __name__ == "__main__":
    main()
