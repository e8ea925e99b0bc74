#!/usr/bin/env bash
# Generation speed through the C API (bench_generate_c) against ember-generate: the same model, prompt,
# seed, tokens and threads, run in turns R times (each first in half the turns); prints each run's
# generation tok/s and the medians.
# A benchmark (issue 16: "the C API adds no measurable cost"), never a pass/fail test.
#   bench/capi_vs_cli.sh [-b BUILD] [-r RUNS] [MODEL [N]]      defaults: build, 15, the default model, 1000
# Both print the same text (checked); --keep-going lets N exceed the context (the same shifts in both).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build runs=15
while [[ $# -gt 0 && $1 == -* ]]; do
  case "$1" in
    -b) build=$2; shift 2 ;;
    -r) runs=$2; shift 2 ;;
    *) echo "capi_vs_cli: unknown option $1" >&2; exit 2 ;;
  esac
done
model=${1:-models/shakespeare-char.ember} n=${2:-1000}
args=(-p "ROMEO:" -n "$n" --seed 1 -t 1 --keep-going)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
speed() { sed -n 's/.*generated [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p' "$1"; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
: > "$tmp/cli" && : > "$tmp/capi"
cli() { "$build/tools/ember-generate" -m "$model" "${args[@]}" > "$tmp/cli.out" 2> "$tmp/cli.err"; }
capi() { "$build/tests/bench_generate_c" "$model" "${args[@]}" > "$tmp/capi.out" 2> "$tmp/capi.err"; }
for ((i = 0; i < runs; i++)); do
  if ((i % 2)); then capi && cli; else cli && capi; fi  # each goes first half of the time
  cmp -s "$tmp/cli.out" "$tmp/capi.out" || { echo "capi_vs_cli: the two texts differ" >&2; exit 1; }
  speed "$tmp/cli.err" >> "$tmp/cli"
  speed "$tmp/capi.err" >> "$tmp/capi"
done
echo "model $model, ${args[*]}, $runs runs each, in turns"
echo "ember-generate    tok/s: $(tr '\n' ' ' < "$tmp/cli")"
echo "C API (ember_generate) tok/s: $(tr '\n' ' ' < "$tmp/capi")"
cli=$(median < "$tmp/cli") capi=$(median < "$tmp/capi")
echo "median: ember-generate $cli tok/s, C API $capi tok/s, C API / ember-generate $(awk -v a="$capi" -v b="$cli" 'BEGIN {printf "%.3f", a / b}')"
