#!/usr/bin/env bash
# The README's first command: install dependencies, build, and generate text with the default model.
#   tools/quickstart.sh [extra ember-generate options, e.g. -p "JULIET:" -n 400]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if [[ ! -f build/build.ninja ]]; then
  meson setup build
fi
ninja -C build
MODEL=models/shakespeare-char.ember
build/tools/ember-generate -m "$MODEL" -p "ROMEO:" -n 400 --seed 1 --keep-going "$@"
