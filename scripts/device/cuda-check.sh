#!/usr/bin/env bash
# The GPU checks, run on the device machine (CUDA 13 toolkit and driver, no JDK) from the repo root
# with .device/ carried (scripts/device/bundle.sh): the CUDA tests, the expert benchmark at
# DeepSeek-V3's size, and `epic local --expert-device cuda` against the golden logits. Writes logs
# to $OUT (or ./device-out) and prints a summary last. EPIC_DEVICE_BENCH=all (default), bf16 (one
# benchmark) or none picks how much of the expert benchmark runs.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/device-out}"; mkdir -p "$OUT"
cd "$ROOT"
. scripts/device/env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/env.txt"
cat $W/libs.txt | tee -a "$OUT/env.txt"
# A fresh kernel cache: the tests compile the kernels into it, the later processes must load them.
export EPIC_CUDA_CACHE=$W/kcache; rm -rf $EPIC_CUDA_CACHE
summary=()

echo "== CUDA tests"
timeout 240 $JAVA "${FLAGS[@]}" -Dorg.slf4j.simpleLogger.defaultLogLevel=info -Depic.testdata="$ROOT/testdata" \
  -cp "$CP" org.junit.platform.console.ConsoleLauncher execute --disable-banner --disable-ansi-colors --details=tree \
  --select-class dev.epic.kernels.cuda.CudaMatrixTest --select-class dev.epic.worker.CudaShardTest \
  --select-class dev.epic.kernels.cuda.CudaTest --select-class dev.epic.kernels.cuda.KernelCacheTest 2>&1 | tee "$OUT/cuda-tests.log" | grep -vE "^\[main\] INFO dev.epic.model.checkpoint" | tail -60
summary+=("tests: $(grep -E 'tests (successful|failed|skipped)' "$OUT/cuda-tests.log" | tr -s ' ' | paste -sd' ')")

echo "== a lost context (its own JVM: it poisons the process's CUDA context)"
timeout 120 $JAVA "${FLAGS[@]}" -Depic.cuda.loseContext=true -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
  -cp "$CP" org.junit.platform.console.ConsoleLauncher execute --disable-banner --disable-ansi-colors --details=tree \
  --select-class dev.epic.worker.CudaContextLossTest 2>&1 | tee "$OUT/context-loss.log" | tail -25
summary+=("context loss: $(grep -E 'tests (successful|failed|skipped)' "$OUT/context-loss.log" | tr -s ' ' | paste -sd' ')")
summary+=("kernel cache: $(ls $EPIC_CUDA_CACHE 2>/dev/null | wc -l) image(s); $(grep -ho 'loaded the CUDA kernels[^(]*([0-9]* ms)' "$OUT/context-loss.log" | head -1)")

BENCH=${EPIC_DEVICE_BENCH:-all}
WEIGHTS=(bf16 fp8); [ "$BENCH" = all ] || WEIGHTS=(bf16); [ "$BENCH" = none ] && WEIGHTS=()
for w in "${WEIGHTS[@]}"; do
  echo "== bench-experts DeepSeek-V3 size, $w"
  timeout 120 "${EPIC[@]}" bench-experts --weights $w --batch 1,2,4,8,16,32,64,128,256,512 --iterations 10 2>&1 | tee "$OUT/bench-v3size-$w.txt"
done
if [ "$BENCH" = all ]; then
echo "== bench-experts DeepSeek-V3 size, bf16 weights, bf16 activations (tensor cores from 8 rows)"
timeout 120 "${EPIC[@]}" bench-experts --weights bf16 --activations bf16 --batch 1,8,32,64,128,256,512 --iterations 10 2>&1 \
  | tee "$OUT/bench-v3size-bf16act.txt"
echo "== bench-experts DeepSeek-V3 size, fp8 weights, bf16 activations"
timeout 120 "${EPIC[@]}" bench-experts --weights fp8 --activations bf16 --batch 1,8,32,64,128,256,512 --iterations 10 2>&1 \
  | tee "$OUT/bench-v3size-fp8act.txt"
fi
if [ "$BENCH" = all ] && [ -f .device/bench-v3/config.json ]; then
  echo "== bench-experts bench-v3 dimensions, bf16"
  timeout 60 "${EPIC[@]}" bench-experts --model .device/bench-v3 --batch 1,8,32 --iterations 20 2>&1 | tee "$OUT/bench-benchv3.txt"
fi

echo "== epic local --expert-device cuda on testdata/tiny-v3, logits against the reference"
mkdir -p $W/wlogs; "${EPIC[@]}" local --model testdata/tiny-v3 --expert-workers 2 --expert-device cuda --port 50391 \
  --worker-logs $W/wlogs > $W/local.log 2>&1 &
LOCAL=$!
ids=$(python3 -c "import json; print(','.join(map(str, json.load(open('testdata/tiny-v3/golden.json'))['prompts'][1]['tokens'])))")
ok=""
for i in $(seq 1 60); do
  if timeout 60 "${EPIC[@]}" logits --target 127.0.0.1:50391 --ids "$ids" --steps 3 > $W/logits.jsonl 2>$W/logits.err; then ok=1; break; fi
  kill -0 $LOCAL 2>/dev/null || break
  sleep 1
done
kill $LOCAL 2>/dev/null; wait $LOCAL 2>/dev/null
grep -h -iE "experts x .* MoE layers on|CUDA kernels|error|exception" $W/local.log $W/wlogs/* 2>/dev/null | head -20 | tee -a "$OUT/e2e.txt"
if [ -n "$ok" ]; then
  python3 - <<'PY' | tee -a "$OUT/e2e.txt"
import json
g = json.load(open('testdata/tiny-v3/golden.json'))['prompts'][1]
lines = [json.loads(l) for l in open('/tmp/epic-device/logits.jsonl')]
worst = 0.0
for l in lines:
    k = l['step']
    want = g['prefill_logits'] if k == 0 else g['step_logits'][k - 1]
    worst = max(worst, max(abs(a - b) for a, b in zip(want, l['logits'])))
    assert l['token'] == g['greedy_tokens'][k], (k, l['token'], g['greedy_tokens'][k])
print(f"e2e: {len(lines)} steps, greedy tokens equal, max abs logit diff {worst:.3g} (tolerance 1e-4)")
assert worst < 1e-4
PY
  summary+=("$(tail -1 "$OUT/e2e.txt")")
else
  summary+=("e2e: no logits (see local.log)"); tail -30 $W/local.log; cat $W/logits.err | tail -5
fi
[ -n "$ok" ] || cp $W/local.log "$OUT/local.log" 2>/dev/null

if [ -n "${EPIC_TORCH_BASELINE:-}" ]; then
  echo "== PyTorch eager baseline, same sizes (the image's python3 and torch)"
  timeout 120 python3 scripts/device/torch_moe_baseline.py 1,8,32,128,512 2>&1 | tee "$OUT/torch-baseline.txt"
fi
echo "== summary"
printf '%s\n' "${summary[@]}"
