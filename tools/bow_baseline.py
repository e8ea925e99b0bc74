#!/usr/bin/env python3
"""Bag-of-words logistic regression on a classification JSONL: the classical baseline that the README's
spam table quotes beside ember's fine-tuned GPTs (numpy only).

Features: presence of the 5,000 most frequent train-split words (lowercase [a-z0-9$!]+) plus a bias;
full-batch gradient descent on the mean logistic loss + L2 (300 steps, step 1). The L2 weight is chosen
on the val split; test accuracy is reported for it.

    /usr/bin/python3 tools/bow_baseline.py ../shared/data/classification/sms_spam.jsonl --balanced
    /usr/bin/python3 tools/bow_baseline.py ../shared/data/classification/spamassassin.jsonl
"""
import argparse
import collections
import json
import re

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jsonl")
    ap.add_argument("--balanced", action="store_true", help='rows with "balanced": true only')
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.jsonl, encoding="utf-8")]
    if a.balanced:
        rows = [r for r in rows if r.get("balanced")]
    words = lambda s: set(re.findall(r"[a-z0-9$!]+", s.lower()))
    split = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    df = collections.Counter(w for r in split["train"] for w in words(r["text"]))
    vocab = {w: i for i, (w, _) in enumerate(df.most_common(5000))}
    labels = sorted({r["label"] for r in split["train"]})

    def xy(rs):
        x = np.zeros((len(rs), len(vocab) + 1), np.float32)
        x[:, -1] = 1
        for i, r in enumerate(rs):
            for w in words(r["text"]):
                if w in vocab:
                    x[i, vocab[w]] = 1
        return x, np.array([labels.index(r["label"]) for r in rs], np.float32)

    (xt, yt), (xv, yv), (xs, ys) = (xy(split[s]) for s in ("train", "val", "test"))
    best = None
    for l2 in (1e-4, 1e-3, 1e-2):
        w = np.zeros(xt.shape[1], np.float32)
        for _ in range(300):
            p = 1 / (1 + np.exp(-(xt @ w)))
            w -= xt.T @ (p - yt) / len(yt) + l2 * w
        acc = lambda x, y: 100.0 * ((x @ w > 0) == (y > 0.5)).mean()
        print("L2 %g: val %.2f%%, test %.2f%%" % (l2, acc(xv, yv), acc(xs, ys)))
        if best is None or acc(xv, yv) > best[1]:
            best = (l2, acc(xv, yv), acc(xs, ys))
    print("chosen on val: L2 %g, test accuracy %.2f%% (%d rows)" % (best[0], best[2], len(ys)))


if __name__ == "__main__":
    main()
