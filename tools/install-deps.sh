#!/usr/bin/env bash
# Installs every Debian 12 package that ember's build and tests need. Safe to run again.
#   tools/install-deps.sh          build + test dependencies
#   tools/install-deps.sh --dev    also the tools that regenerate golden test data (python3-numpy)
set -euo pipefail

pkgs=(
  build-essential pkg-config meson ninja-build   # compiler and build system
  libxnnpack-dev libpthreadpool-dev libcpuinfo-dev # runtime: GEMMs, thread pool, CPU detection
  libflatbuffers-dev flatbuffers-compiler          # model file format (flatc runs at build time)
  libutf8proc-dev                                  # Unicode categories for the GPT-2 pre-tokenizer
  nlohmann-json3-dev                               # host side: config.json, vocab.json, safetensors headers
  doctest-dev                                      # unit tests
)
if [[ "${1:-}" == "--dev" ]]; then
  pkgs+=(python3-numpy)
fi

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
