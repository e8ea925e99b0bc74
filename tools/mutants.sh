#!/usr/bin/env bash
# Mutation testing, by hand (not in CI: it rebuilds once per mutant). Applies the planted bugs of
# tests/mutants/list one at a time and checks that the test suites catch each one.
#   tools/mutants.sh                 every mutant, each against the suites the list names for it
#   tools/mutants.sh --all           every mutant against every suite (slower; shows all that catch it)
#   tools/mutants.sh WORD...         only the mutants whose name contains one of the words
# The mutants are never applied to this tree: build-mutants/src is a copy of it (tracked and untracked,
# not ignored files; refreshed at every start), built in build-mutants/build with the default options.
# For each mutant: apply it to the copy (its text must occur exactly once), rebuild the suites' programs
# and the tools, run the suites (meson test --no-rebuild), restore the copy's file -- always, also on
# Ctrl-C or a failed build. First the unmutated copy must pass the same suites.
# Prints a table mutant -> suites that failed (caught) or SURVIVED, writes it to build-mutants/report.md
# with the date, the machine and the time taken, keeps each mutant's test log in build-mutants/logs/,
# and exits non-zero if a mutant survived, did not apply or did not build.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
list=tests/mutants/list
work=$root/build-mutants
all=0
words=()
for arg in "$@"; do
  case "$arg" in
    --all) all=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "mutants: unknown option $arg (--all)" >&2; exit 2 ;;
    *) words+=("$arg") ;;
  esac
done
t_start=$SECONDS
mkdir -p "$work/logs" "$work/backup"

# The copy: every file git knows or would add, copied when its bytes differ (so mtimes, and ninja's
# incremental build, survive between runs). A mutant left behind by a killed run differs: recopied.
python3 - "$root" "$work/src" <<'EOF' || { echo "mutants: cannot copy the tree" >&2; exit 1; }
import filecmp, os, shutil, subprocess, sys
root, dst = sys.argv[1], sys.argv[2]
files = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       check=True, capture_output=True).stdout.decode().split("\0")
n = 0
for f in files:
    s, d = os.path.join(root, f), os.path.join(dst, f)
    if not f or not os.path.isfile(s):
        continue
    if not os.path.exists(d) or not filecmp.cmp(s, d, shallow=False):
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(s, d)
        n += 1
print("mutants: build-mutants/src refreshed (%d files copied)" % n)
EOF
B=$work/build
if [[ ! -f $B/build.ninja ]]; then
  meson setup "$B" "$work/src" >"$work/logs/setup.txt" 2>&1 || { echo "mutants: meson setup failed: $work/logs/setup.txt" >&2; exit 1; }
fi
# The tests find ../shared/data beside this tree, not beside the copy.
if [[ -d $root/../shared/data ]]; then export EMBER_SHARED_DATA=$(cd "$root/../shared/data" && pwd); fi

# The mutants: one line per mutant (index, name, file, suites) in $work/mutants.tsv, each hunk's old and
# new text in $work/hunks/INDEX.HUNK.{old,new}.
rm -rf "$work/hunks" && mkdir -p "$work/hunks"
python3 - "$list" "$work" "${words[@]+"${words[@]}"}" <<'EOF' || exit 1
import sys
path, work, words = sys.argv[1], sys.argv[2], sys.argv[3:]
mutants, cur, mode, buf = [], None, None, []
for no, line in enumerate(open(path).read().split("\n"), 1):
    if mode is None:
        if line.startswith("@@ "):
            parts = [p.strip() for p in line[3:].split("|")]
            if len(parts) != 3 or not all(parts):
                sys.exit("mutants: %s:%d: want '@@ NAME | FILE | SUITES'" % (path, no))
            cur = {"name": parts[0], "file": parts[1], "suites": parts[2].split(), "hunks": []}
            mutants.append(cur)
        elif line == "<<<<":
            if cur is None:
                sys.exit("mutants: %s:%d: a hunk before any '@@' line" % (path, no))
            mode, buf = "old", []
        elif line.strip() and not line.startswith("#"):
            sys.exit("mutants: %s:%d: unexpected line: %s" % (path, no, line))
    elif line == "====" and mode == "old":
        old, mode, buf = buf, "new", []
    elif line == ">>>>" and mode == "new":
        cur["hunks"].append(("\n".join(old), "\n".join(buf)))
        mode = None
    else:
        buf.append(line)
if mode is not None:
    sys.exit("mutants: %s: the last hunk is not closed" % path)
for m in mutants:
    if not m["hunks"]:
        sys.exit("mutants: %s: '%s' has no hunk" % (path, m["name"]))
chosen = [m for m in mutants if not words or any(w in m["name"] for w in words)]
if not chosen:
    sys.exit("mutants: no mutant matches %s" % " ".join(words))
with open(work + "/mutants.tsv", "w") as f:
    for i, m in enumerate(chosen, 1):
        f.write("%d\t%s\t%s\t%s\n" % (i, m["name"], m["file"], " ".join(m["suites"])))
        for j, (o, n) in enumerate(m["hunks"]):
            open("%s/hunks/%d.%d.old" % (work, i, j), "w").write(o)
            open("%s/hunks/%d.%d.new" % (work, i, j), "w").write(n)
print("mutants: %d of the %d in %s" % (len(chosen), len(mutants), path))
EOF

# Restoring: the file under mutation is saved in $work/backup first and put back by restore(), which the
# traps run on every exit, Ctrl-C included.
# The long commands (ninja, meson test) run through bg: in a process group of their own (set -m), waited
# for by `wait`, which a signal interrupts at once; the trap then ends that group. (Run in the
# foreground, ninja and meson catch Ctrl-C themselves and exit normally, and bash would carry on.)
set -m
exec 4>&2
applied="" child=""
restore() {
  if [[ -n $applied ]]; then
    cp "$work/backup/current" "$work/src/$applied" && applied=""
  fi
}
bg() {
  "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=""
  return $rc
}
interrupted() {
  if [[ -n $child ]]; then
    kill -TERM -- "-$child" 2>/dev/null
    wait "$child" 2>/dev/null
  fi
  restore
  printf '\nmutants: interrupted; build-mutants/src restored\n' >&4  # the script's stderr: bg's may be a log
  exit 130
}
trap 'restore' EXIT
trap 'interrupted' INT TERM HUP

# apply INDEX FILE: every hunk of mutant INDEX, each of whose old text must occur exactly once.
apply() {
  python3 - "$work/src/$2" "$work/hunks" "$1" <<'EOF'
import glob, sys
path, hunks, i = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
for old_f in sorted(glob.glob("%s/%s.*.old" % (hunks, i))):
    old, new = open(old_f).read(), open(old_f[:-3] + "new").read()
    n = text.count(old)
    if n != 1:
        sys.exit("occurs %d times in %s: %s" % (n, path, old.strip().splitlines()[0] if old.strip() else "(empty)"))
    text = text.replace(old, new)
open(path, "w").write(text)
EOF
}

all_suites=$(meson introspect "$B" --tests | python3 -c 'import json, sys; print(" ".join(t["name"] for t in json.load(sys.stdin)))')
# targets SUITE...: the ninja targets of these suites' programs, and every tool (cli and the train
# suites run them).
targets() {
  python3 - "$B" "$@" <<'EOF'
import json, os, subprocess, sys
B, want = sys.argv[1], set(sys.argv[2:])
tests = json.loads(subprocess.run(["meson", "introspect", B, "--tests"], capture_output=True, check=True).stdout)
tgts = json.loads(subprocess.run(["meson", "introspect", B, "--targets"], capture_output=True, check=True).stdout)
exes = {os.path.realpath(f) for t in tgts if t["type"] == "executable" for f in t["filename"]}
out = set()
for t in tests:
    if t["name"] in want:
        out.update(os.path.relpath(c, B) for c in t["cmd"] if os.path.realpath(c) in exes)
out.update(os.path.relpath(f, B) for f in exes if os.path.relpath(f, os.path.realpath(B)).startswith("tools/"))
print(" ".join(sorted(out)))
EOF
}
# run_suites LOG SUITE...: runs them; sets $failed_suites to those that did not pass (from meson's
# testlog.json). Not in a command substitution: the traps must see bg's child.
run_suites() {
  local log=$1
  shift
  rm -f "$B/meson-logs/testlog.json"
  bg meson test -C "$B" --no-rebuild "$@" >"$log" 2>&1
  failed_suites=$(python3 -c '
import json, sys
bad = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    if t["result"] not in ("OK", "EXPECTEDFAIL", "SKIP"):
        bad.append(t["name"].split(" / ")[-1] + ("" if t["result"] == "FAIL" else " (" + t["result"].lower() + ")"))
print(" ".join(bad))' "$B/meson-logs/testlog.json" 2>/dev/null || echo "(no test log)")
}

mapfile -t rows < "$work/mutants.tsv"
# Baseline: the unmutated copy passes every suite any chosen mutant runs.
if [[ $all -eq 1 ]]; then
  base_suites=$all_suites
else
  base_suites=$(cut -f4 "$work/mutants.tsv" | tr ' ' '\n' | sort -u | tr '\n' ' ')
fi
echo "mutants: baseline build and suites: $base_suites"
# shellcheck disable=SC2046,SC2086
if ! bg ninja -C "$B" -j2 $(targets $base_suites) >"$work/logs/baseline-build.txt" 2>&1; then
  echo "mutants: the unmutated copy does not build: $work/logs/baseline-build.txt" >&2
  exit 1
fi
# shellcheck disable=SC2086
run_suites "$work/logs/baseline-tests.txt" $base_suites
if [[ -n $failed_suites ]]; then
  echo "mutants: the unmutated copy fails: $failed_suites (build-mutants/logs/baseline-tests.txt)" >&2
  exit 1
fi

survived=0 broken=0
table="| mutant | file | caught by |"$'\n'"|---|---|---|"$'\n'
for row in "${rows[@]}"; do
  IFS=$'\t' read -r i name file suites <<< "$row"
  [[ $all -eq 1 ]] && suites=$all_suites
  t0=$SECONDS
  printf 'mutants: %2d %s ... ' "$i" "$name"
  cp "$work/src/$file" "$work/backup/current" || exit 1
  applied=$file
  if ! why=$(apply "$i" "$file" 2>&1); then
    restore
    result="DOES NOT APPLY: $why"
    broken=$((broken + 1))
  else
    # shellcheck disable=SC2046,SC2086
    if ! bg ninja -C "$B" -j2 $(targets $suites) >"$work/logs/$i.build.txt" 2>&1; then
      result="DOES NOT BUILD (build-mutants/logs/$i.build.txt)"
      broken=$((broken + 1))
    else
      # shellcheck disable=SC2086
      run_suites "$work/logs/$i.tests.txt" $suites
      if [[ -n $failed_suites ]]; then
        result=$failed_suites
      else
        result="SURVIVED ($suites)"
        survived=$((survived + 1))
      fi
    fi
    restore
  fi
  echo "$result ($((SECONDS - t0)) s)"
  table+="| $name | \`$file\` | $result |"$'\n'
done
# The copy as it was, rebuilt, so that build-mutants/build matches build-mutants/src again.
bg ninja -C "$B" -j2 >/dev/null 2>&1

n=${#rows[@]}
elapsed=$((SECONDS - t_start))
summary="$((n - survived - broken)) of $n mutants caught, $survived survived, $broken did not apply or build"
{
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs;"
  echo "\`tools/mutants.sh${*:+$(printf ' %q' "$@")}\` at $(git rev-parse --short HEAD)$([[ -z $(git status --porcelain) ]] || echo ' (with uncommitted changes)'), $((elapsed / 60)) min $((elapsed % 60)) s."
  echo
  printf '%s' "$table"
  echo
  echo "$summary."
} > "$work/report.md"
echo
cat "$work/report.md"
[[ $survived -eq 0 && $broken -eq 0 ]]
