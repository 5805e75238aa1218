#!/usr/bin/env bash
# Compile the pure-Kotlin core of the Android harness and run its JUnit tests on the JVM,
# without Gradle or Google Maven: kotlinc (npm `kotlin-compiler`), JUnit 4 + the JUnit
# platform console launcher, hamcrest and org.json from Debian (junit4 junit5
# libhamcrest-java libandroid-json-java). Prints "Kotlin core: N passed, N failed".
#
#   KOTLINC=.tools/node_modules/kotlin-compiler/bin/kotlinc bash android_harness/core/run-tests.sh
set -euo pipefail

CORE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$CORE/../.." && pwd)"
KOTLINC="${KOTLINC:-$REPO/.tools/node_modules/kotlin-compiler/bin/kotlinc}"
case "$KOTLINC" in /*) ;; *) [ -x "$KOTLINC" ] || KOTLINC="$REPO/$KOTLINC" ;; esac
JAVA_LIB="${JAVA_LIB:-/usr/share/java}"
BUILD="$CORE/build/kotlinc"
RESULTS_OUT="$CORE/build/kotlin-results"

need() { [ -e "$1" ] || { echo "run-tests.sh: $1 is missing: $2" >&2; exit 2; }; }
need "$KOTLINC" "npm install kotlin-compiler@2 in .tools (make setup does it)"
for jar in junit4.jar hamcrest.jar com.android.json.jar junit-platform-console-standalone.jar; do
  need "$JAVA_LIB/$jar" "apt-get install junit4 junit5 libhamcrest-java libandroid-json-java (make setup does it)"
done
KOTLIN_HOME="$(cd "$(dirname "$KOTLINC")/.." && pwd)"
STDLIB="$KOTLIN_HOME/lib/kotlin-stdlib.jar"
JSON="$JAVA_LIB/com.android.json.jar"
TEST_LIBS="$JAVA_LIB/junit4.jar:$JAVA_LIB/hamcrest.jar"

rm -rf "$BUILD"
mkdir -p "$BUILD/classes" "$BUILD/test-classes" "$BUILD/reports"
# Main sources see only org.json (what Android ships), so the core cannot grow a test or JVM-only dependency.
"$KOTLINC" -nowarn -jvm-target 1.8 -cp "$JSON" -d "$BUILD/classes" $(find "$CORE/src/main/kotlin" -name '*.kt' | sort)
"$KOTLINC" -nowarn -jvm-target 1.8 -cp "$JSON:$TEST_LIBS:$BUILD/classes" -d "$BUILD/test-classes" \
  $(find "$CORE/src/test/kotlin" -name '*.kt' | sort)

set +e
java -Dfixtures.dir="$REPO/tests/fixtures/results" -Dresults.out.dir="$RESULTS_OUT" \
  -jar "$JAVA_LIB/junit-platform-console-standalone.jar" \
  --disable-banner --details=summary --disable-ansi-colors \
  --class-path "$BUILD/classes:$BUILD/test-classes:$STDLIB:$JSON:$TEST_LIBS" \
  --scan-class-path "$BUILD/test-classes" --reports-dir "$BUILD/reports"
launcher_rc=$?
set -e

# The summary line CI reads, counted from the JUnit XML reports (not from the launcher's prose).
python3 "$REPO/scripts/junit_counts.py" "Kotlin core" "$launcher_rc" "$BUILD"/reports/TEST-*.xml
