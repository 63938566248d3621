#!/usr/bin/env bash
# Soak of the coordinator's KV accounting for attention workers: starts `epic local` with attention
# workers of small KV budgets, sends REQUESTS completions of spread lengths (MIN..MAX tokens, the same every run; eos
# ignored), PARALLEL at once, over the HTTP API, then counts in the coordinator's log the
# preemptions by cause and the workers' refusals, and checks every request ended with its tokens.
#   scripts/attention-kv-soak.sh [MODEL] [WORKERS] [KV_MB] [REQUESTS] [PARALLEL] [MIN] [MAX]
# Prompts are token ids (any model's vocabulary has them). The defaults (testdata/tiny-v3, 2 workers of 2 MiB, 60 requests, 12 at once, 300..1000 tokens)
# hold about 10,000 positions on 6,500 of room, so sequences are preempted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="${1:-$ROOT/testdata/tiny-v3}" WORKERS="${2:-2}" KV_MB="${3:-2}" REQUESTS="${4:-60}" PARALLEL="${5:-12}"
MIN="${6:-300}" MAX="${7:-1000}"
PORT="${SOAK_PORT:-50391}" HTTP="${SOAK_HTTP_PORT:-50392}"
OUT="$(mktemp -d)"
EPIC_LOG_LEVEL=info "$ROOT/epic" local --model "$MODEL" --attention-workers "$WORKERS" --kv-cache-mb "$KV_MB" \
    --expert-workers 1 --port "$PORT" --http-port "$HTTP" --max-batch "$PARALLEL" --worker-logs "$OUT/workers" \
    > "$OUT/local.log" 2>&1 &
LOCAL=$!
trap 'kill $LOCAL 2>/dev/null; wait $LOCAL 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q '"target"' "$OUT/local.log" && break; kill -0 $LOCAL || { cat "$OUT/local.log"; exit 1; }; sleep 1; done
start=$(date +%s)
seq "$REQUESTS" | xargs -P "$PARALLEL" -I{} sh -c '
  n=$(( '"$MIN"' + {} * 7919 % ('"$MAX"' - '"$MIN"' + 1) ))
  curl -s -m 600 http://127.0.0.1:'"$HTTP"'/v1/completions -H "Content-Type: application/json" \
    -d "{\"prompt\": [1, $(( {} % 1000 + 2 )), 7], \"max_tokens\": $n, \"ignore_eos\": true, \"temperature\": 0}" \
    | python3 -c "import json,sys; r=json.load(sys.stdin); u=r[\"usage\"][\"completion_tokens\"]; assert u == $n, r; print(u)"
' > "$OUT/tokens" || { echo "a request failed; logs in $OUT"; exit 1; }
secs=$(( $(date +%s) - start ))
echo "{\"requests\": $REQUESTS, \"tokens\": $(paste -sd+ "$OUT/tokens" | bc), \"seconds\": $secs,"\
" \"preempted_total_budget\": $(grep -c 'KV cache budget full' "$OUT/local.log" || true),"\
" \"preempted_worker_budget\": $(grep -c 'attention worker .* full (.* MiB): preempting' "$OUT/local.log" || true),"\
" \"preempted_worker_refused\": $(grep -c 'an attention worker has no room' "$OUT/local.log" || true),"\
" \"logs\": \"$OUT\"}"
