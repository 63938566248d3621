#!/usr/bin/env bash
# Nsight Compute on the expert kernels of one decode message at DeepSeek-V3's size (bf16 and fp8
# weights, batch 1), on the device machine with .device/ carried (scripts/device/bundle.sh): what
# bounds each kernel (memory throughput, occupancy, warp stall reasons). Needs `ncu` from the CUDA
# toolkit; writes the reports to $OUT (or ./device-out).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/device-out}"; mkdir -p "$OUT"
cd "$ROOT"
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "no ncu (Nsight Compute) on this machine"; exit 3; }
. scripts/device/env.sh
export EPIC_CUDA_CACHE=$W/kcache
"${EPIC[@]}" bench-experts --weights bf16 --batch 1 --iterations 1 > /dev/null 2>&1 # compiles the kernels once
for w in bf16 fp8; do
  echo "== $w, batch 1: experts_gate_up1 and experts_down1"
  timeout 240 "$NCU" --target-processes all --kernel-name regex:"experts_(gate_up|down)1_$w" --launch-skip 4 \
    --launch-count 2 --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section MemoryWorkloadAnalysis "${EPIC[@]}" bench-experts --weights $w --batch 1 --iterations 3 \
    > "$OUT/ncu-$w.txt" 2>&1
  grep -E "experts_|Memory Throughput|DRAM Throughput|Duration|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Stall|Warp Cycles Per Issued|Issue Slot|Compute \(SM\)|L1/TEX Hit|Mem Busy|Max Bandwidth" "$OUT/ncu-$w.txt" | head -60
done
