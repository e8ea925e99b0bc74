#!/usr/bin/python3
"""Writes a random-weight checkpoint with GPT-2 small's shape, for measuring speed and memory.

    /usr/bin/python3 tools/make_random_gpt2.py OUT_DIR [--n-layer 12 --n-head 12 --n-embd 768 --n-ctx 1024]

OUT_DIR gets model.safetensors (Hugging Face GPT-2 naming, Conv1D [in, out] weights, F32, tied head),
config.json, and the GPT-2 tokenizer files (encoder.json, vocab.bpe, copied from tests/data/gpt2), so
`ember-quantize OUT_DIR model.ember` converts it like a real GPT-2. Weights follow GPT-2's
initialisation (normal, std 0.02; residual projections 0.02 / sqrt(2 * n_layer)); the text it
generates is noise, the speed is real. Needs only numpy (tools/install-deps.sh --dev).
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--n-head", type=int, default=12)
    ap.add_argument("--n-embd", type=int, default=768)
    ap.add_argument("--n-ctx", type=int, default=1024)
    ap.add_argument("--n-vocab", type=int, default=50257)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    C, V, T, L = a.n_embd, a.n_vocab, a.n_ctx, a.n_layer

    def normal(shape, std):
        return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    tensors = {"wte.weight": normal((V, C), 0.02), "wpe.weight": normal((T, C), 0.01)}
    proj_std = 0.02 / np.sqrt(2 * L)
    for i in range(L):
        p = f"h.{i}."
        tensors[p + "ln_1.weight"] = np.ones(C, np.float32)
        tensors[p + "ln_1.bias"] = np.zeros(C, np.float32)
        tensors[p + "attn.c_attn.weight"] = normal((C, 3 * C), 0.02)
        tensors[p + "attn.c_attn.bias"] = np.zeros(3 * C, np.float32)
        tensors[p + "attn.c_proj.weight"] = normal((C, C), proj_std)
        tensors[p + "attn.c_proj.bias"] = np.zeros(C, np.float32)
        tensors[p + "ln_2.weight"] = np.ones(C, np.float32)
        tensors[p + "ln_2.bias"] = np.zeros(C, np.float32)
        tensors[p + "mlp.c_fc.weight"] = normal((C, 4 * C), 0.02)
        tensors[p + "mlp.c_fc.bias"] = np.zeros(4 * C, np.float32)
        tensors[p + "mlp.c_proj.weight"] = normal((4 * C, C), proj_std)
        tensors[p + "mlp.c_proj.bias"] = np.zeros(C, np.float32)
    tensors["ln_f.weight"] = np.ones(C, np.float32)
    tensors["ln_f.bias"] = np.zeros(C, np.float32)

    os.makedirs(a.out, exist_ok=True)
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, t in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path = os.path.join(a.out, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for t in tensors.values():
            f.write(t.tobytes())
    os.replace(path + ".tmp", path)
    config = {"model_type": "gpt2", "vocab_size": V, "n_positions": T, "n_embd": C, "n_head": a.n_head,
              "n_layer": L, "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "tie_word_embeddings": True}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "gpt2")
    if V == 50257:
        for name in ("encoder.json", "vocab.bpe"):
            shutil.copy(os.path.join(here, name), os.path.join(a.out, name))
    n = sum(t.size for t in tensors.values())
    print(f"wrote {path}: {n / 1e6:.1f}M parameters, {offset / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
