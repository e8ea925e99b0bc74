#!/usr/bin/env bash
# The README's second command: every test suite, natively and for 64-bit ARM under qemu.
#   tools/test.sh            1. native: meson test in build/ (made by tools/quickstart.sh)
#                            2. aarch64: the cross toolchain and qemu-user (install-deps.sh --cross), the
#                               sysroot (platforms/make-sysroot-aarch64.sh), a cross build in build-aarch64/
#                               and every suite run there under qemu-aarch64 (meson's exe_wrapper), on
#                               qemu's default CPU (dot product: the "neondot" kernels), then the suites
#                               that depend on the kernels again on a Cortex-A53 (the plain "neon" ones)
#                            3. sanitizers: clang 14 and its runtimes (install-deps.sh --fuzz), a build with
#                               AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/ (every report
#                               fatal), every native suite run there, then a fuzz smoke run: each libFuzzer
#                               target of tests/fuzz for 5 s (tools/fuzz.sh; each target counts as a test),
#                               and ThreadSanitizer on test_threads' shared-model case in build-tsan/
#                            4. install checks (tests/install/check.sh): meson install of build/ (and of
#                               build-aarch64/), then programs built against the installed tree only
#   tools/test.sh --native   steps 1, 3 and 4 (no ARM)
#   tools/test.sh --no-asan  steps 1, 2 and 4
# Runs every step even when one fails; prints the time of each step, lists what was skipped, ends with
# one line "tests: N passed, N failed, N skipped (S suites, C test cases)" over all runs, and exits
# non-zero if any test failed. A skip is a test that cannot run here (no ../shared/data, a tool that did
# not build, a platform limit); under CI=true the tests turn missing data or tools into failures.
set -uo pipefail
cd "$(dirname "$0")/.."

native_only=0 asan=1
for arg in "$@"; do
  case "$arg" in
    --native) native_only=1 ;;
    --no-asan) asan=0 ;;
    *) echo "test: unknown option $arg (--native, --no-asan)" >&2; exit 2 ;;
  esac
done

passed=0 failed=0 skipped_suites=0 skipped_cases=0
skip_log=$(mktemp)
trap 'rm -f "$skip_log"' EXIT
# Counts the results of the last `meson test` in build dir $1 (meson-logs/testlog.json, one JSON object
# per test): a suite that exited 77 (SKIP) is a skipped suite; in the others, the test cases that
# skipped (tests/support/skip.h: "SKIPPED: ..." lines and a count) are skipped test cases. The SKIPPED
# lines go to $skip_log for the list at the end.
count() {
  local counts
  counts=$(python3 -c '
import json, re, sys
p = f = s = c = 0
with open(sys.argv[3], "a") as log:
    for line in open(sys.argv[1]):
        t = json.loads(line)
        r = t.get("result")
        p += r in ("OK", "EXPECTEDFAIL")
        f += r in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS", "INTERRUPT")
        s += r == "SKIP"
        out = t.get("stdout") or ""
        m = re.search(r"^\[ember\] skipped: (\d+) of", out, re.M)
        c += int(m.group(1)) if m and r != "SKIP" else 0
        for l in out.splitlines():
            if l.startswith("SKIPPED: "):
                log.write("   %s/ %s%s: %s\n" % (sys.argv[2], t["name"], " (whole suite)" if r == "SKIP" else "", l[9:]))
print(p, f, s, c)' "$1/meson-logs/testlog.json" "$1" "$skip_log" 2>/dev/null || echo "0 1 0 0")
  read -r p f s c <<< "$counts"
  passed=$((passed + p)) failed=$((failed + f)) skipped_suites=$((skipped_suites + s)) skipped_cases=$((skipped_cases + c))
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

# ember as an application meets it (tests/install/check.sh): meson install into a temporary directory,
# the headers and exported symbols, examples/cpp/minimal.cpp built against the installed tree with
# pkg-config (shared and static), a CMake project, a meson subproject, and with the cross build the
# aarch64 install and the program under qemu. Each check counts as a test.
install_args=(build)
[[ $native_only -eq 0 && -f build-aarch64/build.ninja ]] && install_args=(--cross build-aarch64 build)
step "install checks (tests/install/check.sh)" \
  bash -c 'set -o pipefail; tests/install/check.sh "$@" | tee build/install-check.log' _ "${install_args[@]}"
install_line=$(grep -E '^install: [0-9]+ checks, [0-9]+ failed' build/install-check.log 2>/dev/null)
if [[ $install_line =~ ^install:\ ([0-9]+)\ checks,\ ([0-9]+)\ failed ]]; then
  passed=$((passed + BASH_REMATCH[1] - BASH_REMATCH[2]))
  failed=$((failed + BASH_REMATCH[2]))
else
  failed=$((failed + 1))
  echo "test: the install checks did not report" >&2
fi

if [[ $asan -eq 1 ]]; then
  # clang rather than GCC: the same build also gives the fuzz targets (libFuzzer is clang's), and the
  # suites get a second compiler's warnings and sanitizer checks. Every report is fatal.
  asan_opts=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
             -Dcpp_args=-fno-sanitize-recover=all -Dcpp_link_args=-fno-sanitize-recover=all)
  export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:check_initialization_order=1:strict_string_checks=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  # configure_clang DIR OPTION...: a clang 14 build in DIR with these meson options, set up anew only
  # when DIR is missing or was configured with other options (a stamp of them in DIR).
  configure_clang() {
    local dir=$1 stamp
    shift
    stamp=$(echo "clang-14 $*" | sha256sum | cut -c1-16)
    if [[ ! -f $dir/build.ninja || "$(cat "$dir/.ember-clang-stamp" 2>/dev/null)" != "$stamp" ]]; then
      rm -rf "$dir"
      CC=clang-14 CXX=clang++-14 meson setup "$dir" "$@" || return 1
      echo "$stamp" > "$dir/.ember-clang-stamp"
    fi
  }
  setup_asan() {
    tools/install-deps.sh --fuzz && configure_clang build-asan "${asan_opts[@]}" || return 1
    ninja -C build-asan -k 0  # builds all it can: the suites that did build still run below
  }
  step "ASan + UBSan build (build-asan/, clang 14)" setup_asan || {
    failed=$((failed + 1))
    echo "test: the ASan + UBSan build failed" >&2
  }
  if [[ -f build-asan/build.ninja ]]; then
    # The suites whose programs were built (a suite that did not compile counts as one failure).
    mapfile -t built < <(meson introspect build-asan --tests | python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    print(t["name"] if os.path.exists(t["cmd"][0]) else "MISSING " + t["name"])')
    suites=()
    for b in "${built[@]}"; do
      if [[ $b == MISSING* ]]; then failed=$((failed + 1)); echo "test: ${b#MISSING } was not built" >&2; else suites+=("$b"); fi
    done
    rm -f build-asan/meson-logs/testlog.json
    step "ASan + UBSan tests (build-asan/)" \
      meson test -C build-asan --no-rebuild --print-errorlogs --timeout-multiplier 3 "${suites[@]}"
    count build-asan
    # The fuzz smoke run: each target's committed seeds plus 5 s of mutation, two targets at a time.
    step "fuzz smoke run (tools/fuzz.sh, 5 s per target)" \
      bash -c 'set -o pipefail; tools/fuzz.sh --build-dir build-asan --time 5 --parallel 2 | tee build-asan/fuzz-smoke.log'
    fuzz_line=$(grep -E '^fuzz: [0-9]+ targets, [0-9]+ failed' build-asan/fuzz-smoke.log 2>/dev/null)
    if [[ $fuzz_line =~ ^fuzz:\ ([0-9]+)\ targets,\ ([0-9]+)\ failed ]]; then
      passed=$((passed + BASH_REMATCH[1] - BASH_REMATCH[2]))
      failed=$((failed + BASH_REMATCH[2]))
    else
      failed=$((failed + 1))
      echo "test: the fuzz smoke run did not report" >&2
    fi
  fi
  # ThreadSanitizer on sessions of one model in 4 threads (int8 ones compute without the model's lock),
  # with one-thread pools: pthreadpool is not instrumented, so its workers would be false reports.
  tsan_opts=(-Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized)
  run_tsan() {
    configure_clang build-tsan "${tsan_opts[@]}" || return 1
    ninja -C build-tsan tests/test_threads >/dev/null || return 1
    EMBER_TEST_DATA=tests/data TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      build-tsan/tests/test_threads -tc='*ThreadSanitizer*'
  }
  if step "ThreadSanitizer: sessions sharing a model (build-tsan/, test_threads)" run_tsan; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "test: the ThreadSanitizer run failed" >&2
  fi
fi

if [[ -s $skip_log ]]; then
  echo "== test: skipped"
  cat "$skip_log"
fi
echo "tests: $passed passed, $failed failed, $((skipped_suites + skipped_cases)) skipped ($skipped_suites suites, $skipped_cases test cases)"
[[ $failed -eq 0 ]]
