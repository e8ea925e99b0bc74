#!/usr/bin/env bash
# The shipped models (models/README.md). Each loads and verifies, and records its recipe, data, license
# and held-out figures in its metadata; the language models generate greedily and, on the held-out split
# their metadata names, ember-perplexity reproduces the recorded mean NLL to 1e-3; the spam classifier
# classifies and scores the recorded accuracy on the balanced SMS test split.
#   test_models.sh BUILD_DIR TEST_DATA_DIR [EXE_WRAPPER...]
# The held-out checks need ../shared/data (EMBER_SHARED_DATA): without it they are skipped (a failure under
# CI=true). Under an EXE_WRAPPER (qemu) the perplexity runs are skipped for time (minutes each there): the
# cli and golden suites check under qemu that the default model's tokens are x86-64's, bit for bit.
set -u
B=$1/tools
D=$2
shift 2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/../support/cli_lib.sh"
cli_require_tools models ember-inspect ember-generate ember-perplexity ember-classify
cli_wrap "$@"
WRAPPED=$#
M=${EMBER_MODELS_DIR:-$D/../../models}
S=${EMBER_SHARED_DATA:-${EMBER_SHARED_DATA_DEFAULT:-../shared/data}}
skips=0
skip() { skips=$((skips + 1)); echo "SKIPPED: models: $*"; }
# need FILE: the shared file is there, or the check is skipped (failed under CI).
need() {
  [[ -f $1 ]] && return 0
  if [[ -n ${CI:-} && $CI != 0 && $CI != false ]]; then bad "CI=true: missing $1"; else skip "no $1"; fi
  return 1
}
# meta MODEL KEY: a metadata entry from ember-inspect --json ('' when absent).
meta() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"].get(sys.argv[2], ""))' "$T/${1##*/}.json" "$2"
}
# close A B TOL: |A - B| <= TOL (numbers as printed).
close() { python3 -c 'import sys; a,b,t=map(float,sys.argv[1:]); sys.exit(0 if abs(a-b)<=t else 1)' "$1" "$2" "$3"; }
# val_split FILE RULE OUT: the held-out part as ember-train splits it (--split chars: after floor(0.9 n)
# characters; lines: from the first newline at or after 90% of the bytes).
val_split() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, rule, out = sys.argv[1:]
b = open(path, "rb").read()
if rule == "chars":
    s = b.decode("utf-8"); v = s[(9 * len(s)) // 10:].encode("utf-8")
else:
    v = b[b.index(b"\n", (9 * len(b)) // 10) + 1:]
open(out, "wb").write(v)
EOF
}

# Every shipped model: verified, with its provenance recorded.
models=("$M"/*.ember)
[[ ${#models[@]} -ge 3 ]] && ok || bad "expected at least 3 shipped models in $M, found ${#models[@]}"
total=0
for m in "${models[@]}"; do
  n=${m##*/}
  expect_ok "inspect $n" "$B/ember-inspect" "$m" --json
  cp "$T/out" "$T/$n.json"
  grep -q '"verified": true' "$T/$n.json" && ok || bad "$n: not verified"
  for key in recipe data license source; do
    [[ -n $(meta "$m" $key) ]] && ok || bad "$n: no '$key' metadata"
  done
  grep -q "$n" "$M/README.md" && ok || bad "$n: not described in models/README.md"
  total=$((total + $(stat -c %s "$m")))
done
[[ $total -lt $((16 * 1000 * 1000)) ]] && ok || bad "models/ holds $total bytes, over the 16 MB budget"

# Language models: greedy generation runs; the recorded val NLL is reproduced on each held-out file.
for n in shakespeare-char.ember english.ember; do
  m=$M/$n
  [[ -f $m ]] || { bad "$n is not shipped"; continue; }
  expect_ok "$n greedy" "$B/ember-generate" -m "$m" -p "The" -n 24 --temp 0 --json
  [[ $(grep -o '"ids": \[[^]]*\]' "$T/out" | tr ',' '\n' | wc -l) -eq 24 ]] && ok || bad "$n: greedy run did not give 24 ids: $(head -c 300 "$T/out")"
  rule=$(meta "$m" train.split)
  [[ $rule == chars || $rule == lines ]] && ok || bad "$n: train.split is '$rule'"
  keys=$(python3 -c 'import json,sys; print(" ".join(k for k in json.load(open(sys.argv[1]))["metadata"] if k.startswith("eval.val_nll.")))' "$T/$n.json")
  [[ -n $keys ]] && ok || bad "$n: no eval.val_nll.* metadata"
  for key in $keys; do
    file=${key#eval.val_nll.}
    if [[ $WRAPPED -gt 0 ]]; then skip "$n: val NLL on $file under the exe wrapper (time)"; continue; fi
    need "$S/text/$file.txt" || continue
    val_split "$S/text/$file.txt" "$rule" "$T/val.txt"
    expect_ok "$n perplexity $file" "$B/ember-perplexity" -m "$m" -f "$T/val.txt" --json
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mean_nll"])' "$T/out")
    want=$(meta "$m" "$key")
    close "$got" "$want" 1e-3 && ok || bad "$n: val NLL on $file is $got, metadata says $want"
  done
done

# The spam classifier: clear cases right, and the recorded accuracy on the balanced test split.
m=$M/sms-spam.ember
if [[ -f $m ]]; then
  expect_ok "classify spam" "$B/ember-classify" -m "$m" --text "WINNER!! Claim your prize now: call 09061701461, just 150p/msg" --json
  grep -q '"label": "spam"' "$T/out" && ok || bad "sms-spam: a prize text is not spam: $(cat "$T/out")"
  expect_ok "classify ham" "$B/ember-classify" -m "$m" --text "Ok, see you at home later. Do you want me to pick up some milk?" --json
  grep -q '"label": "ham"' "$T/out" && ok || bad "sms-spam: a text to a friend is not ham: $(cat "$T/out")"
  want=$(meta "$m" eval.test_accuracy)
  [[ -n $want ]] && ok || bad "sms-spam: no eval.test_accuracy metadata"
  if need "$S/classification/sms_spam.jsonl"; then
    expect_ok "classify --eval" "$B/ember-classify" -m "$m" -f "$S/classification/sms_spam.jsonl" --split test --balanced --eval --json
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"])' "$T/out")
    close "$got" "$want" 1e-6 && ok || bad "sms-spam: balanced test accuracy $got, metadata says $want"
  fi
else
  bad "sms-spam.ember is not shipped"
fi

echo "$pass passed, $fail failed, $skips skipped"
[[ $fail -eq 0 ]]
