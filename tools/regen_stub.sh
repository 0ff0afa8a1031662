#!/usr/bin/env bash
# Regenerates python/caffeonspark/_engine.pyi (the typing stub shipped with the package)
# from the built extension. Needs `pip install pybind11-stubgen` and tools/dev_build.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
PYTHONPATH="$root/python" python -c "import caffeonspark._native"
PYTHONPATH="$root/python" pybind11-stubgen caffeonspark._engine -o "$out" >/dev/null
cp "$out/caffeonspark/_engine.pyi" "$root/python/caffeonspark/_engine.pyi"
rm -rf "$out"
