#!/usr/bin/env bash
# Compile every CUDA source for sm_80 and sm_90 with plain nvcc (no GPU needed), and check
# bindings.cpp with `g++ -fsyntax-only` against torch's headers and the CUDA headers next to nvcc
# (torch's CPU wheel ships ATen/cuda and c10/cuda; skipped, with a note, when torch or g++ is
# missing). Catches build errors in CI; exits non-zero on any error (or when nvcc is missing).
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
# bindings.cpp: include dirs of torch, Python and CUDA (from nvcc's own dry run, which also
# works when nvcc is a wrapper script outside the toolkit).
PYTHON=${PYTHON:-python3}
CXX=${CXX:-g++}
bind_log="$out/bindings.log"
bind_pid=""
if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "skip  bindings.cpp ($CXX not found)"
elif ! incs=$("$PYTHON" -c 'import sysconfig, torch.utils.cpp_extension as ce
print(" ".join("-isystem " + p for p in ce.include_paths() + [sysconfig.get_paths()["include"]]))' 2>/dev/null); then
  echo "skip  bindings.cpp (torch not importable by $PYTHON)"
else
  cuda_inc=$("$NVCC" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ INCLUDES="-I\([^"]*\)".*/\1/p' | head -1)
  abi=$("$PYTHON" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  # The CPU wheel lacks c10's generated cuda_cmake_macros.h (it only sets a Windows export flag):
  # c10 has a switch to skip it.
  no_cfg=""
  if ! "$PYTHON" -c 'import os, sys, torch.utils.cpp_extension as ce
sys.exit(not any(os.path.exists(os.path.join(p, "c10/cuda/impl/cuda_cmake_macros.h")) for p in ce.include_paths()))'; then
    no_cfg="-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE"
  fi
  # shellcheck disable=SC2086  # incs is a list of flags
  "$CXX" -fsyntax-only -std=c++17 -Wall -Werror -D_GLIBCXX_USE_CXX11_ABI="$abi" -DTORCH_EXTENSION_NAME=inr_kernels \
    -DTORCH_API_INCLUDE_EXTENSION_H $no_cfg $incs ${cuda_inc:+-isystem "$cuda_inc"} -I. bindings.cpp >"$bind_log" 2>&1 &
  bind_pid=$!
fi
status=0
if [ -n "$bind_pid" ]; then
  if wait "$bind_pid"; then echo "ok    bindings.cpp (g++ -fsyntax-only)"; else echo "FAIL  bindings.cpp"; cat "$bind_log"; status=1; fi
fi
for entry in "${pids[@]}"; do
  IFS=: read -r pid src arch log <<<"$entry"
  if wait "$pid"; then
    echo "ok    $src ($arch)"
  else
    echo "FAIL  $src ($arch)"; cat "$log"; status=1
  fi
done
exit $status
