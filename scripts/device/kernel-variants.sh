#!/usr/bin/env bash
# Kernel variants side by side in one sitting, on the device machine with .device/ carried
# (scripts/device/bundle.sh): `epic bench-experts` at DeepSeek-V3's size under each variant of the
# kernels' source, put first on the class path so that it replaces the jar's. A variant is
# "NAME WEIGHTS [MACRO=VALUE ...]": each MACRO is #defined before the source (its #ifndef defaults
# give way). The CUDA product tests run under each variant first (EPIC_VARIANT_TESTS=0 skips them);
# EPIC_VARIANT_BATCH picks the batches.
#   scripts/device/kernel-variants.sh "base fp8" "rows2 fp8 FP8_MATVEC_ROWS=2"
# Appends every variant's results to $OUT/variants.txt (or ./device-out).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/device-out}"; mkdir -p "$OUT"
cd "$ROOT"
. scripts/device/env.sh
export EPIC_CUDA_CACHE=$W/kcache-variants
BATCH=${EPIC_VARIANT_BATCH:-1,2,4,8,16,32}
for spec in "$@"; do
  read -r name weights macros <<< "$spec"
  dir=$W/variant-$name/dev/epic/kernels/cuda; mkdir -p $dir
  { for m in ${macros:-}; do echo "#define ${m%%=*} ${m#*=}"; done
    cat native/src/main/resources/dev/epic/kernels/cuda/epic_kernels.cu; } > $dir/epic_kernels.cu
  echo "== $name: $weights weights ${macros:-}" | tee -a "$OUT/variants.txt"
  if [ "${EPIC_VARIANT_TESTS:-1}" = 1 ]; then
    timeout 150 $JAVA "${FLAGS[@]}" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Depic.testdata="$ROOT/testdata" \
      -cp "$W/variant-$name:$CP" org.junit.platform.console.ConsoleLauncher execute --disable-banner \
      --disable-ansi-colors --details=summary --select-class dev.epic.kernels.cuda.CudaMatrixTest \
      --select-class dev.epic.worker.CudaShardTest > $W/variant-$name.tests 2>&1
    echo "tests: $(grep -E 'tests (successful|failed)' $W/variant-$name.tests | tr -s ' ' | paste -sd' ')" \
      | tee -a "$OUT/variants.txt"
    grep -E "MethodSource|=> |Assertion|expected" $W/variant-$name.tests | head -10 | tee -a "$OUT/variants.txt"
  fi
  timeout 150 $JAVA "${FLAGS[@]}" -Dorg.slf4j.simpleLogger.defaultLogLevel=info -cp "$W/variant-$name:$W/lib/*" \
    dev.epic.cli.Main bench-experts --weights $weights --batch $BATCH --iterations 10 2>&1 \
    | grep -vE "INFO dev.epic.model|^\s*$" | tee -a "$OUT/variants.txt"
done
