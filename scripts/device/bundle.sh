#!/usr/bin/env bash
# Packs what the GPU checks need into .device/ (git-ignored) for the lent device machine, which has
# CUDA but no JDK and no Maven: a jlink'd Java 25 runtime, the runtime jars, the test classes and
# JUnit's console launcher, each xz-compressed (the tree that travels is capped at 64 MiB).
#   scripts/device/bundle.sh     then run scripts/device/cuda-check.sh there with .device carried
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/scripts/jdk25.sh"
cd "$ROOT"
./mvnw -B -q -o install -DskipTests
CONSOLE="$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/1.14.4/junit-platform-console-standalone-1.14.4.jar"
[ -f "$CONSOLE" ] || ./mvnw -B -q dependency:get -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.4 -Dtransitive=false
rm -rf .device && mkdir -p .device/stage/lib .device/stage/test
# Runtime: every module the jars use (jdeps), classes left uncompressed so xz can do better than zip.
"$JAVA_HOME/bin/jlink" --add-modules "$("$JAVA_HOME/bin/jdeps" --print-module-deps --ignore-missing-deps -q \
    --multi-release 25 cli/target/lib/*.jar cli/target/epic-cli-0.1.0-SNAPSHOT.jar),java.logging,java.management,jdk.crypto.ec,jdk.zipfs" \
  --strip-debug --no-man-pages --no-header-files --compress=zip-0 --output .device/stage/jre 2>/dev/null
strip --strip-unneeded .device/stage/jre/lib/server/libjvm.so .device/stage/jre/lib/*.so 2>/dev/null || true
# Jars re-stored without compression, for the same reason.
for j in cli/target/lib/*.jar cli/target/epic-cli-0.1.0-SNAPSHOT.jar "$CONSOLE"; do
  d=$(mktemp -d); (cd "$d" && unzip -q "$ROOT/$j" 2>/dev/null || unzip -q "$j")
  # only the bindings EPIC calls (driver and runtime, NVRTC, cuBLAS), and only Linux x86-64 natives
  find "$d/org/bytedeco/cuda/linux-x86_64" -name 'libjni*.so' ! -name libjnicudart.so ! -name libjninvrtc.so \
    ! -name libjnicublas.so -delete 2>/dev/null || true
  find "$d/org/xerial/snappy/native" -mindepth 1 -maxdepth 1 ! -name Linux -exec rm -rf {} + 2>/dev/null || true
  (cd "$d" && zip -q -0 -r "$ROOT/.device/stage/lib/$(basename "$j")" .); rm -rf "$d"
done
for m in native model expert-worker; do cp -r "$m/target/test-classes" ".device/stage/test/$m"; done
(cd .device/stage && tar cf - jre lib test) | xz -9 -T0 > .device/epic-device.tar.xz
rm -rf .device/stage
if [ -f models/bench-v3/config.json ]; then mkdir -p .device/bench-v3 && cp models/bench-v3/config.json .device/bench-v3/; fi
du -sh .device/epic-device.tar.xz
