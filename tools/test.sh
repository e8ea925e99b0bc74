#!/usr/bin/env bash
# The README's second command: every test suite, natively and for 64-bit ARM under qemu.
#   tools/test.sh            1. native: meson test in build/ (made by tools/quickstart.sh)
#                            2. aarch64: the cross toolchain and qemu-user (install-deps.sh --cross), the
#                               sysroot (platforms/make-sysroot-aarch64.sh), a cross build in build-aarch64/
#                               and every suite run there under qemu-aarch64 (meson's exe_wrapper), on
#                               qemu's default CPU (dot product: the "neondot" kernels), then the suites
#                               that depend on the kernels again on a Cortex-A53 (the plain "neon" ones)
#   tools/test.sh --native   step 1 only
# Runs every step even when one fails; prints the time of each step, ends with one line
# "tests: N passed, N failed" over all runs, and exits non-zero if any test failed.
set -uo pipefail
cd "$(dirname "$0")/.."

native_only=0
for arg in "$@"; do
  case "$arg" in
    --native) native_only=1 ;;
    *) echo "test: unknown option $arg (--native)" >&2; exit 2 ;;
  esac
done

passed=0 failed=0
# Counts the results of the last `meson test` in build dir $1 (meson-logs/testlog.json, one JSON object
# per test; skipped tests count as neither).
count() {
  local counts
  counts=$(python3 -c '
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    p += r in ("OK", "EXPECTEDFAIL")
    f += r in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS", "INTERRUPT")
print(p, f)' "$1/meson-logs/testlog.json" 2>/dev/null || echo "0 1")
  passed=$((passed + ${counts% *}))
  failed=$((failed + ${counts#* }))
}
# Which kernel table the kernels suite saw (its dispatch test's message), for the log.
show_kernels() {
  grep -h "MESSAGE: cpu:" "$1/meson-logs/testlog.txt" 2>/dev/null | sed 's/.*MESSAGE: /   kernels suite: /' | head -1
}
step() {  # step NAME CMD...: runs CMD, prints its time
  local name=$1 t0=$SECONDS rc
  shift
  echo "== test: $name"
  "$@"
  rc=$?
  echo "== test: $name: $((SECONDS - t0)) s, exit $rc"
  return $rc
}

if [[ ! -f build/build.ninja ]]; then
  echo "test: build/ is not configured: run tools/quickstart.sh first" >&2
  exit 1
fi
step "native tests (build/)" meson test -C build --print-errorlogs
count build
show_kernels build

if [[ $native_only -eq 0 ]]; then
  cross=(--cross-file platforms/toolchain-gcc-aarch64.ini --cross-file platforms/aarch64-linux-gnu.ini
         --cross-file platforms/sysroot-aarch64/sysroot.ini)
  setup_cross() {
    tools/install-deps.sh --cross && platforms/make-sysroot-aarch64.sh || return 1
    # A new sysroot or changed machine files: configure from scratch (meson reads machine files only at
    # setup), with a stamp of what build-aarch64 was configured from.
    local stamp
    stamp=$(cat platforms/toolchain-gcc-aarch64.ini platforms/aarch64-linux-gnu.ini \
              platforms/sysroot-aarch64/sysroot.ini platforms/sysroot-aarch64/.stamp | sha256sum | cut -c1-16)
    if [[ ! -f build-aarch64/build.ninja || "$(cat build-aarch64/.ember-cross-stamp 2>/dev/null)" != "$stamp" ]]; then
      rm -rf build-aarch64
      meson setup build-aarch64 "${cross[@]}" || return 1
      echo "$stamp" > build-aarch64/.ember-cross-stamp
    fi
    ninja -C build-aarch64
  }
  if step "aarch64 toolchain, sysroot and cross build (build-aarch64/)" setup_cross; then
    step "aarch64 tests under qemu-aarch64 (default CPU: neon + dot product)" \
      meson test -C build-aarch64 --print-errorlogs
    count build-aarch64
    show_kernels build-aarch64
    # The same binaries on a CPU without the dot product: kernels() is then "neon" (tests/kernels checks
    # which table runs), and the golden and cli suites check its results.
    step "aarch64 kernel-dependent suites on qemu's Cortex-A53 (neon, no dot product)" \
      env QEMU_CPU=cortex-a53 meson test -C build-aarch64 --print-errorlogs kernels golden alloc cli
    count build-aarch64
    show_kernels build-aarch64
  else
    failed=$((failed + 1))
    echo "test: the aarch64 cross build failed" >&2
  fi
fi

echo "tests: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
