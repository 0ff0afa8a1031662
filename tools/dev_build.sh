#!/usr/bin/env bash
# Incremental developer build: compiles the extension into build/dev and links it into
# python/caffeonspark so `PYTHONPATH=python pytest` uses it. `pip install .` is the real build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build/dev" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build "$root/build/dev" -j "${JOBS:-2}"
so=$(ls "$root"/build/dev/_engine*.so)
ln -sf "$so" "$root/python/caffeonspark/$(basename "$so")"
