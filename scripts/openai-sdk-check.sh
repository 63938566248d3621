#!/usr/bin/env bash
# Checks a running EPIC OpenAI-compatible endpoint with the official openai SDK for Node (from npm,
# installed once into ~/.cache/epic/openai-sdk). Needs node and npm; not part of the test suite.
#   scripts/openai-sdk-check.sh [BASE_URL]        default http://127.0.0.1:8000/v1
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/epic/openai-sdk"
if [ ! -d "$DIR/node_modules/openai" ]; then
  mkdir -p "$DIR"
  (cd "$DIR" && npm install --silent --no-audit --no-fund openai@4 >&2)
fi
cp "$ROOT/scripts/openai-sdk-check.mjs" "$DIR/check.mjs"
exec node "$DIR/check.mjs" "${1:-http://127.0.0.1:8000/v1}"
