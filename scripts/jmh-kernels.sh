#!/usr/bin/env bash
# Kernel benchmarks (JMH, in native/src/test/java/dev/epic/kernels/jmh) plus the memory bandwidth probe.
#   scripts/jmh-kernels.sh                       all GEMV, GEMM and attention benchmarks, short runs
#   scripts/jmh-kernels.sh 'GemvBenchmark' -p format=bf16,q4 -p shape=129280x1024
#   scripts/jmh-kernels.sh --best 129280 1024 1 bf16 fp8 q8 q4   fastest-of-N timings (busy machines)
# Extra arguments go to JMH (regex, -f, -wi, -i, -p name=v1,v2, -rf json ...). EPIC_THREADS sets the
# kernel pool size (-Depic.threads). GEMV "bytes" rates are weight bytes/s; "flops" rates are flop/s.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/jdk25.sh
./mvnw -B -q -pl native -am -DskipTests test-compile dependency:build-classpath \
  -Dmdep.outputFile=target/jmh-classpath.txt -Dmdep.includeScope=test >&2
CP="native/target/test-classes:native/target/classes:$(cat native/target/jmh-classpath.txt)"
FLAGS=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xss4m -XX:+UseParallelGC)
if [ -n "${EPIC_THREADS:-}" ]; then FLAGS+=("-Depic.threads=$EPIC_THREADS"); fi

"$JAVA_HOME/bin/java" "${FLAGS[@]}" -cp "$CP" dev.epic.kernels.jmh.BandwidthProbe
if [ "${1:-}" = "--best" ]; then
  shift
  exec "$JAVA_HOME/bin/java" "${FLAGS[@]}" -cp "$CP" dev.epic.kernels.jmh.BestOfProbe "$@"
fi
if [ $# -eq 0 ]; then set -- -f 1 -wi 2 -w 1s -i 3 -r 1s; fi
exec "$JAVA_HOME/bin/java" "${FLAGS[@]}" -cp "$CP" org.openjdk.jmh.Main -jvmArgs "${FLAGS[*]}" "$@"
