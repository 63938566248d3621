# Sourced by the scripts here: exports JAVA_HOME as a JDK 25+ (the scripts' JVM flags need it).
if [ -z "${JAVA_HOME:-}" ] || ! "$JAVA_HOME/bin/java" -version 2>&1 | grep -Eq 'version "(2[5-9]|[3-9][0-9])'; then
  for c in /usr/lib/jvm/temurin-25* /usr/lib/jvm/*-25* /opt/java/openjdk; do
    if [ -x "$c/bin/java" ]; then JAVA_HOME="$c"; break; fi
  done
fi
export JAVA_HOME
