#!/usr/bin/env bash
# The system libraries `make setup` needs before the virtual environment: Python's venv module and
# libusb-1.0 (open3d's import loads it). Installs them with apt-get where it can (root, or sudo
# without a password); otherwise stops with one line naming the library and the command.
# SYSTEM_DEPS=skip goes on without them (open3d's commands then exit 2 and their tests skip).
set -euo pipefail
PYTHON=${PYTHON:-python3}
[ "${SYSTEM_DEPS:-}" = skip ] && exit 0
[ "$(uname -s)" = Linux ] || exit 0  # open3d's wheels for other systems bring what they need

missing=() why=()
if ! "$PYTHON" -c "import ensurepip" 2>/dev/null; then
    missing+=(python3-venv) why+=("$PYTHON has no venv/ensurepip module")
fi
if ! ldconfig -p 2>/dev/null | grep -q "libusb-1.0.so.0"; then
    missing+=(libusb-1.0-0) why+=("libusb-1.0.so.0 is missing (open3d needs it)")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
reason=$(IFS=";"; echo "${why[*]}" | sed "s/;/; /g")

if command -v apt-get >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "setup: $reason: install it with \`sudo apt-get install -y ${missing[*]}\` (or run make with SYSTEM_DEPS=skip to go on without it)" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    # A fresh container has no package lists yet: update only when the first try finds nothing.
    if ! "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update -qq >/dev/null
        "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
else
    echo "setup: $reason: install ${missing[*]} with your system's package manager (or run make with SYSTEM_DEPS=skip to go on without it)" >&2
    exit 1
fi
