# The one JDK 25 lookup, sourced by ./epic and the scripts here: exports JAVA_HOME as the first of
# EPIC_JAVA_HOME, JAVA_HOME and the usual install places that is a JDK 25 or newer.
find_jdk25() {
  local c
  for c in "${EPIC_JAVA_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25* /usr/lib/jvm/*-25* /usr/lib/jvm/jdk-25* /opt/java/openjdk /opt/jdk-25*; do
    [ -n "$c" ] && [ -x "$c/bin/java" ] || continue
    # Not the first line: with JAVA_TOOL_OPTIONS set, the JVM prints "Picked up ..." before its version.
    if "$c/bin/java" -version 2>&1 | grep -Eq '^(openjdk|java) version "(2[5-9]|[3-9][0-9])'; then
      echo "$c"; return 0
    fi
  done
  return 1
}
JAVA_HOME="$(find_jdk25)" || { echo "epic: JDK 25 or newer not found (set EPIC_JAVA_HOME)" >&2; exit 1; }
export JAVA_HOME
