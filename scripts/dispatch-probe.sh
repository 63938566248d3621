#!/usr/bin/env bash
# Transport floor of expert parallelism: N expert workers in one JVM, one MoE layer called back to
# back, dispatch+combine and layer latency percentiles per round (no other processes competing).
#   scripts/dispatch-probe.sh                               tiny-v3, 4 workers, 1 row
#   scripts/dispatch-probe.sh models/bench-v3 4 32 2000     MODEL WORKERS ROWS CALLS [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/jdk25.sh
./mvnw -B -q -pl coordinator -am -DskipTests test-compile dependency:build-classpath \
  -Dmdep.outputFile=target/probe-classpath.txt -Dmdep.includeScope=test >&2
CP="coordinator/target/test-classes:coordinator/target/classes:$(cat coordinator/target/probe-classpath.txt)"
if [ $# -eq 0 ]; then set -- testdata/tiny-v3; fi
exec "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xss4m \
  -XX:+UseParallelGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  -cp "$CP" dev.epic.coordinator.experts.probe.DispatchLatencyProbe "$@"
