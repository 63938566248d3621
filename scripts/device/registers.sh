#!/usr/bin/env bash
# Registers per thread (and spills) of the CUDA kernels, on a machine without a GPU: compiles
# epic_kernels.cu for sm_90 with ptxas -v. Registers decide how many blocks an SM keeps resident, and
# so how many loads are in flight in the memory-bound row kernels: check them before spending device
# time on a variant. Needs nvcc (this project's dev machine has CUDA 13.0's; its counts are what the
# device's NVRTC 13.0 compiles).
#   scripts/device/registers.sh [REGEX] [MACRO=VALUE ...]   e.g. registers.sh '_fp8$' FP8_MATVEC_ROWS=2
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PATTERN="${1:-^(matvec|experts_gate_up|experts_down)[1248]_}"; shift || true
NVCC=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1 || true)
[ -n "$NVCC" ] || { echo "no nvcc on this machine (the CUDA toolkit's compiler)"; exit 3; }
GXX=$(ls /usr/bin/g++-1[0-2] 2>/dev/null | head -1 || true)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
{ for m in "$@"; do echo "#define ${m%%=*} ${m#*=}"; done
  cat "$ROOT/native/src/main/resources/dev/epic/kernels/cuda/epic_kernels.cu"; } > "$W/k.cu"
"$NVCC" ${GXX:+-ccbin "$GXX"} -allow-unsupported-compiler -cubin -arch=sm_90 -std=c++17 \
  -Xptxas -v -o "$W/k.cubin" "$W/k.cu" > "$W/log" 2>&1 || { cat "$W/log"; exit 1; }
awk -v pattern="$PATTERN" '/Compiling entry function/ {f = $0; sub(/.*function \x27/, "", f); sub(/\x27.*/, "", f)}
     /spill stores/ {spill = $5}
     /Used [0-9]+ registers/ {for (i = 1; i <= NF; i++) if ($i == "Used") r = $(i + 1)
                              if (f ~ pattern) printf "%-28s %4d registers %4s bytes spilled\n", f, r, spill}' "$W/log" | sort
