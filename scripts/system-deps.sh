#!/usr/bin/env bash
# Headless OpenGL for the renderer: libEGL + Mesa (llvmpipe on CPU; an NVIDIA driver's EGL works too).
set -euo pipefail
if ldconfig -p | grep -q 'libEGL.so.1' && ldconfig -p | grep -q 'libGL.so.1'; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgl1 libgl1-mesa-dri >/dev/null
else
  echo "error: libEGL/Mesa missing; install them, e.g. 'sudo apt-get install libegl1 libgl1 libgl1-mesa-dri'" >&2
  exit 1
fi
