#!/usr/bin/env bash
# The tools under hostile input (issue 14): every reproducer of the red-team pass and more of each class,
# for every tool and input kind. Each case expects `tool: error: <reason naming the file or flag>` and
# exit 1 (2 for a bad command line), never a signal, a hang (each command has a time limit), a lost
# input or a leftover temporary. Run by meson natively, under qemu, and in the ASan + UBSan build.
#   test_hostile.sh BUILD_DIR TEST_DATA_DIR [EXE_WRAPPER...]
set -u
B=$1/tools
D=$2
shift 2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../support/cli_lib.sh"
cli_require_tools hostile ember-generate ember-perplexity ember-inspect ember-quantize ember-bench ember-classify ember-train
cli_wrap "$@"
LIMIT=${EMBER_HOSTILE_TIMEOUT:-120}  # seconds per command: a hang fails instead of stalling the suite

# expect_error NAME CODE SUBSTRING CMD...: exit CODE exactly (1: an error, 2: a bad command line), the
# message on stderr, no signal, no hang.
expect_error() {
  local name=$1 code=$2 want=$3; shift 3
  timeout -k 5 "$LIMIT" "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then bad "$name: still running after $LIMIT s (a hang)"; return; fi
  if [[ $rc -ge 128 ]]; then bad "$name: killed by signal $((rc - 128)): $(tail -c 300 "$T/err")"; return; fi
  if [[ $rc -ne $code ]]; then bad "$name: exit $rc, expected $code: $(head -c 300 "$T/err")"; return; fi
  local tool=${1##*/}
  if [[ $code -eq 1 ]] && ! grep -q "^$tool: error: " "$T/err"; then bad "$name: no '$tool: error:' line: $(head -c 300 "$T/err")"; return; fi
  if ! grep -qF -- "$want" "$T/err"; then bad "$name: stderr lacks '$want': $(head -c 300 "$T/err")"; return; fi
  ok
}
# expect_done NAME CMD...: exit 0 within the limit.
expect_done() {
  local name=$1; shift
  timeout -k 5 "$LIMIT" "$@" >"$T/out" 2>"$T/err"; local rc=$?
  [[ $rc -eq 0 ]] && ok || bad "$name: exit $rc: $(head -c 300 "$T/err")"
}
no_temporaries() {  # no_temporaries NAME DIR: nothing named *.tmp.* left in DIR
  if ls "$2" | grep -q '\.tmp\.'; then bad "$1: temporaries left: $(ls "$2" | grep '\.tmp\.' | head -3)"; else ok; fi
}

# Fixtures: the golden nanoGPT char model (65 characters), tiny checkpoints made by a stdlib script (a
# context of one token, a padded vocabulary, a nanoGPT state dict with a Hugging Face config).
W=$T/w
mkdir -p "$W"
M=$W/nano.ember
expect_done "fixture: nanogpt f32" "$B/ember-quantize" "$D/golden/nanogpt" "$M" --type f32
python3 "$HERE/make_checkpoints.py" "$W" || { echo "FAIL: make_checkpoints.py"; exit 1; }
for c in ctx1 padded linear_hf; do expect_done "fixture: $c" "$B/ember-quantize" "$W/$c" "$W/$c.ember" --type f32; done
TEXT=$D/golden/nanogpt/text.txt
cp "$TEXT" "$W/text.txt"
G=$B/ember-generate

# 1. Every id a model can produce prints: special ids (a fine-tuned classifier's start and extract tokens,
#    a padded vocabulary) as "<|token N|>", listed in --json's special_ids; decoding never aborts.
{
  for i in $(seq 1 12); do
    echo "{\"text\": \"First Citizen speaks $(printf "%${i}s" | tr ' ' a)\", \"label\": \"a\", \"split\": \"train\"}"
    echo "{\"text\": \"we are accounted poor $(printf "%${i}s" | tr ' ' b)\", \"label\": \"b\", \"split\": \"train\"}"
  done
} > "$W/ds.jsonl"
expect_done "fine-tune a classifier" "$B/ember-train" finetune --init "$M" --data "$W/ds.jsonl" --out "$W/ft.ember" --epochs 1 --eval-split train
START=$("$B/ember-inspect" "$W/ft.ember" | sed -n 's/.*classifier.start_id = \([0-9]*\).*/\1/p')
[[ $START =~ ^[0-9]+$ ]] && ok || bad "fine-tuned model records no start id"
expect_done "generate from the start token" "$G" -m "$W/ft.ember" --ids "$START 1 2" -n 3 --temp 0
grep -qF "<|token $START|>" "$T/out" && ok || bad "the start token does not print as <|token $START|>: $(head -c 200 "$T/out")"
expect_done "generate json with the start token" "$G" -m "$W/ft.ember" --ids "$START 1 2" -n 3 --temp 0 --json
expect_done "padded vocabulary, high temperature" "$G" -m "$W/padded.ember" -p "ab" -n 60 --temp 50 --top-k 0 --top-p 1 --seed 3 --json
python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
special = [i for i in j["ids"] if i >= 10]
assert special, "no padded id was sampled"
assert sorted(set(special)) == sorted(j["special_ids"]), (special, j["special_ids"])
for i in special: assert "<|token %d|>" % i in j["text"], i
' "$T/out" && ok || bad "padded ids: special_ids or placeholders wrong: $(head -c 300 "$T/out")"
expect_done "padded vocabulary, streamed" "$G" -m "$W/padded.ember" -p "ab" -n 60 --temp 50 --top-k 0 --top-p 1 --seed 3
grep -q "<|token 1[0-5]|>" "$T/out" && ok || bad "streamed padded ids lack placeholders"
expect_done "classify the fine-tuned model" "$B/ember-classify" -m "$W/ft.ember" --text "First Citizen"

# 2. Threads beyond the CPUs run as the CPUs (the speed line says how many ran); never a usage error.
CPUS=$(nproc)
for t in 3 64 1024; do
  expect_done "generate -t $t" "$G" -m "$M" -p "First" -n 4 -t "$t"
  n=$(grep -o '| [0-9]* threads' "$T/err" | grep -o '[0-9]*')
  [[ -n $n && $n -le $CPUS && $n -le $t ]] && ok || bad "-t $t ran $n threads on $CPUS CPUs"
done
expect_done "perplexity -t 64" "$B/ember-perplexity" -m "$M" -f "$TEXT" -t 64
grep -Eq "[0-9.]+ tokens/s, [0-9]+ threads" "$T/err" && ok || bad "perplexity speed line"
expect_error "threads 1025" 2 "--threads must be between 1 and 1024" "$G" -m "$M" -p "First" -t 1025
expect_error "threads -1" 2 "--threads must be between 1 and 1024" "$G" -m "$M" -p "First" -t -1
expect_error "threads huge" 2 "--threads must be an integer" "$G" -m "$M" -p "First" -t 99999999999999999999

# 3. Not a regular file: FIFOs, devices and directories are refused by name before anything blocks.
mkfifo "$W/fifo"
mkdir "$W/dir"
for bad_in in "$W/fifo" /dev/zero "$W/dir"; do
  case $bad_in in
    */fifo) why="a FIFO" ;;
    /dev/zero) why="a character device" ;;
    *) why="is a directory" ;;
  esac
  expect_error "inspect $bad_in" 1 "$why" "$B/ember-inspect" "$bad_in"
  expect_error "generate -m $bad_in" 1 "$why" "$G" -m "$bad_in" -p "First"
  expect_error "perplexity -m $bad_in" 1 "$why" "$B/ember-perplexity" -m "$bad_in" -f "$TEXT"
  expect_error "perplexity -f $bad_in" 1 "$why" "$B/ember-perplexity" -m "$M" -f "$bad_in"
  expect_error "perplexity --tokens $bad_in" 1 "$why" "$B/ember-perplexity" -m "$M" --tokens "$bad_in"
  expect_error "bench -m $bad_in" 1 "$why" "$B/ember-bench" -m "$bad_in" -p 8 -n 8 -t 1 -r 1
  expect_error "classify -m $bad_in" 1 "$why" "$B/ember-classify" -m "$bad_in" --text "x"
  expect_error "classify -f $bad_in" 1 "$why" "$B/ember-classify" -m "$W/ft.ember" -f "$bad_in"
  expect_error "quantize --calib $bad_in" 1 "$why" "$B/ember-quantize" "$D/golden/nanogpt" "$W/q.ember" --calib "$bad_in"
  expect_error "train --data $bad_in" 1 "$why" "$B/ember-train" pretrain --data "$bad_in" --out "$W/t.ember" --iters 1
  expect_error "finetune --data $bad_in" 1 "$why" "$B/ember-train" finetune --init "$M" --data "$bad_in" --out "$W/t.ember"
  expect_error "finetune --init $bad_in" 1 "$why" "$B/ember-train" finetune --init "$bad_in" --data "$W/ds.jsonl" --out "$W/t.ember"
  expect_error "plot $bad_in" 1 "$why" "$B/ember-train" plot "$bad_in" -o "$W/p.svg"
done
expect_error "quantize a FIFO" 1 "fifo" "$B/ember-quantize" "$W/fifo" "$W/q.ember"
mkdir "$W/fifock"
cp "$D/golden/nanogpt/config.json" "$W/fifock/"
mkfifo "$W/fifock/model.safetensors"
expect_error "checkpoint whose model.safetensors is a FIFO" 1 "model.safetensors" "$B/ember-quantize" "$W/fifock" "$W/q.ember"
expect_error "train --resume from a FIFO" 1 "a FIFO" "$B/ember-train" pretrain --data "$TEXT" --out "$W/fifo" --resume --iters 1

# 4. Loss curves of degenerate and extreme ranges draw and end.
for v in 1e30 1e300 -1e308 5 0; do
  { echo "iter,lr,loss,grad_norm,ms,train_loss,val_loss"; echo "1,0.001,$v,1,1,,"; echo "2,0.001,$v,1,1,,"; echo "3,,,,,$v,$v"; } > "$W/flat.csv"
  expect_done "plot equal losses $v" "$B/ember-train" plot "$W/flat.csv" -o "$W/flat.svg"
  [[ $(wc -c < "$W/flat.svg") -lt 20000 ]] && ok || bad "plot $v: SVG of $(wc -c < "$W/flat.svg") bytes"
done

# 5. No tool writes over its own input (same inode: also through a symbolic or a hard link), over one of
#    its other outputs, or into a directory; the input stays as it was.
cp "$TEXT" "$W/d.txt"
ln -s "$W/d.txt" "$W/d-link.txt"
ln "$W/d.txt" "$W/d-hard.txt"
cp "$M" "$W/in.ember"
cp "$W/in.ember" "$W/in.ember.bak"
expect_error "quantize INPUT INPUT" 1 "is also an input" "$B/ember-quantize" "$W/in.ember" "$W/in.ember" --type f32
expect_error "quantize INPUT LINK" 1 "is also an input" "$B/ember-quantize" "$W/in.ember" "$W/../w/in.ember"
expect_error "quantize over its calibration text" 1 "is also an input" "$B/ember-quantize" "$W/in.ember" "$W/d.txt" --calib "$W/d.txt"
cp -r "$D/golden/nanogpt" "$W/ck"
expect_error "quantize over the checkpoint's vocabulary" 1 "is also an input" "$B/ember-quantize" "$W/ck" "$W/ck/vocab_chars.json" --type f32
expect_error "quantize over the safetensors" 1 "is also an input" "$B/ember-quantize" "$W/ck/model.safetensors" "$W/ck/model.safetensors" --type f32
cmp -s "$W/ck/model.safetensors" "$D/golden/nanogpt/model.safetensors" && cmp -s "$W/ck/vocab_chars.json" "$D/golden/nanogpt/vocab_chars.json" && ok || bad "quantize damaged its input"
expect_error "pretrain --out DATA" 1 "is also an input" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/d.txt" --iters 1
expect_error "pretrain --out DATA (symlink)" 1 "is also an input" "$B/ember-train" pretrain --data "$W/d-link.txt" --out "$W/d.txt" --iters 1
expect_error "pretrain --out DATA (hard link)" 1 "is also an input" "$B/ember-train" pretrain --data "$W/d-hard.txt" --out "$W/d.txt" --iters 1
expect_error "pretrain --csv DATA" 1 "is also an input" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/t.ember" --csv "$W/d.txt" --iters 1
expect_error "pretrain --csv OUT" 1 "are one file" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/t.ember" --csv "$W/t.ember" --iters 1
expect_error "pretrain --init OUT... --out INIT" 1 "is also an input" "$B/ember-train" pretrain --data "$W/d.txt" --init "$W/in.ember" --out "$W/in.ember" --iters 1
expect_error "pretrain --out a directory" 1 "is a directory" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/dir" --iters 1
expect_error "pretrain --out in a missing directory" 1 "does not exist" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/nodir/t.ember" --iters 1
expect_error "finetune --out INIT" 1 "is also an input" "$B/ember-train" finetune --init "$W/in.ember" --data "$W/ds.jsonl" --out "$W/in.ember"
expect_error "finetune --out DATA" 1 "is also an input" "$B/ember-train" finetune --init "$W/in.ember" --data "$W/ds.jsonl" --out "$W/ds.jsonl"
printf 'iter,lr,loss,grad_norm,ms,train_loss,val_loss\n1,0.001,2,1,1,,\n' > "$W/p.csv"
cp "$W/p.csv" "$W/p.csv.bak"
expect_error "plot CSV -o CSV" 1 "is also an input" "$B/ember-train" plot "$W/p.csv" -o "$W/p.csv"
cmp -s "$W/d.txt" "$TEXT" && cmp -s "$W/in.ember" "$W/in.ember.bak" && cmp -s "$W/p.csv" "$W/p.csv.bak" && ok || bad "a refused output changed an input"
no_temporaries "refused outputs" "$W"

# 6. NaN: a float model with a NaN weight is refused by the quantizer (naming the tensor), and its NaN
#    perplexity is an error naming the position; NaN is refused by every numeric flag.
python3 - "$M" "$W/nan.ember" "$B/ember-inspect" <<'PY' && ok || bad "could not write the NaN model"
import json, struct, subprocess, sys
src, dst, inspect = sys.argv[1:4]
info = json.loads(subprocess.run([inspect, src, "--json"], capture_output=True, check=True).stdout)
t = next(t for t in info["tensors"] if t["name"] == "ln_f.weight")
data = bytearray(open(src, "rb").read())
data[t["offset"] + 8:t["offset"] + 12] = struct.pack("<f", float("nan"))  # element 2
open(dst, "wb").write(data)
PY
expect_error "quantize a NaN model" 1 "tensor 'ln_f.weight' holds NaN at element 2" "$B/ember-quantize" "$W/nan.ember" "$W/nan8.ember"
[[ ! -e "$W/nan8.ember" ]] && ok || bad "quantize wrote a model from a NaN model"
expect_error "perplexity of a NaN model" 1 "not finite" "$B/ember-perplexity" -m "$W/nan.ember" -f "$TEXT"
expect_error "pretrain --init a NaN model" 1 "holds NaN" "$B/ember-train" pretrain --data "$W/d.txt" --init "$W/nan.ember" --out "$W/t.ember" --iters 1
for flag in "--temp nan" "--temp inf" "--top-p nan" "--repeat-penalty nan" "--temp -1" "--top-p 0" "--top-p 1.5" "--repeat-penalty 0"; do
  expect_error "generate $flag" 2 "${flag%% *} must be" "$G" -m "$M" -p "First" $flag
done
expect_error "quantize --max-ppl-increase nan" 2 "--max-ppl-increase must be a number" "$B/ember-quantize" "$M" "$W/q.ember" --max-ppl-increase nan
expect_error "train --lr nan" 2 "--lr must be a number" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/t.ember" --lr nan
expect_error "train --dropout 1" 2 "--dropout must be between" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/t.ember" --dropout 1

# 7. A dataset label the classifier could not store is refused when fine-tuning, naming the line.
printf '{"text": "a", "label": "", "split": "train"}\n{"text": "b", "label": "x", "split": "train"}\n' > "$W/empty-label.jsonl"
expect_error "empty label" 1 "empty-label.jsonl line 1: a class label is empty" "$B/ember-train" finetune --init "$M" --data "$W/empty-label.jsonl" --out "$W/t.ember"
printf '{"text": "a", "label": "x,y", "split": "train"}\n{"text": "b", "label": "z", "split": "train"}\n' > "$W/comma.jsonl"
expect_error "label with a comma" 1 "comma.jsonl line 1: class label 'x,y' contains a comma" "$B/ember-train" finetune --init "$M" --data "$W/comma.jsonl" --out "$W/t.ember"
printf '{"text": "a", "label": "x\\u0007", "split": "train"}\n{"text": "b", "label": "z", "split": "train"}\n' > "$W/bell.jsonl"
expect_error "label with a control character" 1 'class label '"'"'x\x07'"'"' contains a control character' "$B/ember-train" finetune --init "$M" --data "$W/bell.jsonl" --out "$W/t.ember"
[[ ! -e "$W/t.ember" ]] && ok || bad "a refused fine-tune wrote a model"

# 8. Signals: SIGTERM, SIGINT and SIGHUP while ember-train checkpoints leave no temporary (each kill lands
#    at a different moment; with a checkpoint every step most land inside a write), and say what happened;
#    past the file size limit (SIGXFSZ) the write fails with a message, the previous file intact.
mkdir "$W/sig"
killed=0
for i in $(seq 1 9); do
  sig=$(echo TERM INT HUP | cut -d' ' -f$(( (i - 1) % 3 + 1 )))
  # Started with SIGINT at its default: a non-interactive shell starts background jobs with it ignored
  # (and a signal ignored at start stays ignored, by design).
  rm -f "$W/sig/err"
  env --default-signal=INT "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/sig/m.ember" --iters 100000 --eval-every 1 --eval-iters 1 \
    --n-layer 1 --n-embd 32 --n-head 2 --block 16 --batch 2 > /dev/null 2> "$W/sig/err" &
  pid=$!
  # The first progress line means the handlers are in place (under qemu on a loaded machine the start
  # alone can take longer than the delays below); then a delay that moves each kill to another moment.
  for _ in $(seq 1 600); do [[ -s "$W/sig/err" ]] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  sleep "0.$((3 + i))"
  kill -"$sig" "$pid" 2>/dev/null
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null  # a run the signal did not end counts as a failure below, not a hang
  wait "$pid" 2>/dev/null
  rc=$?
  [[ $rc -eq $((128 + $(kill -l "$sig"))) ]] && killed=$((killed + 1))
  if ls "$W/sig" | grep -q '\.tmp\.'; then bad "SIG$sig left a temporary: $(ls "$W/sig")"; rm -f "$W/sig"/*.tmp.*; else ok; fi
done
[[ $killed -eq 9 ]] && ok || bad "only $killed of 9 runs ended by their own signal"
grep -Eq "ember-train: (terminated|interrupted|hangup) \(SIG" "$W/sig/err" && ok || bad "no message on the signal: $(tail -c 200 "$W/sig/err")"
printf 'previous' > "$W/kept.ember"
( ulimit -f 16; "$B/ember-quantize" "$D/golden/nanogpt" "$W/kept.ember" --type f32 ) >"$T/out" 2>"$T/err"
rc=$?
[[ $rc -eq 1 ]] && grep -q "kept.ember: write failed (File too large); the previous file, if any, is unchanged" "$T/err" && ok ||
  bad "SIGXFSZ: exit $rc, $(head -c 300 "$T/err")"
[[ "$(cat "$W/kept.ember")" == previous ]] && ok || bad "SIGXFSZ damaged the previous file"
no_temporaries "SIGXFSZ" "$W"

# 9. Messages say what is wrong: a directory is not an empty file, half a BPE tokenizer is an error,
#    control bytes print as \xNN, a context of one token keeps going.
expect_error "token file is a directory" 1 "is a directory" "$B/ember-perplexity" -m "$M" --tokens "$W/dir"
mkdir "$W/half"
cp "$D/golden/gpt2/model.safetensors" "$D/golden/gpt2/config.json" "$W/half/"
echo '{"a": 0}' > "$W/half/vocab.json"
expect_error "vocab.json without merges.txt" 1 "merges.txt: not found, but vocab.json is there" "$B/ember-quantize" "$W/half" "$W/q.ember"
rm "$W/half/vocab.json"
echo '#version: 0.2' > "$W/half/vocab.bpe"
expect_error "vocab.bpe without encoder.json" 1 "encoder.json: not found, but vocab.bpe is there" "$B/ember-quantize" "$W/half" "$W/q.ember"
expect_error "control bytes in a path" 1 'no\x1B[31m\x0Afile\x01: no such file' "$G" -m "$W/no"$'\e[31m\n'"file"$'\x01' -p x
grep -q $'\e' "$T/err" && bad "an escape byte reached the terminal" || ok
expect_error "invalid UTF-8 in an argument" 2 'unknown option' "$G" -m "$M" $'--\xff\xfe'
expect_done "n_ctx 1 keeps going" "$G" -m "$W/ctx1.ember" -p "a" -n 5 --keep-going --seed 1 --json
python3 -c 'import json,sys; assert len(json.load(open(sys.argv[1]))["ids"]) == 5' "$T/out" && ok || bad "n_ctx 1 --keep-going: $(cat "$T/out")"

# 10. A nanoGPT state dict with a Hugging Face config.json imports, and says how it was read.
expect_done "nanoGPT state dict with an HF config" "$B/ember-quantize" "$W/linear_hf" "$W/lhf.ember" --type f32
grep -q "layout: nn.Linear weights \[out, in\]" "$T/err" && ok || bad "quantize does not report the layout: $(head -c 300 "$T/err")"
expect_done "generate from it" "$G" -m "$W/lhf.ember" -p "abc" -n 4 --temp 0

# Every numeric flag at its limits: in range runs, out of range is a usage error naming the flag.
expect_done "generate -n 0" "$G" -m "$M" -p "First" -n 0
expect_error "generate -n over the limit" 2 "--n-predict must be between" "$G" -m "$M" -p "First" -n 1073741825
expect_error "generate --top-k -1" 2 "--top-k must be between" "$G" -m "$M" -p "First" --top-k -1
expect_error "generate --seed -1" 2 "--seed must be between" "$G" -m "$M" -p "First" --seed -1
expect_error "generate --repeat-last-n -2" 2 "--repeat-last-n must be between" "$G" -m "$M" -p "First" --repeat-last-n -2
expect_done "generate --top-k huge" "$G" -m "$M" -p "First" -n 2 --top-k 2147483647
expect_error "perplexity --ctx 1" 2 "--ctx must be between" "$B/ember-perplexity" -m "$M" -f "$TEXT" --ctx 1
expect_error "bench -r 0" 2 "-r" "$B/ember-bench" -m "$M" -r 0
expect_error "bench -p 0" 2 "-p" "$B/ember-bench" -m "$M" -p 0
expect_error "quantize --calib-tokens 1" 2 "--calib-tokens must be between" "$B/ember-quantize" "$M" "$W/q.ember" --calib-tokens 1
expect_error "train --iters 0" 2 "--iters must be between" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/t.ember" --iters 0
expect_error "train --block 1" 2 "--block must be between" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/t.ember" --block 1
expect_error "train --n-embd 0" 2 "--n-embd must be between" "$B/ember-train" pretrain --data "$W/d.txt" --out "$W/t.ember" --n-embd 0
expect_error "finetune --epochs 0" 2 "--epochs must be between" "$B/ember-train" finetune --init "$M" --data "$W/ds.jsonl" --out "$W/t.ember" --epochs 0
expect_error "classify --batch" 2 "unknown option" "$B/ember-classify" -m "$W/ft.ember" --text x --batch 3

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
