#!/usr/bin/env bash
# The thread-policy benchmark of issue 14 (docs/performance.md): what threads beyond the cores, and a
# core taken by another process, cost. Run by hand on a quiet machine; never a pass/fail test.
#   bench/threads.sh [BUILD_DIR] [MODEL] [RUNS]
# For each case, the median wall time of RUNS runs of
#   ember-generate -m MODEL -p "ROMEO:" -n 64 --seed 1 -q -t T
# at T = 1, 2, 4 x the CPUs and 64 (capped at the CPUs since issue 14; --oversubscribe is ember-bench's),
# idle and while a busy loop (`while :; do :; done`, one per core minus one) keeps cores busy.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}/tools
M=${2:-models/shakespeare-char.ember}
RUNS=${3:-7}
CPUS=$(nproc)

median_time() {  # median_time CMD...: median wall seconds of $RUNS runs
  local times=() t0 t1
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{ a[NR] = $1 } END { printf "%.3f", a[int((NR + 1) / 2)] }'
}

echo "bench/threads.sh: $(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $CPUS CPUs, model $M, $RUNS runs"
echo "| load | -t 1 s | -t 2 s | -t $((4 * CPUS)) s | -t 64 s |"
echo "|---|---:|---:|---:|---:|"
for load in idle busy; do
  pids=()
  if [[ $load == busy ]]; then
    for _ in $(seq $((CPUS - 1))); do (while :; do :; done) & pids+=($!); done
  fi
  row="| $load ($(( ${#pids[@]} )) busy loop(s))"
  for t in 1 2 $((4 * CPUS)) 64; do
    row+=" | $(median_time "$B/ember-generate" -m "$M" -p "ROMEO:" -n 64 --seed 1 -q -t "$t")"
  done
  echo "$row |"
  for p in "${pids[@]}"; do kill "$p"; done
  wait 2>/dev/null
done
