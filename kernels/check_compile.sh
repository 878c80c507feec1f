#!/usr/bin/env bash
# Compile every CUDA source for sm_80 and sm_90 with plain nvcc: no GPU and no torch needed.
# Catches build errors in CI; exits non-zero on any error (or when nvcc is missing).
# bindings.cpp needs torch's CUDA headers and is built only by the JIT loader.
set -euo pipefail
cd "$(dirname "$0")/csrc"
NVCC=${NVCC:-nvcc}
if ! command -v "$NVCC" >/dev/null 2>&1; then
  echo "check_compile: $NVCC not found (set NVCC=/path/to/nvcc)" >&2
  exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pids=()
for src in *.cu; do
  for arch in 80 90; do
    obj="$out/${src%.cu}.sm_$arch.o"
    "$NVCC" -c -std=c++17 -O3 -arch=sm_$arch -Werror all-warnings -o "$obj" "$src" >"$obj.log" 2>&1 &
    pids+=("$!:$src:sm_$arch:$obj.log")
  done
done
status=0
for entry in "${pids[@]}"; do
  IFS=: read -r pid src arch log <<<"$entry"
  if wait "$pid"; then
    echo "ok    $src ($arch)"
  else
    echo "FAIL  $src ($arch)"; cat "$log"; status=1
  fi
done
exit $status
