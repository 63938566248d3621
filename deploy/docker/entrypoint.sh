#!/usr/bin/env bash
# Container entry point: `epic <command> ...`. For StatefulSet expert workers, EPIC_EXPERT_SHARDS=N and
# EPIC_EXPERT_COUNT=E turn the pod ordinal (hostname suffix) into an expert range, so scaling the set
# needs no per-pod configuration: ordinals k, k+N, k+2N, ... serve shard k. Scaling the set by N adds
# one replica of every shard, and the pods already running keep their experts (no rollout).
set -euo pipefail
args=("$@")
if [ "${1:-}" = "expert-worker" ] && [ -n "${EPIC_EXPERT_SHARDS:-}" ]; then
  ordinal="${HOSTNAME##*-}"
  shard=$(( ordinal % EPIC_EXPERT_SHARDS ))
  per=$(( (EPIC_EXPERT_COUNT + EPIC_EXPERT_SHARDS - 1) / EPIC_EXPERT_SHARDS ))
  first=$(( shard * per ))
  last=$(( first + per - 1 < EPIC_EXPERT_COUNT - 1 ? first + per - 1 : EPIC_EXPERT_COUNT - 1 ))
  args+=(--experts "${first}-${last}")
fi
# The JVM flags of ./epic at the repository root; keep the two in step.
default_level=info
[ "${1:-}" = "demo" ] && default_level=warn
# A worker out of memory exits (its ZooKeeper node goes with its session; the pod restarts) instead
# of staying registered half-broken. Not the coordinator: it fails only the sequence that ran out.
worker_flags=()
case "${1:-}" in expert-worker|attention-worker) worker_flags=(-XX:+ExitOnOutOfMemoryError) ;; esac
exec java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xss4m -XX:+UseG1GC \
  -Dorg.slf4j.simpleLogger.defaultLogLevel="${EPIC_LOG_LEVEL:-$default_level}" "${worker_flags[@]}" ${EPIC_JAVA_OPTS:-} \
  -cp "/opt/epic/lib/*" dev.epic.cli.Main "${args[@]}"
