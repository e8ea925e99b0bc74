#!/usr/bin/python3
"""Greedy text from a float .ember char model, computed independently of ember's runtime (numpy, float64).

The default model's end-to-end test compares ember's int8 runtime against this: ember-train writes the
float model, this script reads its weights straight from the file (the byte offsets come from
`ember-inspect --json`; the forward pass is plain numpy written from the GPT-2 / nanoGPT equations, not
ember code) and writes, as JSON, the greedy continuation of a prompt up to n_ctx tokens and float's
top-2 logit margin at each step.

    build/tools/ember-inspect /tmp/shakespeare-char-f32.ember --json > /tmp/f32.json
    /usr/bin/python3 models/reference_greedy.py --model /tmp/shakespeare-char-f32.ember \
        --inspect /tmp/f32.json --prompt "ROMEO:" > tests/data/default_model_greedy.json

Supports what the default model uses: pre-LN (GPT-2) blocks with a final LayerNorm, GELU (erf), an LM
head tied to the token embedding or its own (`lm_head.weight`), char vocabulary = nanoGPT's (the sorted set of tiny shakespeare's characters).
"""
import argparse
import json
import math
import sys

import numpy as np

SHAKESPEARE = "/work/shared/data/text/tinyshakespeare.txt"


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu_erf(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


class Reference:
    """One token at a time with a key/value cache (each step equals a full causal recompute)."""

    def __init__(self, W, cfg):
        self.W, self.cfg = W, cfg
        self.keys = [[] for _ in range(cfg["n_layer"])]
        self.values = [[] for _ in range(cfg["n_layer"])]

    def step(self, token):
        W, cfg = self.W, self.cfg
        C, H = cfg["n_embd"], cfg["n_head"]
        D, eps = C // H, cfg["norm_eps"]
        pos = len(self.keys[0])
        x = W["wte"][token] + W["wpe"][pos]
        for l in range(cfg["n_layer"]):
            p = f"h.{l}."
            a = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
            qkv = W[p + "attn.c_attn.weight"] @ a + W[p + "attn.c_attn.bias"]
            self.keys[l].append(qkv[C:2 * C])
            self.values[l].append(qkv[2 * C:])
            K, V = np.array(self.keys[l]), np.array(self.values[l])
            out = np.zeros(C)
            for h in range(H):
                s = slice(h * D, (h + 1) * D)
                att = K[:, s] @ qkv[s] / math.sqrt(D)
                att = np.exp(att - att.max())
                out[s] = (att / att.sum()) @ V[:, s]
            x = x + W[p + "attn.c_proj.weight"] @ out + W[p + "attn.c_proj.bias"]
            m = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
            m = gelu_erf(W[p + "mlp.c_fc.weight"] @ m + W[p + "mlp.c_fc.bias"])
            x = x + W[p + "mlp.c_proj.weight"] @ m + W[p + "mlp.c_proj.bias"]
        head = W["wte"] if cfg["tied_lm_head"] else W["lm_head.weight"]
        return head @ layer_norm(x, W["ln_f.weight"], W["ln_f.bias"], eps)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="float .ember model (ember-train's output)")
    ap.add_argument("--inspect", required=True, help="its `ember-inspect --json` output")
    ap.add_argument("--prompt", default="ROMEO:")
    ap.add_argument("--data", default=SHAKESPEARE, help="the text whose sorted characters are the vocabulary")
    args = ap.parse_args()

    info = json.load(open(args.inspect))
    cfg = info["config"]
    if cfg["norm"] != "pre-ln" or cfg["activation"] != "gelu_erf":
        sys.exit("reference_greedy: only pre-LN, gelu_erf models are supported")
    raw = open(args.model, "rb").read()
    W = {}
    for t in info["tensors"]:
        if t["dtype"] != "f32":
            sys.exit(f"reference_greedy: tensor {t['name']} is {t['dtype']}: give the float model")
        n = int(np.prod(t["shape"]))
        W[t["name"]] = np.frombuffer(raw, "<f4", n, t["offset"]).astype(np.float64).reshape(t["shape"])

    chars = sorted(set(open(args.data, encoding="utf-8").read()))
    assert len(chars) == cfg["n_vocab"], "vocabulary size differs from the model's"
    stoi = {c: i for i, c in enumerate(chars)}
    ids = [stoi[c] for c in args.prompt]
    ref = Reference(W, cfg)
    for t in ids[:-1]:
        ref.step(t)
    margins = []  # float top-1 minus top-2 logit at each greedy step: where int8 may pick the other
    while len(ids) < cfg["n_ctx"]:
        logits = ref.step(ids[-1])
        top = np.sort(logits)[-2:]
        margins.append(round(float(top[1] - top[0]), 6))
        ids.append(int(np.argmax(logits)))
    json.dump({"prompt": args.prompt, "ids": ids, "text": "".join(chars[i] for i in ids), "margins": margins},
              sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
