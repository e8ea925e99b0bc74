#!/usr/bin/env bash
# Runs ember's libFuzzer targets (tests/fuzz) under AddressSanitizer + UndefinedBehaviorSanitizer.
#   tools/fuzz.sh [--time SECONDS] [--build-dir DIR] [--parallel N] [TARGET...]
#     --time S        seconds per target (default 60)
#     --build-dir D   clang build directory (default build-fuzz/), configured here when it is not yet
#     --parallel N    targets run N at a time (default 1)
#     TARGET          model safetensors gpt2_vocab char_vocab bpe_encode dataset config_json token_file
#                     loss_csv session_state model_buffer (default: all)
# Each target starts from its committed seeds (tests/fuzz/corpus/TARGET, read only) plus what earlier runs
# found (DIR/fuzz-corpus/TARGET, where new inputs go). A crash, hang (> 10 s per input), leak, sanitizer
# report or out-of-memory (> 2 GB) stops the target; its input is saved under DIR/fuzz-artifacts/TARGET/.
# Prints one line per target (executions, coverage: cov = edges, ft = features, corpus size) and exits
# non-zero if any target failed. A finding becomes a fix plus a regression test with the input under
# tests/data/fuzz/ (see README, Security).
set -uo pipefail
cd "$(dirname "$0")/.."

all_targets=(model safetensors gpt2_vocab char_vocab bpe_encode dataset config_json token_file loss_csv session_state model_buffer)
seconds=60 build=build-fuzz parallel=1 targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --time) seconds=${2:?--time needs seconds}; shift 2 ;;
    --build-dir) build=${2:?--build-dir needs a directory}; shift 2 ;;
    --parallel) parallel=${2:?--parallel needs a number}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (${all_targets[*]})" >&2; exit 2; }
done

# UBSan reports are fatal (also compiled in: -fno-sanitize-recover=all); ASan checks leaks at exit of
# each input's process (libFuzzer's -detect_leaks checks them per input).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:check_initialization_order=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [[ ! -f $build/build.ninja ]]; then
  command -v clang++-14 >/dev/null || { echo "fuzz: clang++-14 not found: tools/install-deps.sh --fuzz" >&2; exit 1; }
  CC=clang-14 CXX=clang++-14 meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debugoptimized -Dcpp_args=-fno-sanitize-recover=all -Dcpp_link_args=-fno-sanitize-recover=all \
    >"$build.setup.log" 2>&1 || { cat "$build.setup.log" >&2; echo "fuzz: meson setup $build failed" >&2; exit 1; }
  rm -f "$build.setup.log"
fi
if ! meson introspect "$build" --buildoptions 2>/dev/null | grep -q '"name": "fuzz", "value": true'; then
  echo "fuzz: $build is not configured with -Dfuzz=true" >&2
  exit 1
fi
ninja -C "$build" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}") >/dev/null || { echo "fuzz: build failed" >&2; exit 1; }

# run_one TARGET: fuzzes for $seconds, leaves its log in $build/fuzz-logs/TARGET.log.
run_one() {
  local t=$1 corpus=$build/fuzz-corpus/$1 art=$build/fuzz-artifacts/$1/ log=$build/fuzz-logs/$1.log
  mkdir -p "$corpus" "$art" "$build/fuzz-logs"
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art" "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1
  echo $? > "$log.rc"
}
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [[ $running -ge $parallel ]]; then wait -n; running=$((running - 1)); fi
done
wait

failed=0
printf '%-12s %8s %12s %7s %7s %7s  %s\n' target seconds execs cov ft corpus result
for t in "${targets[@]}"; do
  log=$build/fuzz-logs/$t.log
  rc=$(cat "$log.rc" 2>/dev/null || echo 1)
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  result=ok
  if [[ $rc -ne 0 ]]; then
    result="FAILED (exit $rc): $(grep -m1 -E 'ERROR: |runtime error|invariant failed|==[0-9]+==' "$log" | cut -c1-160)"
    failed=$((failed + 1))
  fi
  printf '%-12s %8s %12s %7s %7s %7s  %s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
done
if [[ $failed -gt 0 ]]; then
  for t in "${targets[@]}"; do
    [[ $(cat "$build/fuzz-logs/$t.log.rc" 2>/dev/null || echo 1) -eq 0 ]] && continue
    echo "---- $t: $build/fuzz-logs/$t.log (input in $build/fuzz-artifacts/$t/)"
    grep -v -E '^#[0-9]+' "$build/fuzz-logs/$t.log" | tail -40
  done
fi
echo "fuzz: ${#targets[@]} targets, $failed failed"
[[ $failed -eq 0 ]]
