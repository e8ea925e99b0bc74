#!/usr/bin/env bash
# Installs every Debian 12 package that ember's build and tests need. Safe to run again.
#   tools/install-deps.sh          build + test dependencies
#   tools/install-deps.sh --dev    also the tools that regenerate golden test data (python3-numpy), and
#                                  those of --fuzz
#   tools/install-deps.sh --cross  also the aarch64 cross compiler and qemu-user, which tools/test.sh
#                                  uses to build for 64-bit ARM and run the tests under emulation
#   tools/install-deps.sh --fuzz   also clang 14 with its sanitizer and libFuzzer runtimes, llvm-symbolizer
#                                  (llvm-14) and valgrind, for the ASan + UBSan build and the fuzz smoke run
#                                  of tools/test.sh, and for tools/fuzz.sh
# (the aarch64 libraries are not installed: platforms/make-sysroot-aarch64.sh unpacks them)
set -euo pipefail

pkgs=(
  build-essential pkg-config meson ninja-build   # compiler and build system
  libxnnpack-dev libpthreadpool-dev libcpuinfo-dev # runtime: GEMMs, thread pool, CPU detection
  libflatbuffers-dev flatbuffers-compiler          # model file format (flatc runs at build time)
  libutf8proc-dev                                  # Unicode categories for the GPT-2 pre-tokenizer
  nlohmann-json3-dev                               # host side: config.json, vocab.json, safetensors headers
  doctest-dev                                      # unit tests
  cmake                                            # the CMake package (its version file) and its install check
)
for arg in "$@"; do
  case "$arg" in
    --dev) pkgs+=(python3-numpy clang-14 libclang-rt-14-dev llvm-14 valgrind) ;;
    --cross) pkgs+=(g++-aarch64-linux-gnu qemu-user) ;;
    --fuzz) pkgs+=(clang-14 libclang-rt-14-dev llvm-14 valgrind) ;;
    *) echo "install-deps: unknown option $arg (--dev, --cross, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
