#!/usr/bin/python3
"""The sampler's distribution from an independent implementation (numpy, float64), for test_sampler.

For given logits, history and settings, computes the exact distribution that ember documents in
include/ember/sampler.h, step by step:
  1. repetition penalty over the last repeat_last_n history tokens (< 0: the whole history, 0: none),
     each distinct token once, ids outside [0, n_vocab) ignored: a positive logit is divided by the
     penalty, a negative one multiplied;
  2. temperature <= 0: greedy, the argmax (lowest id on ties) with probability 1;
  3. logits / temperature;
  4. top-k (<= 0 or >= n_vocab: all): the k largest, equal logits ordered by id;
  5. softmax over those;
  6. top-p (< 1): the smallest prefix of them, largest first, whose probability reaches top_p;
  7. the draw: renormalised over what is left.
and writes tests/data/sampler/reference.json: per case the inputs (float32 values written exactly) and
the probability of every token (0 outside the candidates) and the candidate ids (in draw order, those
of probability > 0).

Random cases are drawn from one seeded generator and kept only when no rounding in ember's float32
arithmetic could change the candidates: distinct scaled logits differ by more than 1e-4 relative
(exact ties are made on purpose and stay exact in float32), and no cumulative probability lies within
1e-5 of top_p. Named cases put the documented edges (the repetition window's first and last token,
tie order, top_p reached exactly) where a one-off mistake changes the answer.

Run:   /usr/bin/python3 tests/unit/sampler_reference.py
Needs: numpy. Deterministic: re-running reproduces the file byte for byte.
"""

import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "data", "sampler", "reference.json"))
N_RANDOM = 300


def f32(x):
    """The float32 nearest x, as the exact Python float ember's float parameter holds."""
    return float(np.float32(x))


def distribution(logits, history, temperature, top_k, top_p, penalty, last_n):
    """Probabilities (float64, len V) and candidate ids in draw order, straight from the definition."""
    V = len(logits)
    l = np.array(logits, dtype=np.float64)
    if last_n < 0:
        window = list(history)
    else:
        window = list(history[max(0, len(history) - last_n):])  # not history[-last_n:]: -0 is all
    if penalty != 1.0:
        for t in set(window):
            if 0 <= t < V:
                l[t] = l[t] / penalty if l[t] > 0 else l[t] * penalty
    probs = np.zeros(V)
    if temperature <= 0:
        best = max(range(V), key=lambda i: (l[i], -i))
        probs[best] = 1.0
        return probs, [best], l
    z = l / temperature
    order = sorted(range(V), key=lambda i: (-z[i], i))
    if 0 < top_k < V:
        order = order[:top_k]
    finite = [z[i] for i in order if np.isfinite(z[i])]
    mx = max(finite)
    e = np.array([np.exp(z[i] - mx) if np.isfinite(z[i]) else 0.0 for i in order])
    p = e / e.sum()
    if top_p < 1.0:
        cum = np.cumsum(p)
        keep = int(np.argmax(cum >= top_p)) + 1 if cum[-1] >= top_p else len(order)
        order = order[:keep]
        p = p[:keep] / p[:keep].sum()
    for i, pi in zip(order, p):
        probs[i] = pi
    return probs, order, z


def margins_ok(z, top_k, top_p, temperature):
    """True when float32 rounding in ember cannot change the candidates of this case."""
    zf = np.sort(np.unique(z[np.isfinite(z)]))
    if len(zf) >= 2:
        gaps = np.diff(zf) / (1.0 + np.abs(zf[1:]))
        if gaps.min() < 1e-4:
            return False
        if temperature > 0 and zf[-1] - zf[0] > 60.0:  # every candidate's weight stays a normal float
            return False
    if temperature > 0 and top_p < 1.0:
        V = len(z)
        order = sorted(range(V), key=lambda i: (-z[i], i))
        if 0 < top_k < V:
            order = order[:top_k]
        mx = max(z[i] for i in order if np.isfinite(z[i]))
        e = np.array([np.exp(z[i] - mx) if np.isfinite(z[i]) else 0.0 for i in order])
        cum = np.cumsum(e / e.sum())
        if np.abs(cum - top_p).min() < 1e-5:
            return False
    return True


def case(name, logits, history, temperature, top_k, top_p, penalty, last_n, neg_inf=(), exact=False):
    """One case; `exact`: top_p is reached exactly on purpose (equal logits: every weight is 1)."""
    V = len(logits)
    logits = [f32(x) for x in logits]
    full = list(logits)
    for i in neg_inf:
        full[i] = -np.inf
    temperature, top_p, penalty = f32(temperature), f32(top_p), f32(penalty)
    probs, order, z = distribution(full, history, temperature, top_k, top_p, penalty, last_n)
    ok = margins_ok(np.array(z), top_k, top_p, temperature)
    return ok or exact, {
        "name": name,
        "n_vocab": V,
        "logits": logits,
        "neg_inf": list(neg_inf),  # ids whose logit is -inf (JSON has no infinities)
        "history": [int(t) for t in history],
        "temperature": temperature,
        "top_k": int(top_k),
        "top_p": top_p,
        "repeat_penalty": penalty,
        "repeat_last_n": int(last_n),
        "candidates": [int(i) for i in order if probs[i] > 0],  # a -inf logit is never drawn
        "probs": [float("%.15g" % p) for p in probs],
    }


def named_cases():
    c = []
    # top-k, then top-p over the renormalised k: probs 0.5 / 0.3 / 0.2, k 2 gives 0.625 / 0.375, and
    # top_p 0.6 keeps only the first. top-p first would keep two.
    l3 = [np.log(0.5), np.log(0.3), np.log(0.2)]
    c.append(case("top-k then top-p", l3, [], 1.0, 2, 0.6, 1.0, 64))
    c.append(case("top-p alone on the same logits", l3, [], 1.0, 0, 0.6, 1.0, 64))
    # Two tokens: top-p 0.5 keeps the first alone, 0.6 both.
    c.append(case("two tokens, top-k 2, top-p 0.5", [1.0, 0.9], [], 1.0, 2, 0.5, 1.0, 64))
    c.append(case("two tokens, top-p 0.6", [1.0, 0.9], [], 1.0, 0, 0.6, 1.0, 64))
    # Ties: equal logits keep the lower ids, and top_p = 0.5 is reached exactly by two of four.
    c.append(case("ties: top-k keeps the lower ids", [0.0, 2.0, 0.0, 2.0, 2.0, 0.0], [], 1.0, 2, 1.0, 1.0, 64))
    c.append(case("ties: top-p reached exactly", [0.5, 0.5, 0.5, 0.5], [], 0.7, 0, 0.5, 1.0, 64, exact=True))
    c.append(case("ties: top-p just past a half", [0.5, 0.5, 0.5, 0.5], [], 0.7, 0, 0.5000001, 1.0, 64, exact=True))
    c.append(case("greedy: the lowest id of the largest", [1.0, 3.0, 2.0, 3.0], [], 0.0, 0, 1.0, 1.0, 64))
    # The repetition window: history[5 - 3:] = {2, 5, 4}; one more would add 1, one fewer drop 2.
    lw = [2.03, 1.71, 1.37, 1.13, 0.89, 0.61, 0.29]
    hw = [3, 1, 2, 5, 4]
    for n in (-1, 0, 1, 2, 3, 4, 5, 6, 64):
        c.append(case("window: repeat_last_n %d of 5" % n, lw, hw, 1.0, 0, 1.0, 1.5, n))
    c.append(case("window: greedy, the token just outside the window is not penalised",
                  [2.0, 1.9, 0.0], [0, 2, 2], 0.0, 0, 1.0, 1.2, 2))
    c.append(case("window: greedy, the window's first token is penalised",
                  [2.0, 1.9, 0.0], [2, 0, 2], 0.0, 0, 1.0, 1.2, 2))
    # Each token once, however often it repeats; negative logits multiplied; zero stays zero.
    c.append(case("penalty: a repeated token once", [2.0, 1.0, -1.0, 0.0, 0.5], [0, 0, 0, 0, 2, 2, 3], 1.0, 0, 1.0, 2.0, -1))
    c.append(case("penalty: negative logits multiplied", [-0.5, -1.0, -2.0], [0, 1, 0, 1], 0.8, 0, 1.0, 1.7, 64))
    c.append(case("penalty: below 1 boosts", [1.0, 0.5, -0.5], [1, 2], 1.0, 0, 1.0, 0.5, 64))
    c.append(case("penalty: history ids outside the vocabulary are ignored",
                  [1.0, 0.5, 0.25], [-1, 3, 1, 7, -5], 1.0, 0, 1.0, 2.0, -1))
    # A long history: 200 tokens, window 64 of them.
    rng = np.random.default_rng(7)
    lh = list(rng.normal(0, 1.5, 24))
    hh = list(rng.integers(0, 24, 200))
    c.append(case("penalty: 200-token history, window 64", lh, hh, 0.9, 0, 1.0, 1.3, 64))
    c.append(case("penalty: 200-token history, whole", lh, hh, 0.9, 0, 1.0, 1.3, -1))
    c.append(case("penalty: 200-token history, window 64, top-k 5, top-p 0.8", lh, hh, 0.9, 5, 0.8, 1.3, 64))
    # -inf logits (masked tokens) are never drawn, also when top-k reaches them.
    c.append(case("masked tokens", [1.0, 0.0, 2.0, 0.5, 0.0], [], 1.0, 4, 1.0, 1.0, 64, neg_inf=(1, 4)))
    for ok, x in c:
        assert ok, "named case too close to a rounding edge: " + x["name"]
    return [x for _, x in c]


def random_cases(n):
    rng = np.random.default_rng(2026)
    out = []
    while len(out) < n:
        V = int(rng.choice([2, 3, 4, 5, 8, 13, 17, 32, 50, 64]))
        logits = rng.normal(0.0, rng.uniform(0.5, 3.0), V).astype(np.float32)
        if rng.random() < 0.3:  # exact ties
            for _ in range(int(rng.integers(1, 4))):
                logits[rng.integers(0, V)] = logits[rng.integers(0, V)]
        neg_inf = ()
        if V > 3 and rng.random() < 0.1:
            neg_inf = tuple(sorted(set(int(i) for i in rng.integers(0, V, int(rng.integers(1, V // 2 + 1))))))
        temperature = float(rng.choice([0.0, 0.3, 0.7, 1.0, 1.5, rng.uniform(0.2, 2.5)], p=[0.05, 0.15, 0.2, 0.25, 0.15, 0.2]))
        top_k = int(rng.choice([0, 1, 2, 3, max(1, V // 2), V - 1, V, V + 5, int(rng.integers(1, V + 1))]))
        top_p = float(rng.choice([1.0, 0.95, 0.9, 0.5, 0.3, rng.uniform(0.05, 1.0)]))
        penalty = float(rng.choice([1.0, 1.1, 1.3, 2.0, 0.8, rng.uniform(1.0, 3.0)]))
        pool = rng.integers(0, V, max(1, V // 3))  # few distinct tokens: repeats
        hl = int(rng.integers(0, 60))
        history = [int(t) for t in rng.choice(pool, hl)] if hl else []
        if hl and rng.random() < 0.1:
            history[int(rng.integers(0, hl))] = int(rng.choice([-1, V, V + 7]))
        last_n = int(rng.choice([-1, 0, 1, 2, max(0, hl - 1), hl, hl + 1, int(rng.integers(0, hl + 1)), 64]))
        if len(neg_inf) >= V:
            continue
        ok, c = case("random %d" % len(out), logits, history, temperature, top_k, top_p, penalty, last_n, neg_inf)
        if ok:
            out.append(c)
    return out


def main():
    cases = named_cases() + random_cases(N_RANDOM)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write('{"generator": "tests/unit/sampler_reference.py", "cases": [\n')
        f.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
        f.write("\n]}\n")
    print("wrote %s: %d cases" % (OUT, len(cases)))


if __name__ == "__main__":
    main()
