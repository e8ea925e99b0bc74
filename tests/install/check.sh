#!/usr/bin/env bash
# The install checks (tools/test.sh, step "install checks"): ember as an application developer meets it,
# from a directory outside the source tree that sees only the installed prefix.
#   tests/install/check.sh [--cross BUILD_AARCH64] BUILD
#   tests/install/check.sh --update-symbols BUILD      rewrites tests/install/*.symbols from BUILD
#
#  1. `meson install -C BUILD --destdir TMP`. Headers: exactly include/ember/*.h plus the generated
#     version.h, and the C API's include/ember.h, each compiling on its own (C++17, -Wall -Wextra
#     -Wpedantic -Werror; ember.h, export.h and version.h also as C99), none including a dependency's
#     header (XNNPACK, FlatBuffers, ...).
#     Libraries: libember.a / libember_host.a are real (not thin) archives; libember.so / libember_host.so
#     have the SONAMEs libember.so.0 / libember_host.so.0 and export exactly the symbols listed in
#     tests/install/libember.symbols / libember_host.symbols (nm -D --defined-only, demangled).
#  2. examples/cpp/minimal.cpp compiled with -Wall -Wextra -Werror and only pkg-config: against
#     libember.so (`pkg-config --cflags --libs ember`), then statically (`pkg-config --static --libs
#     ember`, libember.a named instead of -lember); each runs on models/shakespeare-char.ember and must
#     print exactly what `ember-generate -p ROMEO: -n 100 --seed 1` prints. The same for the C examples
#     (examples/c, cc -std=c99 -Wall -Wextra -Werror): minimal.c, and prompt_cache.c run twice on one
#     state file (the prompt computed and saved, then restored from the cache), shared and static.
#  3. A CMake project (tests/install/cmake): find_package(ember <version> EXACT); the same program on
#     ember::ember and on ember::ember_static, and host_check.cpp on ember::host.
#  4. A meson project (tests/install/meson) with ember as a subproject (subprojects/ember -> this
#     repository, -Dember:tests=false -Dember:tools=false): the same program.
#  5. --cross: `meson install -C BUILD_AARCH64 --destdir`, the same SONAMEs and exported symbols, and the
#     C++ and C programs (minimal.cpp, minimal.c) cross-compiled against that tree with pkg-config, run
#     under qemu-aarch64: the same text.
# The installed trees are used where they were staged: pkg-config gets --define-variable=prefix=<staged
# prefix>, CMake CMAKE_PREFIX_PATH (its package is relocatable). Prints "install: ok|FAIL NAME" per check
# (a failure's log below it) and "install: N checks, N failed"; exits 1 when a check failed.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)

cross="" update=0 build=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cross) cross=$(realpath "$2"); shift 2 ;;
    --update-symbols) update=1; shift ;;
    -*) echo "install-check: unknown option $1" >&2; exit 2 ;;
    *) build=$(realpath "$1"); shift ;;
  esac
done
if [[ -z $build || ! -f $build/build.ninja ]]; then
  echo "usage: tests/install/check.sh [--cross BUILD_AARCH64] [--update-symbols] BUILD (a configured build directory)" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ember-install-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
model=$src/models/shakespeare-char.ember
version=$(meson introspect "$build" --projectinfo | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
passed=0 failed=0

# check NAME CMD...: one check, run in a subshell; its output is shown only when it fails.
check() {
  local name=$1 t0=$SECONDS
  shift
  if ("$@") > "$work/check.log" 2>&1; then
    echo "install: ok    $name ($((SECONDS - t0)) s)"
    passed=$((passed + 1))
  else
    echo "install: FAIL  $name ($((SECONDS - t0)) s)"
    tail -n 40 "$work/check.log" | sed 's/^/    /'
    failed=$((failed + 1))
  fi
}
# install_tree BUILD DESTDIR: installs BUILD under DESTDIR; sets root (the staged prefix) and libdir.
install_tree() {
  meson install -C "$1" --destdir "$2" --quiet > "$work/install.log" 2>&1 || { tail -n 40 "$work/install.log"; return 1; }
  local opts
  opts=$(meson introspect "$1" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], o["libdir"])')
  root=$2${opts% *}
  libdir=${opts#* }
  [[ $libdir == /* ]] && libdir=$2$libdir || libdir=$root/$libdir
}
# The exported symbols of a shared library, demangled, one per line, sorted.
exported() {
  "${NM:-nm}" -D --defined-only -C "$1" | sed -E 's/^[0-9a-f]+ [A-Za-z] //' | LC_ALL=C sort -u
}
listed() {
  grep -v '^#' "$1" | LC_ALL=C sort -u
}
symbols_match() {  # symbols_match LIB LIST
  diff -u --label "$2 (listed)" --label "$1 (exported)" <(listed "$2") <(exported "$1") && [[ -s $2 ]]
}
soname_is() {  # soname_is LIB SONAME
  readelf -d "$1" | grep -F "(SONAME)" | grep -qF "[$2]" && [[ -e $(dirname "$1")/$2 ]] ||
    { readelf -d "$1" | grep SONAME; echo "expected SONAME $2 (and that file beside it)"; return 1; }
}
real_archive() {
  [[ $(head -c 8 "$1") == '!<arch>' ]] || { echo "$1 is not a real ar archive (meson thin archive?)"; head -c 8 "$1"; return 1; }
}
same_text() {  # same_text OUTPUT: OUTPUT equals ember-generate's text
  cmp "$1" "$work/expected.txt" || { echo "--- expected"; cat "$work/expected.txt"; echo "--- got"; cat "$1"; return 1; }
}

echo "install-check: ember $version, $build${cross:+ and $cross}, in $work"
install_tree "$build" "$work/native" || { echo "install: FAIL  meson install -C $build"; echo "install: 1 checks, 1 failed"; exit 1; }
R=$root L=$libdir

if [[ $update -eq 1 ]]; then
  for lib in libember libember_host; do
    { echo "# What $lib.so exports (nm -D --defined-only -C, sorted): tools/test.sh's install checks compare."
      echo "# Regenerate with tests/install/check.sh --update-symbols build, and review the diff."
      exported "$L/$lib.so"; } > "$src/tests/install/$lib.symbols"
    echo "install-check: wrote tests/install/$lib.symbols ($(exported "$L/$lib.so" | wc -l) symbols)"
  done
  exit 0
fi

# ---- 1. the installed tree ----------------------------------------------------------------------------
headers_installed() {
  diff -u --label "include/ember/*.h + version.h" --label "installed" \
    <( (cd "$src/include/ember" && ls -1 *.h; echo version.h) | LC_ALL=C sort) \
    <(cd "$R/include/ember" && ls -1 | LC_ALL=C sort) &&
    cmp "$src/include/ember.h" "$R/include/ember.h"
}
header_alone() {  # header_alone INCLUDE_DIR HEADER
  echo "#include <ember/$(basename "$2")>" |
    c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$1" -x c++ - || { echo "^ in $2"; return 1; }
}
headers_alone() {
  local rc=0
  export -f header_alone
  printf '%s\0' "$R"/include/ember/*.h | xargs -0 -n 1 -P 2 bash -c 'header_alone "$0" "$1"' "$R/include" || rc=1
  echo '#include <ember.h>' | cc -std=c99 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$R/include" -x c - ||
    { echo "^ ember.h as C99"; rc=1; }
  echo '#include <ember.h>' | c++ -std=c++17 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$R/include" -x c++ - ||
    { echo "^ ember.h as C++17"; rc=1; }
  printf '#include <ember/export.h>\nEMBER_API int f(void);\n' |
    cc -std=c99 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$R/include" -x c - || { echo "^ export.h as C99"; rc=1; }
  printf '#include <ember/version.h>\nconst char* v = EMBER_VERSION_STRING;\nint n = EMBER_VERSION_MAJOR + EMBER_VERSION_MINOR + EMBER_VERSION_PATCH;\n' |
    cc -std=c99 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$R/include" -x c - || { echo "^ version.h as C99"; rc=1; }
  return $rc
}
headers_private() {
  ! grep -nE '#[[:space:]]*include[[:space:]]*[<"](xnnpack|flatbuffers|pthreadpool|cpuinfo|utf8proc|nlohmann|ember_generated|core/|kernels/|format/|model/)' \
    "$R"/include/ember/*.h "$R"/include/ember.h
}
check "headers: every include/ember/*.h, version.h and ember.h installed" headers_installed
check "headers: each compiles on its own (C++17; ember.h, export.h, version.h also C99)" headers_alone
check "headers: no dependency or internal header included" headers_private
check "libember.a, libember_host.a: real archives" eval 'real_archive "$L/libember.a" && real_archive "$L/libember_host.a"'
check "libember.so, libember_host.so: SONAME libember.so.0, libember_host.so.0" \
  eval 'soname_is "$L/libember.so" libember.so.0 && soname_is "$L/libember_host.so" libember_host.so.0'
check "libember.so exports exactly tests/install/libember.symbols" symbols_match "$L/libember.so" "$src/tests/install/libember.symbols"
check "libember_host.so exports exactly tests/install/libember_host.symbols" \
  symbols_match "$L/libember_host.so" "$src/tests/install/libember_host.symbols"

# ---- 2. pkg-config, shared and static -----------------------------------------------------------------
"$build/tools/ember-generate" -m "$model" -p "ROMEO:" -n 100 --seed 1 -q > "$work/expected.txt" ||
  echo "install-check: ember-generate failed: the runs below have nothing to match" >&2
mkdir -p "$work/app" && cp "$src/examples/cpp/minimal.cpp" "$work/app/"
pc() { PKG_CONFIG_PATH="$L/pkgconfig" pkg-config --define-variable=prefix="$R" "$@"; }
cxxflags=(-std=c++17 -Wall -Wextra -Werror -O2)
pc_shared() {
  cd "$work/app" || return 1
  c++ "${cxxflags[@]}" minimal.cpp $(pc --cflags --libs ember) -o minimal || return 1
  readelf -d minimal | grep -q 'NEEDED.*\[libember.so.0\]' || { echo "minimal does not load libember.so.0"; return 1; }
  LD_LIBRARY_PATH="$L" ./minimal "$model" "ROMEO:" 100 1 > out.txt && same_text out.txt
}
pc_static() {
  cd "$work/app" || return 1
  # Debian has XNNPACK, pthreadpool and cpuinfo only as shared libraries: ember static, the rest shared.
  local libs
  libs=$(pc --static --libs ember | sed -E 's/(^| )-lember( |$)/\1-l:libember.a\2/')
  echo "libs: $libs"
  c++ "${cxxflags[@]}" minimal.cpp $(pc --cflags ember) $libs -o minimal_static || return 1
  ! readelf -d minimal_static | grep -q 'NEEDED.*libember' || { echo "minimal_static still needs libember.so"; return 1; }
  ./minimal_static "$model" "ROMEO:" 100 1 > out_static.txt && same_text out_static.txt
}
check "pkg-config: minimal.cpp on libember.so, run" pc_shared
check "pkg-config --static: minimal.cpp on libember.a, run" pc_static

# The C examples: minimal.c, and prompt_cache.c twice on one state file (computed and saved, then
# restored: "6 of 6 prompt tokens from the cache"). run_c_examples DIR [ENV...]: runs them in DIR.
cp "$src/examples/c/minimal.c" "$src/examples/c/prompt_cache.c" "$work/app/"
cflags=(-std=c99 -Wall -Wextra -Werror -O2)
run_c_examples() {
  local d=$1
  shift
  env "$@" "$d/minimal_c" "$model" "ROMEO:" 100 1 > "$d/out_c.txt" && same_text "$d/out_c.txt" || return 1
  rm -f "$d/romeo.state"
  env "$@" "$d/prompt_cache" "$model" "$d/romeo.state" "ROMEO:" 100 1 > "$d/cache1.txt" 2> "$d/cache1.err" &&
    same_text "$d/cache1.txt" && grep -q "0 of 6 prompt tokens from the cache" "$d/cache1.err" || { cat "$d/cache1.err"; return 1; }
  env "$@" "$d/prompt_cache" "$model" "$d/romeo.state" "ROMEO:" 100 1 > "$d/cache2.txt" 2> "$d/cache2.err" &&
    same_text "$d/cache2.txt" && grep -q "6 of 6 prompt tokens from the cache" "$d/cache2.err" || { cat "$d/cache2.err"; return 1; }
}
pc_shared_c() {
  cd "$work/app" || return 1
  cc "${cflags[@]}" minimal.c $(pc --cflags --libs ember) -o minimal_c &&
    cc "${cflags[@]}" prompt_cache.c $(pc --cflags --libs ember) -o prompt_cache || return 1
  readelf -d minimal_c | grep -q 'NEEDED.*\[libember.so.0\]' || { echo "minimal_c does not load libember.so.0"; return 1; }
  run_c_examples "$work/app" LD_LIBRARY_PATH="$L"
}
pc_static_c() {
  mkdir -p "$work/app/static" && cd "$work/app" || return 1
  local libs
  libs=$(pc --static --libs ember | sed -E 's/(^| )-lember( |$)/\1-l:libember.a\2/')
  cc "${cflags[@]}" minimal.c $(pc --cflags ember) $libs -o static/minimal_c &&
    cc "${cflags[@]}" prompt_cache.c $(pc --cflags ember) $libs -o static/prompt_cache || return 1
  ! readelf -d static/minimal_c | grep -q 'NEEDED.*libember' || { echo "static/minimal_c still needs libember.so"; return 1; }
  run_c_examples "$work/app/static"
}
check "pkg-config: examples/c (minimal.c, prompt_cache.c) as C99 on libember.so, run" pc_shared_c
check "pkg-config --static: examples/c on libember.a, run" pc_static_c

# ---- 3. CMake -----------------------------------------------------------------------------------------
cmake_project() {
  cp -r "$src/tests/install/cmake" "$work/cmake" && cp "$src/examples/cpp/minimal.cpp" "$work/cmake/" || return 1
  cmake -S "$work/cmake" -B "$work/cmake/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$R" -DEMBER_EXPECTED_VERSION="$version" || return 1
  cmake --build "$work/cmake/build" -j 2 || return 1
  local b=$work/cmake/build
  LD_LIBRARY_PATH="$L" "$b/minimal" "$model" "ROMEO:" 100 1 > "$b/out.txt" && same_text "$b/out.txt" || return 1
  "$b/minimal_static" "$model" "ROMEO:" 100 1 > "$b/out_static.txt" && same_text "$b/out_static.txt" || return 1
  ! readelf -d "$b/minimal_static" | grep -q 'NEEDED.*libember' || { echo "minimal_static needs libember.so"; return 1; }
  LD_LIBRARY_PATH="$L" "$b/host_check" "$model" && LD_LIBRARY_PATH="$L" "$b/host_check" "$model" | grep -qx "version $version $version"
}
if command -v cmake > /dev/null; then
  check "CMake: find_package(ember $version EXACT): ember::ember, ember::ember_static, ember::host" cmake_project
else
  echo "install: FAIL  CMake: cmake is not installed (tools/install-deps.sh)"
  failed=$((failed + 1))
fi

# ---- 4. meson subproject ------------------------------------------------------------------------------
meson_subproject() {
  local p=$work/meson
  mkdir -p "$p/subprojects" && cp "$src/tests/install/meson/meson.build" "$src/examples/cpp/minimal.cpp" "$p/" &&
    ln -s "$src" "$p/subprojects/ember" || return 1
  # --force-fallback-for: the subproject even when an ember is installed on this machine.
  meson setup "$p/build" "$p" --force-fallback-for=ember || return 1
  # No test suite and no tool of ember's is part of the parent's build.
  local extra
  extra=$(meson introspect "$p/build" --targets | python3 -c '
import json, sys
print(" ".join(t["name"] for t in json.load(sys.stdin) if t["name"].startswith(("test_", "ember-", "bench_"))))')
  [[ -z $extra ]] || { echo "the subproject defines tests or tools: $extra"; return 1; }
  ninja -C "$p/build" -j 2 minimal || return 1
  "$p/build/minimal" "$model" "ROMEO:" 100 1 > "$p/out.txt" && same_text "$p/out.txt"
}
check "meson: ember as a subproject (-Dember:tests=false -Dember:tools=false)" meson_subproject

# ---- 5. aarch64 ---------------------------------------------------------------------------------------
if [[ -n $cross ]]; then
  sysroot=$src/platforms/sysroot-aarch64
  sysroot_lib=$sysroot/usr/lib/aarch64-linux-gnu
  if install_tree "$cross" "$work/aarch64"; then
    XR=$root XL=$libdir
    check "aarch64: libember.so, libember_host.so: SONAMEs; libember.a a real archive" \
      eval 'soname_is "$XL/libember.so" libember.so.0 && soname_is "$XL/libember_host.so" libember_host.so.0 && real_archive "$XL/libember.a"'
    cross_symbols() {
      NM=aarch64-linux-gnu-nm symbols_match "$XL/libember.so" "$src/tests/install/libember.symbols" &&
        NM=aarch64-linux-gnu-nm symbols_match "$XL/libember_host.so" "$src/tests/install/libember_host.symbols"
    }
    check "aarch64: libember.so, libember_host.so export exactly the same symbols" cross_symbols
    cross_app() {
      mkdir -p "$work/app-aarch64" && cd "$work/app-aarch64" && cp "$src/examples/cpp/minimal.cpp" . || return 1
      local flags
      flags=$(PKG_CONFIG_LIBDIR="$XL/pkgconfig:$sysroot_lib/pkgconfig:$sysroot/usr/share/pkgconfig" \
              pkg-config --define-variable=prefix="$XR" --cflags --libs ember) || return 1
      echo "flags: $flags"
      aarch64-linux-gnu-g++ "${cxxflags[@]}" minimal.cpp $flags -Wl,-rpath-link,"$sysroot_lib" -o minimal || return 1
      qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH="$XL:$sysroot_lib" \
        ./minimal "$model" "ROMEO:" 100 1 > out.txt && same_text out.txt
    }
    check "aarch64: minimal.cpp cross-built with pkg-config against the installed tree, run under qemu" cross_app
    cross_app_c() {
      cd "$work/app-aarch64" && cp "$src/examples/c/minimal.c" . || return 1
      local flags
      flags=$(PKG_CONFIG_LIBDIR="$XL/pkgconfig:$sysroot_lib/pkgconfig:$sysroot/usr/share/pkgconfig" \
              pkg-config --define-variable=prefix="$XR" --cflags --libs ember) || return 1
      aarch64-linux-gnu-gcc "${cflags[@]}" minimal.c $flags -Wl,-rpath-link,"$sysroot_lib" -o minimal_c || return 1
      qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH="$XL:$sysroot_lib" \
        ./minimal_c "$model" "ROMEO:" 100 1 > out_c.txt && same_text out_c.txt
    }
    check "aarch64: minimal.c cross-built with pkg-config against the installed tree, run under qemu" cross_app_c
  else
    echo "install: FAIL  meson install -C $cross"
    failed=$((failed + 1))
  fi
fi

echo "install: $((passed + failed)) checks, $failed failed"
[[ $failed -eq 0 ]]
