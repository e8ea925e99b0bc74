#!/usr/bin/env python3
"""Independent byte-level BPE trainer: the golden for ember's train_bpe (tests/train/test_bpe.cpp).

Standard library only (the `regex` module, when installed, cross-checks the pre-tokenizer). Written from
the algorithm's description, not from ember's code, and deliberately naive: every merge recounts every
pair of every distinct piece from scratch.

  1. Pre-tokenize with GPT-2's pattern
       's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
     (\\s = Unicode White_Space, as Python's `regex` module has it) and count equal pieces.
  2. Start each piece as its UTF-8 bytes, token id = byte value.
  3. Until the vocabulary (plus <|endoftext|>) has VOCAB tokens: count adjacent pairs over all pieces
     (overlapping occurrences too, weighted by the piece's count), take the most frequent, ties to the
     smaller (left id, right id); its token is the concatenated bytes (a new id, or the existing id if
     those bytes are already a token); replace its occurrences in every piece, left to right.

Writes tests/data/train/bpe/: encoder.json + vocab.bpe in GPT-2's format (byte-to-unicode spelling, as
openai/gpt-2 ships them), tokens.txt (the corpus encoded with the result by GPT-2's encoder.py
algorithm) and meta.json. Run from the repository root:

    /usr/bin/python3 tests/train/make_bpe_golden.py
"""
import json
import os
import unicodedata

VOCAB = 600
HERE = os.path.join("tests", "data", "train", "bpe")

WHITE_SPACE = set(range(0x09, 0x0E)) | {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000} | set(
    range(0x2000, 0x200B))


def cls(ch):
    if ord(ch) in WHITE_SPACE:
        return "s"
    cat = unicodedata.category(ch)
    return "L" if cat[0] == "L" else "N" if cat[0] == "N" else "o"


def pretokenize(text):
    """GPT-2's regex, by hand (the alternatives in order, with the \\s+(?!\\S) backtrack)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i] == "'":
            for c in ("s", "t", "re", "ve", "m", "ll", "d"):
                if text.startswith(c, i + 1):
                    break
            else:
                c = None
            if c is not None:
                out.append(text[i:i + 1 + len(c)])
                i += 1 + len(c)
                continue
        j = i
        if text[j] == " " and j + 1 < n and cls(text[j + 1]) != "s":
            j += 1
        k = cls(text[j])
        if k != "s":
            j += 1
            while j < n and cls(text[j]) == k:
                j += 1
            out.append(text[i:j])
            i = j
            continue
        j = i
        while j < n and cls(text[j]) == "s":
            j += 1
        if j < n and j - i > 1:
            j -= 1  # \s+(?!\S): leave the last space to the next piece
        out.append(text[i:j])
        i = j
    return out


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train(pieces, vocab_size):
    words = {}
    for p in pieces:
        key = tuple(p.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    tokens = [bytes([b]) for b in range(256)]
    id_of = {t: i for i, t in enumerate(tokens)}
    merges, counts_chosen = [], []
    while len(tokens) + 1 < vocab_size:
        counts = {}
        for w, c in words.items():
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + c
        if not counts:
            raise SystemExit("corpus too small for VOCAB")
        best = min(counts, key=lambda p: (-counts[p], p))
        a, b = best
        new = tokens[a] + tokens[b]
        if new not in id_of:
            id_of[new] = len(tokens)
            tokens.append(new)
        c_id = id_of[new]
        merges.append(best)
        counts_chosen.append(counts[best])
        merged = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(c_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + c
        words = merged
    tokens.append(b"<|endoftext|>")
    n_tokens = sum(len(w) * c for w, c in words.items())
    return tokens, merges, counts_chosen, n_tokens


def gpt2_encode(pieces, encoder, bpe_ranks, b2u):
    """openai/gpt-2 encoder.py: bpe() on the byte-to-unicode spelling of each piece."""

    def bpe(token):
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            bigram = min(pairs, key=lambda p: bpe_ranks.get(p, float("inf")))
            if bigram not in bpe_ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        return word

    ids = []
    for p in pieces:
        spelled = "".join(b2u[b] for b in p.encode("utf-8"))
        ids.extend(encoder[t] for t in bpe(spelled))
    return ids


def main():
    with open(os.path.join(HERE, "corpus.txt"), encoding="utf-8", newline="") as f:
        text = f.read()
    pieces = pretokenize(text)
    assert "".join(pieces) == text
    try:
        import regex
        pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
        assert regex.findall(pat, text) == pieces, "hand-written pre-tokenizer disagrees with GPT-2's regex"
        print("pre-tokenizer: agrees with GPT-2's regex (module regex %s)" % regex.__version__)
    except ImportError:
        print("pre-tokenizer: module regex not installed, not cross-checked")

    tokens, merges, counts, n_tokens = train(pieces, VOCAB)
    b2u = bytes_to_unicode()
    spell = lambda t: "".join(b2u[b] for b in t)
    encoder = {}
    for i, t in enumerate(tokens):
        s = t.decode("ascii") if i == len(tokens) - 1 else spell(t)
        assert s not in encoder or encoder[s] == i
        encoder[s] = i
    with open(os.path.join(HERE, "encoder.json"), "w", encoding="utf-8") as f:
        json.dump(encoder, f, ensure_ascii=False)
    with open(os.path.join(HERE, "vocab.bpe"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(spell(tokens[a]) + " " + spell(tokens[b]) + "\n")
    ranks = {(spell(tokens[a]), spell(tokens[b])): r for r, (a, b) in enumerate(merges)}
    ids = gpt2_encode(pieces, encoder, ranks, b2u)
    assert len(ids) == n_tokens, (len(ids), n_tokens)
    assert b"".join(tokens[i] for i in ids) == text.encode("utf-8")
    with open(os.path.join(HERE, "tokens.txt"), "w") as f:
        f.write(" ".join(map(str, ids)) + "\n")
    meta = {
        "vocab_size": VOCAB,
        "end_of_text": True,
        "pieces": len(pieces),
        "unique_pieces": len(set(pieces)),
        "merges": len(merges),
        "tokens": n_tokens,
        "first_merge_counts": counts[:10],
        "last_merge_count": counts[-1],
        "reused_token_merges": len(merges) - (len(tokens) - 257),
    }
    with open(os.path.join(HERE, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
