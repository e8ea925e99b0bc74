#!/usr/bin/env bash
# Command-line behaviour of the tools: a working path, and every bad input of issue 2 giving a clear
# one-line error and a non-zero exit (never a crash).
#   test_cli.sh BUILD_DIR TEST_DATA_DIR [EXE_WRAPPER...]
# EXE_WRAPPER: for a cross build, the command that runs the target's programs (tests/meson.build passes
# the arch layer's, e.g. qemu-aarch64 -L /usr/aarch64-linux-gnu ...); every tool then runs through it.
set -u
B=$1/tools
D=$2
shift 2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
source "$(dirname "$0")/../support/cli_lib.sh"
cli_require_tools cli ember-generate ember-perplexity ember-inspect ember-quantize ember-bench ember-classify
cli_wrap "$@"

# A working model: the golden nanoGPT char model (65 characters; its n_ctx from the fixture's golden.json).
NCTX=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["n_ctx"])' "$D/golden/nanogpt/golden.json")
[[ $NCTX =~ ^[0-9]+$ && $NCTX -ge 16 ]] || { echo "FAIL: cannot read n_ctx of the nanogpt fixture: '$NCTX'"; exit 1; }
M=$T/nano.ember
expect_ok "quantize nanogpt" "$B/ember-quantize" "$D/golden/nanogpt" "$M" --type f32
expect_ok "inspect" "$B/ember-inspect" "$M"
grep -q "verified OK" "$T/out" && ok || bad "inspect does not say verified"
expect_ok "inspect json" "$B/ember-inspect" "$M" --json
grep -Eq "\"n_ctx\": $NCTX([^0-9]|\$)" "$T/out" && ok || bad "inspect --json lacks n_ctx"

G="$B/ember-generate"
expect_ok "generate greedy json" "$G" -m "$M" -p "First" -n 10 --temp 0 --json
[[ $(grep -o '"ids": \[[^]]*\]' "$T/out" | tr ',' '\n' | wc -l) -eq 10 ]] && ok || bad "json does not hold 10 ids: $(cat "$T/out")"
cp "$T/out" "$T/greedy1"
expect_ok "generate greedy again" "$G" -m "$M" -p "First" -n 10 --temp 0 --json --threads 2
cmp -s "$T/out" "$T/greedy1" && ok || bad "greedy output differs between runs/threads"
expect_ok "generate seeded 1" "$G" -m "$M" -p "First" -n 20 --seed 5 --json
cp "$T/out" "$T/seed1"
expect_ok "generate seeded 2" "$G" -m "$M" -p "First" -n 20 --seed 5 --json
cmp -s "$T/out" "$T/seed1" && ok || bad "same seed gave different text"
expect_ok "generate streams text" "$G" -m "$M" -p "First" -n 5 --temp 0
grep -q "^First" "$T/out" && ok || bad "streamed output does not start with the prompt"
grep -q "tok/s" "$T/err" && ok || bad "no speed line on stderr"

# Context: NCTX tokens. 5 prompt + NCTX+8 new overflows: stops with a message, or shifts with --keep-going.
NOVER=$((NCTX + 8))
expect_ok "context full stops" "$G" -m "$M" -p "First" -n $NOVER --temp 0 --json
grep -q "context full" "$T/err" && ok || bad "no context-full message"
expect_ok "keep going" "$G" -m "$M" -p "First" -n $NOVER --temp 0 --json --keep-going
[[ $(grep -o '"ids": \[[^]]*\]' "$T/out" | tr ',' '\n' | wc -l) -eq $NOVER ]] && ok || bad "--keep-going did not give $NOVER ids"

# Bad input, one line each.
expect_fail "prompt longer than n_ctx" "longer than the model's context" "$G" -m "$M" -p "$(printf 'a%.0s' $(seq $NOVER))"
expect_fail "empty prompt" "prompt is empty" "$G" -m "$M" -p ""
expect_fail "invalid UTF-8 prompt" "UTF-8" "$G" -m "$M" -p $'ab\xff\xfecd'
expect_fail "unknown character" "not in the vocabulary" "$G" -m "$M" -p "x~y"
grep -q "nano.ember: prompt: encode: character '~'" "$T/err" && grep -q "use the English starter, models/english.ember" "$T/err" &&
  ok || bad "unknown character: the message names neither the model nor what to use instead: $(cat "$T/err")"
expect_fail "threads 0" "--threads must be between 1" "$G" -m "$M" -p "First" --threads 0
expect_fail "no model" "no model given" "$G" -p "hi"
expect_fail "missing model file" "no such file" "$G" -m "$T/nope.ember" -p "hi"
expect_fail "unknown option" "unknown option" "$G" -m "$M" -p "hi" --bogus
expect_fail "bad number" "must be a number" "$G" -m "$M" -p "hi" --temp warm
expect_fail "token id out of range" "outside the vocabulary" "$G" -m "$M" --ids "1 2 999"

head -c 1000 "$M" > "$T/trunc.ember"
expect_fail "truncated model" "truncated" "$B/ember-inspect" "$T/trunc.ember"
expect_fail "truncated model (generate)" "trunc.ember" "$G" -m "$T/trunc.ember" -p "First"
{ head -c 8 "$M"; printf 'XXXX'; tail -c +13 "$M"; } > "$T/ident.ember"
expect_fail "wrong file identifier" "not an ember model" "$B/ember-inspect" "$T/ident.ember"
expect_fail "not a model at all" "not an ember model" "$B/ember-inspect" "$D/golden/nanogpt/config.json"

# A safetensors header that lies about its offsets: 2 floats declared, data_offsets run past the end.
mkdir -p "$T/lie"
cp "$D/golden/nanogpt/config.json" "$T/lie/"
hdr='{"transformer.wte.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}}'
len=${#hdr}
printf "$(printf '\\x%02x' $((len & 255)) $(((len >> 8) & 255)) 0 0 0 0 0 0)" > "$T/lie/model.safetensors"
printf '%s' "$hdr" >> "$T/lie/model.safetensors"
head -c 8 /dev/zero >> "$T/lie/model.safetensors"
expect_fail "lying safetensors header" "transformer.wte.weight" "$B/ember-quantize" "$T/lie" "$T/lie.ember"
[[ ! -e "$T/lie.ember" ]] && ok || bad "failed quantize left an output file"
ls "$T"/lie.ember.tmp* >/dev/null 2>&1 && bad "failed quantize left a temporary" || ok
# A full disk (here a file-size limit, with SIGXFSZ ignored so writes fail with EFBIG): the error is
# reported, the previous file at OUTPUT is untouched and no temporary is left.
printf 'previous model' > "$T/kept.ember"
( ulimit -f 64; trap '' XFSZ; "$B/ember-quantize" "$D/golden/nanogpt" "$T/kept.ember" --type f32 ) >"$T/out" 2>"$T/err"
rc=$?
[[ $rc -eq 1 ]] && grep -q "previous file, if any, is unchanged" "$T/err" && ok || bad "full disk: exit $rc, $(cat "$T/err")"
[[ "$(cat "$T/kept.ember")" == "previous model" ]] && ok || bad "full disk damaged the previous file"
ls "$T"/kept.ember.* >/dev/null 2>&1 && bad "full disk left a temporary" || ok

expect_fail "quantize bad type" "not supported" "$B/ember-quantize" "$D/golden/nanogpt" "$T/x.ember" --type q4

# Perplexity: the tool's number equals the numpy reference (golden.json text_ppl, ctx n_ctx).
P="$B/ember-perplexity"
expect_ok "perplexity text" "$P" -m "$M" -f "$D/golden/nanogpt/text.txt" --json
got=$(grep -o '"mean_nll": [0-9.e+-]*' "$T/out" | cut -d' ' -f2)
want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text_ppl"][0]["mean_nll"])' "$D/golden/nanogpt/golden.json")
awk -v g="$got" -v w="$want" 'BEGIN { d = (g - w) / w; if (d < 0) d = -d; exit !(w > 0 && d < 1e-4) }' && ok || bad "perplexity $got vs reference $want"
expect_ok "perplexity tokens" "$P" -m "$M" --tokens "$D/golden/nanogpt/tokens.txt" --ctx 16 --json
grep -q '"ctx": 16' "$T/out" && ok || bad "perplexity --ctx ignored"
expect_fail "perplexity ctx too big" "--ctx must be between" "$P" -m "$M" --tokens "$D/golden/nanogpt/tokens.txt" --ctx $((NCTX + 1))
printf '1 2 x' > "$T/badtok.txt"
expect_fail "perplexity bad token file" "badtok.txt" "$P" -m "$M" --tokens "$T/badtok.txt"

# int8: the quantizer reports per-layer errors and perplexities, and refuses when int8 costs too much.
Q="$B/ember-quantize"
expect_ok "quantize int8 (sampled calibration)" "$Q" "$D/golden/nanogpt" "$T/nano8.ember" --calib-tokens 64
grep -q "sampled from the float model" "$T/err" && ok || bad "no note about the sampled calibration"
grep -q "^h.2.mlp.c_proj" "$T/err" && ok || bad "no per-layer error table"
grep -q "perplexity on the calibration tokens" "$T/err" && ok || bad "no perplexity comparison"
"$B/ember-inspect" "$T/nano8.ember" --json > "$T/out" 2>&1
grep -q '"name": "h.0.attn.c_attn.weight", "dtype": "i8"' "$T/out" && ok || bad "int8 model lacks int8 weights"
expect_ok "generate int8" "$G" -m "$T/nano8.ember" -p "First" -n 8 --temp 0 --json
# --meta adds entries and replaces ember-quantize's own (re-writing a shipped model to add metadata keeps
# its original calibration line); a key-less entry is a usage error.
expect_ok "quantize with --meta" "$Q" "$T/nano8.ember" "$T/meta8.ember" --calib-tokens 64 --meta license=MIT \
  --meta "calibration=as measured before" --meta eval.x=1.5
"$B/ember-inspect" "$T/meta8.ember" --json > "$T/out" 2>&1
grep -q '"license": "MIT"' "$T/out" && grep -q '"eval.x": "1.5"' "$T/out" && ok || bad "--meta entries missing: $(head -c 600 "$T/out")"
grep -q '"calibration": "as measured before"' "$T/out" && ok || bad "--meta does not replace the calibration entry"
expect_fail "--meta without a key" "--meta wants KEY=VALUE" "$Q" "$T/nano8.ember" "$T/meta9.ember" --meta =x
cp "$D/golden/gpt2/tokens.txt" "$T/calib.ids"
expect_fail "quantize refuses" "nothing written" "$Q" "$D/golden/gpt2" "$T/refused.ember" --calib "$T/calib.ids" --max-ppl-increase 0
[[ ! -e "$T/refused.ember" ]] && ok || bad "refused quantization left an output file"
ls "$T"/refused.ember.* >/dev/null 2>&1 && bad "refused quantization left temporaries" || ok
expect_ok "quantize accepts with a looser limit" "$Q" "$D/golden/gpt2" "$T/g2.ember" --calib "$T/calib.ids" --max-ppl-increase 0.05
printf '1 2 9999' > "$T/badcalib.ids"
expect_fail "calibration id out of range" "outside the vocabulary" "$Q" "$D/golden/gpt2" "$T/x.ember" --calib "$T/badcalib.ids"
expect_fail "text calibration without tokenizer" "no tokenizer" "$Q" "$D/golden/gpt2" "$T/x.ember" --calib "$D/golden/nanogpt/text.txt"

for tool in ember-generate ember-perplexity ember-inspect ember-quantize ember-bench ember-classify; do
  "$B/$tool" --help > "$T/out" 2>&1 && grep -q "^usage: $tool" "$T/out" && ok || bad "$tool --help"
  "$B/$tool" --version > "$T/out" 2>&1 && grep -Eq "^$tool \(ember [0-9]+\.[0-9]+\.[0-9]+\), kernels: (ref|avx2|avxvnni|avx512|neon|neondot)$" "$T/out" \
    && ok || bad "$tool --version: $(cat "$T/out")"
done

expect_fail "classify without a head" "no classifier head" "$B/ember-classify" -m "$M" --text "hello"
expect_fail "classify eval needs a file" "--eval needs" "$B/ember-classify" -m "$M" --text "hello" --eval

# The default model gives the same tokens on every machine: the outputs below were written on x86-64
# (AVX2) and are compared byte for byte, so a cross build run under qemu (tools/test.sh) checks its NEON
# path against them. Logits are bit-identical across ISAs (kernels lane for lane the same, no implicit
# FMA contraction: meson.build). After a deliberate change to the model, kernels or sampler, regenerate:
#   build/tools/ember-generate -m models/shakespeare-char.ember -p "ROMEO:" -n 64 --temp 0 --json > tests/data/default_model_greedy64.json
#   build/tools/ember-generate -m models/shakespeare-char.ember -p "ROMEO:" -n 400 --seed 1 --keep-going --json > tests/data/default_model_seed1.json
DM=${EMBER_MODELS_DIR:-$D/../../models}/shakespeare-char.ember
expect_ok "default model greedy 64" "$G" -m "$DM" -p "ROMEO:" -n 64 --temp 0 --json
cmp -s "$T/out" "$D/default_model_greedy64.json" && ok || bad "default model greedy tokens differ from x86-64's: $(head -c 300 "$T/out")"
# The reference table (libm's exp, erf) differs from the SIMD tables in the last bits: a seeded run of
# 400 tokens may sample another token somewhere, so only the SIMD tables are held to the stored run.
expect_ok "default model seeded 400" "$G" -m "$DM" -p "ROMEO:" -n 400 --seed 1 --keep-going --json
if "$G" --version | grep -q "kernels: ref$"; then
  echo "SKIPPED: cli: default model seeded 400 against the stored run (this process runs the reference kernels)"
else
  cmp -s "$T/out" "$D/default_model_seed1.json" && ok || bad "default model seeded tokens differ from x86-64's: $(head -c 300 "$T/out")"
fi

expect_ok "bench" "$B/ember-bench" -m "$T/nano8.ember" -p 8,$((2 * NCTX)) -n 8 -t 1 -r 1 --bandwidth-mib 1 --json
grep -q '"test": "pp8"' "$T/out" && grep -q '"test": "tg8"' "$T/out" && ok || bad "bench json lacks results: $(cat "$T/out")"
# The roofline: the read bandwidth of the thread count, and the decode row's bytes per token and fraction.
grep -Eq '"bandwidth": \[\{"threads": 1, "buffer_bytes": 1048576, "bytes_per_s": [0-9]+' "$T/out" && ok || bad "bench json lacks the read bandwidth: $(head -c 400 "$T/out")"
grep '"test": "tg8"' "$T/out" | grep -Eq '"bytes_per_token": [1-9][0-9]*, "fits_llc": (true|false), "roofline": [0-9.]+' && ok || bad "bench json's decode row lacks bytes per token and roofline: $(cat "$T/out")"
grep '"test": "pp8"' "$T/out" | grep -q 'roofline' && bad "bench json gives a prefill row a roofline" || ok
grep -Eq '"kernels": "(avx512|avxvnni|avx2|neondot|neon|ref)"' "$T/out" && ok || bad "bench json does not name the kernel table: $(head -c 300 "$T/out")"
grep -q "skipping pp$((2 * NCTX))" "$T/err" && ok || bad "bench does not skip prompts longer than n_ctx"
expect_ok "bench table" "$B/ember-bench" -m "$T/nano8.ember" -p 8 -n 8 -t 1 -r 1 --bandwidth-mib 1
grep -q "read bandwidth (buffer 1.0 MiB" "$T/out" && grep -Eq '^\| tg8 .*\| +[0-9.]+ \| +[0-9.]+% \|$' "$T/out" && ok || bad "bench table lacks the roofline: $(cat "$T/out")"
expect_ok "bench 2 sessions" "$B/ember-bench" -m "$T/nano8.ember" -p 8 -n 8 -t 1 -s 1,2 -r 1 --bandwidth-mib 0 --json
grep -q '"bandwidth": \[\]' "$T/out" && grep '"test": "tg8"' "$T/out" | grep -q '"roofline": null' && ok || bad "bench --bandwidth-mib 0 still measures: $(head -c 400 "$T/out")"
grep -q '"sessions": 2' "$T/out" && grep -q '"sessions": 1' "$T/out" && ok || bad "bench json lacks the 2-session rows: $(cat "$T/out")"
expect_fail "bench bad list" "comma-separated" "$B/ember-bench" -m "$T/nano8.ember" -t 1,x
expect_fail "bench bandwidth buffer past memory" "exceeds the machine's memory" "$B/ember-bench" -m "$T/nano8.ember" --bandwidth-mib 1048576
expect_fail "bench bandwidth buffer too small" "too small for 32 threads" "$B/ember-bench" -m "$T/nano8.ember" -t 32 --oversubscribe --bandwidth-mib 1

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
