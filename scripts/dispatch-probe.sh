#!/usr/bin/env bash
# Transport floor of expert parallelism: N expert workers in one JVM, one MoE layer called back to
# back, dispatch+combine and layer latency percentiles per round (no other processes competing).
#   scripts/dispatch-probe.sh                               tiny-v3, 4 workers, 1 row
#   scripts/dispatch-probe.sh models/bench-v3 4 32 2000     MODEL WORKERS ROWS CALLS [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${JAVA_HOME:-}" ] || ! "$JAVA_HOME/bin/java" -version 2>&1 | grep -Eq 'version "(2[5-9]|[3-9][0-9])'; then
  for c in /usr/lib/jvm/temurin-25* /usr/lib/jvm/*-25* /opt/java/openjdk; do
    if [ -x "$c/bin/java" ]; then JAVA_HOME="$c"; break; fi
  done
fi
export JAVA_HOME
./mvnw -B -q -o -pl coordinator -am -DskipTests test-compile dependency:build-classpath \
  -Dmdep.outputFile=target/probe-classpath.txt -Dmdep.includeScope=test >&2
CP="coordinator/target/test-classes:coordinator/target/classes:$(cat coordinator/target/probe-classpath.txt)"
if [ $# -eq 0 ]; then set -- testdata/tiny-v3; fi
exec "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xss4m \
  -XX:+UseParallelGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  -cp "$CP" dev.epic.coordinator.experts.probe.DispatchLatencyProbe "$@"
