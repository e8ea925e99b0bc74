#!/usr/bin/env python3
"""Tiny checkpoints for the hostile suite (python3 standard library only, deterministic).

    make_checkpoints.py OUT_DIR

writes three safetensors checkpoints, each a directory with model.safetensors + config.json +
vocab_chars.json (10 characters):
  ctx1/      Hugging Face GPT-2 naming and layout (Conv1D [in, out]), n_positions 1: a model whose context
             holds one token (ember-generate --keep-going must still work)
  padded/    nanoGPT naming, vocab_size 16 for 10 characters: ids 10-15 have no text, as in nanoGPT's
             padded 50304-token GPT-2 vocabulary
  linear_hf/ a nanoGPT state dict (nn.Linear [out, in] weights, lm_head.weight tied) saved with a Hugging
             Face GPT-2 config.json
"""
import json
import os
import random
import struct
import sys

CHARS = list("\n abcdefgh")  # 10 characters


def write_safetensors(path, tensors):
    """tensors: list of (name, shape, flat list of floats), written as F32."""
    header, blobs, offset = {}, [], 0
    for name, shape, values in tensors:
        data = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def gpt(rng, vocab, n_ctx, n_embd, n_layer, conv1d, prefix):
    """GPT-2 tensors (pre-LN, biases): Conv1D [in, out] or nn.Linear [out, in] weights."""
    def w(*shape):
        n = 1
        for d in shape:
            n *= d
        return [rng.gauss(0.0, 0.2) for _ in range(n)]

    def lin(name, n_in, n_out):
        shape = [n_in, n_out] if conv1d else [n_out, n_in]
        return [(name + ".weight", shape, w(*shape)), (name + ".bias", [n_out], w(n_out))]

    def ln(name):
        return [(name + ".weight", [n_embd], [1.0 + v for v in w(n_embd)]), (name + ".bias", [n_embd], w(n_embd))]

    t = [(prefix + "wte.weight", [vocab, n_embd], w(vocab, n_embd)), (prefix + "wpe.weight", [n_ctx, n_embd], w(n_ctx, n_embd))]
    for i in range(n_layer):
        h = prefix + "h.%d." % i
        t += ln(h + "ln_1") + lin(h + "attn.c_attn", n_embd, 3 * n_embd) + lin(h + "attn.c_proj", n_embd, n_embd)
        t += ln(h + "ln_2") + lin(h + "mlp.c_fc", n_embd, 4 * n_embd) + lin(h + "mlp.c_proj", 4 * n_embd, n_embd)
    return t + ln(prefix + "ln_f")


def checkpoint(path, tensors, config):
    os.makedirs(path, exist_ok=True)
    write_safetensors(os.path.join(path, "model.safetensors"), tensors)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(path, "vocab_chars.json"), "w") as f:
        json.dump(CHARS, f)


def hf_config(vocab, n_ctx, n_embd, n_layer):
    return {"model_type": "gpt2", "vocab_size": vocab, "n_positions": n_ctx, "n_embd": n_embd, "n_head": 2,
            "n_layer": n_layer, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}


def main():
    out = sys.argv[1]
    rng = random.Random(14)
    checkpoint(os.path.join(out, "ctx1"), gpt(rng, 10, 1, 8, 1, True, ""), hf_config(10, 1, 8, 1))
    checkpoint(os.path.join(out, "padded"), gpt(rng, 16, 16, 8, 1, False, "transformer."),
               {"n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 16, "bias": True, "vocab_size": 16, "dropout": 0.0})
    t = gpt(rng, 10, 16, 8, 2, False, "transformer.")
    t.append(("lm_head.weight", t[0][1], t[0][2]))  # tied: nanoGPT's state dict names the shared tensor twice
    checkpoint(os.path.join(out, "linear_hf"), t, hf_config(10, 16, 8, 2))


if __name__ == "__main__":
    main()
