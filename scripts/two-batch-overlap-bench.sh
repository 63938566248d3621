#!/usr/bin/env bash
# Two-batch overlap, off against on: a fresh `epic local` per run, `epic bench --target` on it, runs
# alternated. With --split-cores the coordinator (and the bench client) run on core 0 and the expert
# workers on core 1 (taskset), as if the workers were on another host: the case the overlap is for.
#   scripts/two-batch-overlap-bench.sh                                  bench-v3, 4 workers, 2 rounds
#   scripts/two-batch-overlap-bench.sh --split-cores models/bench-v3 4 2 8,32 512
#     [--split-cores] MODEL WORKERS ROUNDS BATCHES PROMPT_LEN
# Prints one line per batch and run; the JSON of each run goes to target/two-batch-overlap/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
split=0
if [ "${1:-}" = "--split-cores" ]; then split=1; shift; fi
model="${1:-models/bench-v3}"; workers="${2:-4}"; rounds="${3:-2}"; batches="${4:-8,32}"; prompt="${5:-64}"
port=50091
out=target/two-batch-overlap; mkdir -p "$out"
if [ ! -f "$model/config.json" ]; then
  echo "no model at $model: ./epic synth --config bench-v3 --out $model" >&2; exit 2
fi
for r in $(seq 1 "$rounds"); do
  for mode in off on; do
    flag=(); [ "$mode" = on ] && flag=(--enable-two-batch-overlap)
    log="$out/local-$r-$mode.log"
    ./epic local --model "$model" --expert-workers "$workers" --max-batch 32 --port "$port" "${flag[@]}" >"$log" 2>&1 &
    cluster=$!
    for _ in $(seq 1 300); do grep -q '"target"' "$log" && break; sleep 1; done
    grep -q '"target"' "$log" || { echo "epic local did not start: $log" >&2; kill "$cluster"; exit 1; }
    pin=()
    if [ "$split" = 1 ]; then
      coordinator=$(pgrep -f "dev.epic.cli.Main local --model $model" | head -1)
      taskset -a -p -c 0 "$coordinator" >/dev/null
      for w in $(grep '"target"' "$log" | python3 -c 'import json,sys; print(" ".join(str(w["pid"]) for w in json.load(sys.stdin)["workers"]))'); do
        taskset -a -p -c 1 "$w" >/dev/null
      done
      pin=(taskset -c 0)
    fi
    json="$out/bench-$r-$mode.json"
    "${pin[@]}" ./epic bench --target "127.0.0.1:$port" --batch "$batches" --prompt-len "$prompt" --gen 32 --json >"$json" 2>/dev/null
    python3 - "$json" "$r" "$mode" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"round {sys.argv[2]} overlap {sys.argv[3]:3} prefill {d['prompt_len']} tokens: {d['prefill_tok_s']:7.1f} tok/s, "
      f"TTFT {d['ttft_ms']:7.1f} ms")
for b in d["decode"]:
    print(f"round {sys.argv[2]} overlap {sys.argv[3]:3} batch {b['batch']:3}: {b['tok_s']:7.1f} tok/s, "
          f"step {b['step_ms']:6.1f} ms, MoE calls a step {b['moe_layer_calls'] / max(1, b['steps']):.0f}")
PY
    kill "$cluster"; wait "$cluster" 2>/dev/null || true
    sleep 3
  done
done
