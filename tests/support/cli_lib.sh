# Shared by the shell suites (tests/cli, tests/hostile): sourced after setting B (the tools' directory),
# D (tests/data) and T (a temporary directory that the suite removes). EXE_WRAPPER arguments, if any,
# are in "$@" of the caller: call cli_wrap "$@" to run every tool through them (a cross build's qemu).

# cli_require_tools SUITE TOOL...: every tool must be built (a sanitizer build runs with --no-rebuild
# after `ninja -k 0`): one that is not fails under CI (CI=true) naming it; elsewhere the suite is skipped
# (exit 77, meson's SKIP).
cli_require_tools() {
  local suite=$1 tool missing=()
  shift
  for tool in "$@"; do [[ -x $B/$tool ]] || missing+=("$B/$tool"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ -n ${CI:-} && $CI != 0 && $CI != false ]]; then
    echo "FAIL: CI=true: not built: ${missing[*]}"
    exit 1
  fi
  echo "SKIPPED: $suite: not built: ${missing[*]}"
  exit 77
}

pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# cli_wrap WRAPPER...: one launcher per tool in $T/bin, so that every "$B/tool" runs through the wrapper;
# exec keeps exit codes and signals (qemu-user re-raises the guest's fatal signal) as the tests expect.
cli_wrap() {
  [[ $# -gt 0 ]] || return 0
  mkdir -p "$T/bin"
  local exe
  for exe in "$B"/ember-*; do
    [[ -f $exe && -x $exe ]] || continue
    { echo '#!/usr/bin/env bash'; printf 'exec'; printf ' %q' "$@" "$exe"; echo ' "$@"'; } > "$T/bin/${exe##*/}"
    chmod +x "$T/bin/${exe##*/}"
  done
  B=$T/bin
  echo "tools run through: $*"
}

# expect_fail NAME EXPECTED_SUBSTRING CMD...: non-zero exit (not a signal) and the message on stderr.
expect_fail() {
  local name=$1 want=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [[ $rc -eq 0 ]]; then bad "$name: exit 0, expected failure"; return; fi
  if [[ $rc -ge 128 ]]; then bad "$name: killed by signal $((rc - 128))"; return; fi
  if ! grep -qF -- "$want" "$T/err"; then bad "$name: stderr lacks '$want': $(head -c 300 "$T/err")"; return; fi
  ok
}
expect_ok() {
  local name=$1; shift
  "$@" >"$T/out" 2>"$T/err" || { bad "$name: exit $?: $(head -c 300 "$T/err")"; return; }
  ok
}
