#!/usr/bin/env bash
# Fetches the Kafka Streams peer's jars from Maven Central (cached) and runs RollupApp.java
# (Java 17 runs a single source file directly). Arguments go to RollupApp.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jars="${FLEETSTREAM_CACHE:-$HOME/.cache/fleetstream}/kafka-streams-peer/jars"
if [[ ! -f "$jars/.complete" ]]; then
  rm -rf "$jars" && mkdir -p "$jars"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" -DoutputDirectory="$jars" -DincludeScope=runtime \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies >&2
  touch "$jars/.complete"
fi
[[ "${1:-}" == "--fetch-only" ]] && exit 0
exec java -Xmx1g -XX:+UseG1GC -Dorg.slf4j.simpleLogger.defaultLogLevel=error -Dfleetstream.schemas="$here/../../../schemas" \
  -cp "$jars/*" "$here/RollupApp.java" "$@"
