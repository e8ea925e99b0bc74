#!/usr/bin/env python3
"""nanoGPT-style token files for ember-train's token-file input (tests/train/test_train_tool.cpp).

Written the way nanoGPT's prepare.py scripts write them: the first int(0.9 * n) characters are train, the
rest val, each stored as np.uint16 ids with ndarray.tofile (little-endian, no header).
  char/  data/shakespeare_char/prepare.py: ids index sorted(set(text)), the whole text's characters.
  gpt2/  data/shakespeare/prepare.py: GPT-2 BPE ids (tiktoken's encode_ordinary there; here the
         independent Python port of openai/gpt-2 encoder.py in make_bpe_golden.py, with the real GPT-2
         vocabulary in tests/data/gpt2).
The text is tests/data/train/bpe/corpus.txt (it has non-ASCII characters). Run from the repository root:

    /usr/bin/python3 tests/train/make_token_files.py
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_bpe_golden import bytes_to_unicode, gpt2_encode, pretokenize  # noqa: E402

OUT = os.path.join("tests", "data", "train", "tokens")


def write(kind, train_ids, val_ids):
    os.makedirs(os.path.join(OUT, kind), exist_ok=True)
    for name, ids in (("train", train_ids), ("val", val_ids)):
        np.array(ids, dtype=np.uint16).tofile(os.path.join(OUT, kind, name + ".bin"))
    print("%s: %d train / %d val tokens" % (kind, len(train_ids), len(val_ids)))


def main():
    with open(os.path.join("tests", "data", "train", "bpe", "corpus.txt"), encoding="utf-8", newline="") as f:
        data = f.read()
    n = len(data)
    train, val = data[:int(n * 0.9)], data[int(n * 0.9):]

    chars = sorted(list(set(data)))
    stoi = {ch: i for i, ch in enumerate(chars)}
    write("char", [stoi[c] for c in train], [stoi[c] for c in val])

    with open(os.path.join("tests", "data", "gpt2", "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    with open(os.path.join("tests", "data", "gpt2", "vocab.bpe"), encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().split("\n")[1:] if line]
    ranks = {m: r for r, m in enumerate(merges)}
    b2u = bytes_to_unicode()
    write("gpt2", gpt2_encode(pretokenize(train), encoder, ranks, b2u), gpt2_encode(pretokenize(val), encoder, ranks, b2u))


if __name__ == "__main__":
    main()
