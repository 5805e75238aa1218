#!/usr/bin/env bash
# Assemble a signed debug APK from android_harness/app (+ :core) without Gradle or Google's SDK, with
# Debian's Android tools, and check it the way a device would see it.
#
#   kotlinc 2.0.21 (npm; the Kotlin version libs.versions.toml pins) against the real API-23 android.jar
#     (Debian bullseye's android-sdk-platform-23) with -no-jdk: a Java or Android API that API 23 lacks
#     does not compile, guarded or not (reach newer API by name behind a Build.VERSION.SDK_INT check);
#   LiteRT from litert-standin/ (compile-only signatures of LiteRT 1.0.1, never dexed: see its README);
#   ProGuard (drops unused stdlib code, whose invokedynamic dx cannot read), dx --min-sdk-version 21
#     (bullseye's dalvik-exchange), aapt against framework-res.apk, zipalign, apksigner (bookworm);
#   then `apksigner verify` and `aapt dump badging`: package, minSdk, launchable activity, and a .tflite
#     asset stored uncompressed when build.gradle.kts says noCompress "tflite".
#
# The APK installs and starts, lists a plan and writes results; it has no LiteRT inside, so a run fails
# at the first LiteRT class (NoClassDefFoundError). Timings need the Gradle build (README).
#
# Prints "Android APK: N passed, N failed"; exits 1 on a compile error or a failed check. Where the
# tools cannot be set up (not root, no apt/npm, no Debian mirror) it prints "Android APK: SKIPPED (why)"
# and exits 0; tests/harness/test_app_builds.py then reports a skip.
#
#   bash android_harness/build-apk.sh      # -> android_harness/app/build/ci-apk/ocularbench-ci-debug.apk
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
TOOLS="${TOOLS:-$REPO/.tools}"
AT="$TOOLS/android"                # cached tools
OUT="$HERE/app/build/ci-apk"       # build products (git-ignored)
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KOTLIN_VERSION=2.0.21
BOOKWORM_PACKAGES="aapt zipalign apksigner android-framework-res proguard-cli"
BULLSEYE_PACKAGES="android-sdk-platform-23 libandroid-23-java dalvik-exchange"
LOG="$TOOLS/logs/android-setup.log"
STEP=android-apk
START=$SECONDS
PASSED=0
FAILED=0

status() { python3 "$REPO/scripts/harness_status.py" write "$STEP" "$@" --seconds $((SECONDS - START)); }
skip() {
  echo "Android APK: SKIPPED ($1)"
  status skipped --reason "$1"
  exit 0
}
fail() {
  echo "Android APK: FAILED ($1)" >&2
  echo "Android APK: $PASSED passed, $((FAILED + 1)) failed"
  status failed --reason "$1" --passed "$PASSED" --failed $((FAILED + 1))
  exit 1
}
check() { # check DESCRIPTION COMMAND...: one counted check
  local what="$1"; shift
  if "$@"; then
    echo "  ok   $what"
    PASSED=$((PASSED + 1))
    [ -z "${BUILD_CHECKS:-}" ] || echo "$what" >> "$BUILD_CHECKS"
  else
    echo "  FAIL $what" >&2
    FAILED=$((FAILED + 1))
  fi
}
mkdir -p "$TOOLS/logs" "$AT"

# ---------------------------------------------------------------- tools (cached under .tools/android)
setup_start=$SECONDS
command -v java >/dev/null && command -v javac >/dev/null || skip "no JDK (java, javac) on PATH"
missing=""
for p in $BOOKWORM_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  [ "$(id -u)" -eq 0 ] || skip "Debian packages$missing are missing and installing them needs root"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } \
    >>"$LOG" 2>&1 || skip "apt-get install$missing failed: $(tail -n 1 "$LOG")"
fi
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk

# Bullseye's packages come from an apt configuration of their own and are only unpacked (dpkg -x):
# the system stays on its own release.
BULLSEYE="$AT/bullseye"
if [ "$(cat "$BULLSEYE/.ready" 2>/dev/null)" != "$BULLSEYE_PACKAGES" ]; then
  echo "Android APK: fetching$(printf ' %s' $BULLSEYE_PACKAGES) from Debian bullseye (once)"
  rm -rf "$BULLSEYE"
  apt_dir="$BULLSEYE/apt"
  mkdir -p "$apt_dir/etc/apt/sources.list.d" "$apt_dir/etc/apt/preferences.d" "$apt_dir/lists/partial" \
    "$apt_dir/cache/archives/partial" "$apt_dir/debs" "$BULLSEYE/root"
  touch "$apt_dir/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bullseye main" \
    > "$apt_dir/etc/apt/sources.list"
  apt_opts=(-o "Dir::Etc=$apt_dir/etc/apt" -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::State::status=$apt_dir/status"
            -o "Dir::Cache=$apt_dir/cache" -o "Dir::Etc::trustedparts=/etc/apt/trusted.gpg.d" -o APT::Architecture=amd64
            -o APT::Sandbox::User=root)
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || skip "no Debian archive keyring to check bullseye's packages"
  apt-get "${apt_opts[@]}" update >>"$LOG" 2>&1 || skip "apt-get update for bullseye from $MIRROR failed: $(tail -n 1 "$LOG")"
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download $BULLSEYE_PACKAGES) >>"$LOG" 2>&1 \
    || skip "apt-get download$(printf ' %s' $BULLSEYE_PACKAGES) (bullseye) failed: $(tail -n 1 "$LOG")"
  for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$BULLSEYE/root"; done
  rm -rf "$apt_dir/debs" "$apt_dir/cache" "$apt_dir/lists"
  echo "$BULLSEYE_PACKAGES" > "$BULLSEYE/.ready"
fi
ANDROID_JAR="$BULLSEYE/root/usr/share/java/com.android.android-23.jar"
DX_JAR="$BULLSEYE/root/usr/share/java/com.android.dx.jar"

KOTLIN_HOME="$AT/kotlin-$KOTLIN_VERSION/node_modules/kotlin-compiler"
if [ ! -x "$KOTLIN_HOME/bin/kotlinc" ]; then
  command -v npm >/dev/null || skip "npm is not installed: it brings kotlinc $KOTLIN_VERSION"
  mkdir -p "$AT/kotlin-$KOTLIN_VERSION"
  # A package.json of its own: without one npm installs into the nearest parent that has one
  # (.tools/, where `make setup` keeps the Kotlin core's kotlinc) and replaces that compiler.
  echo '{"private": true}' > "$AT/kotlin-$KOTLIN_VERSION/package.json"
  (cd "$AT/kotlin-$KOTLIN_VERSION" && npm install --silent --no-audit --no-fund "kotlin-compiler@$KOTLIN_VERSION") >>"$LOG" 2>&1 \
    || skip "npm install kotlin-compiler@$KOTLIN_VERSION failed: $(tail -n 1 "$LOG")"
fi
KOTLINC="$KOTLIN_HOME/bin/kotlinc"

KEYSTORE="$AT/debug.keystore"
if [ ! -e "$KEYSTORE" ]; then
  # What the Android Gradle plugin makes for debug builds: alias androiddebugkey, passwords "android".
  keytool -genkeypair -keystore "$KEYSTORE.tmp" -storepass android -keypass android -alias androiddebugkey \
    -keyalg RSA -keysize 2048 -validity 10000 -dname "CN=Android Debug,O=Android,C=US" >>"$LOG" 2>&1
  mv "$KEYSTORE.tmp" "$KEYSTORE"
fi
echo "Android APK: tools ready in $((SECONDS - setup_start)) s"

# ---------------------------------------------------------------- what build.gradle.kts says
GRADLE="$HERE/app/build.gradle.kts"
gradle_value() { # the first uncommented `NAME = VALUE` in app/build.gradle.kts, quotes removed
  sed -n -E "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"?([^\"]*)\"?[[:space:]]*$/\1/p" "$GRADLE" | head -n 1
}
APP_ID="$(gradle_value applicationId)"
MIN_SDK="$(gradle_value minSdk)"
TARGET_SDK="$(gradle_value targetSdk)"
VERSION_CODE="$(gradle_value versionCode)"
VERSION_NAME="$(gradle_value versionName)"
# Extensions Gradle stores uncompressed: active (uncommented) `noCompress += "..."` lines.
NO_COMPRESS="$(sed -n -E 's/^[[:space:]]*noCompress[[:space:]]*(\+=|=)[[:space:]]*(listOf\()?//p' "$GRADLE" \
  | grep -o '"[^"]*"' | tr -d '"' | tr '\n' ' ')"
[ -n "$APP_ID" ] && [ -n "$MIN_SDK" ] && [ -n "$TARGET_SDK" ] || fail "app/build.gradle.kts: no applicationId, minSdk or targetSdk"

APK="$OUT/ocularbench-ci-debug.apk"
# Rebuilt when any input changes (every .kt/.kts/.java/.xml/... under android_harness, this script
# included) or a tool version does; otherwise the last APK is checked again.
BUILD_KEY="$(python3 "$REPO/scripts/harness_status.py" hash "$STEP") kotlin-$KOTLIN_VERSION $BULLSEYE_PACKAGES"
build_start=$SECONDS
if [ -e "$APK" ] && [ "$(cat "$OUT/.built-from" 2>/dev/null)" = "$BUILD_KEY" ]; then
  echo "Android APK: inputs unchanged since the last build of $APK"
  while IFS= read -r line; do
    echo "  ok   $line (last build)"
    PASSED=$((PASSED + 1))
  done < "$OUT/build-checks"
else
BUILD_CHECKS="$OUT/build-checks"
rm -rf "$OUT"
mkdir -p "$OUT/standin" "$OUT/classes" "$OUT/assets" "$OUT/apk"

# ---------------------------------------------------------------- compile, shrink, dex

javac -nowarn --release 8 -d "$OUT/standin" $(find "$HERE/litert-standin/src" -name '*.java' | sort) \
  || fail "the LiteRT stand-in does not compile"

# -no-jdk: the only Java API is android.jar's, so java.time (API 26) & co. fail like on a device.
# The three -X flags keep lambdas and SAM conversions as classes and interfaces free of default
# methods: dx (no d8 here) reads neither invokedynamic nor default methods below API 24.
echo "Android APK: compiling :core + :app with kotlinc $KOTLIN_VERSION against API-23 android.jar"
"$KOTLINC" -nowarn -no-jdk -no-reflect -jvm-target 1.8 -Xlambdas=class -Xsam-conversions=class -Xjvm-default=disable \
  -cp "$ANDROID_JAR:$OUT/standin" -d "$OUT/classes" \
  $(find "$HERE/core/src/main/kotlin" "$HERE/app/src/main/kotlin" -name '*.kt' | sort) \
  || fail "Kotlin compile errors above"
echo "Android APK: compiled in $((SECONDS - build_start)) s"
check "Kotlin of :core and :app compiles against API-23 android.jar + LiteRT $(sed -n -E 's/^litert = "(.*)"/\1/p' "$HERE/gradle/libs.versions.toml") signatures" true

# ProGuard keeps what the app reaches of the Kotlin stdlib (minus its Java 9+ META-INF/versions);
# that also drops the stdlib methods that use invokedynamic, which dx cannot read. Warnings about the
# whole stdlib are beside the point here: the second pass checks what was kept.
cat > "$OUT/shrink.pro" <<EOF
-injars $OUT/classes
-injars $KOTLIN_HOME/lib/kotlin-stdlib.jar(!META-INF/**)
-outjars $OUT/app.jar
-libraryjars $ANDROID_JAR
-libraryjars $OUT/standin
-libraryjars $KOTLIN_HOME/lib/annotations-13.0.jar
-dontobfuscate
-dontoptimize
-dontnote
-ignorewarnings
-keep class org.oculardeploy.** { *; }
EOF
proguard @"$OUT/shrink.pro" > "$OUT/shrink.log" 2>&1 || { tail -n 30 "$OUT/shrink.log"; fail "ProGuard could not shrink the app"; }

# Second pass over what will be dexed: every reference must resolve against API-23 android.jar. The
# one exception is what D8 backports for minSdk < 24 and kotlinc emits for jvmTarget 1.8: the static
# hashCode(primitive) of the boxed types (data classes' hashCode). dx does not backport them, so in
# this APK such a hashCode throws NoSuchMethodError below API 24 (the Gradle build is not affected).
cat > "$OUT/verify.pro" <<EOF
-injars $OUT/app.jar
-outjars $OUT/verified.jar
-libraryjars $ANDROID_JAR
-libraryjars $OUT/standin
-libraryjars $KOTLIN_HOME/lib/annotations-13.0.jar
-dontshrink
-dontoptimize
-dontobfuscate
-dontnote
-ignorewarnings
EOF
proguard @"$OUT/verify.pro" > "$OUT/verify.log" 2>&1 || { tail -n 30 "$OUT/verify.log"; fail "ProGuard could not read the shrunk app"; }
BACKPORTED="can't find referenced method 'int hashCode\((int|long|float|double|boolean|byte|short|char)\)' in library class java\.lang\.(Integer|Long|Float|Double|Boolean|Byte|Short|Character)$"
missing_api="$(grep -E '^Warning: [^ ]+: can.t find' "$OUT/verify.log" | grep -Ev "$BACKPORTED" || true)"
if [ -n "$missing_api" ]; then
  echo "$missing_api" >&2
  fail "the code to dex calls API that the API-23 android.jar lacks (above)"
fi
check "everything to dex resolves against API 23 (allowed: $(grep -cE "$BACKPORTED" "$OUT/verify.log" || true) D8-backported hashCode calls)" true
no_litert() { ! unzip -l "$OUT/app.jar" | grep -q ' org/tensorflow/'; }
check "no LiteRT (stand-in) class among the classes to dex" no_litert

java -cp "$DX_JAR" com.android.dx.command.Main --dex --min-sdk-version="$MIN_SDK" --output="$OUT/apk/classes.dex" "$OUT/app.jar" \
  || fail "dx could not dex the app for minSdk $MIN_SDK"
check "dexed for minSdk $MIN_SDK ($(stat -c %s "$OUT/apk/classes.dex") bytes)" true

# ---------------------------------------------------------------- package, align, sign
# The Gradle plugin's manifest merge in small: package and SDK levels from build.gradle.kts.
sed -E "0,/<manifest /s//<manifest package=\"$APP_ID\" /" "$HERE/app/src/main/AndroidManifest.xml" > "$OUT/AndroidManifest.xml"
[ -d "$HERE/app/src/main/assets" ] && cp -R "$HERE/app/src/main/assets/." "$OUT/assets/"
# A compressible stand-in for a model, so the storage rule for .tflite is checked on every build.
printf 'not a model: this asset checks that .tflite files are stored uncompressed%.0s\n' $(seq 64) > "$OUT/assets/ci-probe.tflite"
aapt_flags=()
for ext in $NO_COMPRESS; do aapt_flags+=(-0 "$ext"); done
aapt package -f --debug-mode -M "$OUT/AndroidManifest.xml" -S "$HERE/app/src/main/res" -A "$OUT/assets" \
  -I "$FRAMEWORK_RES" --min-sdk-version "$MIN_SDK" --target-sdk-version "$TARGET_SDK" \
  --version-code "${VERSION_CODE:-1}" --version-name "${VERSION_NAME:-1.0}" "${aapt_flags[@]}" \
  -F "$OUT/unsigned.apk" || fail "aapt could not package the resources and manifest"
(cd "$OUT/apk" && aapt add -f "$OUT/unsigned.apk" classes.dex >/dev/null) || fail "aapt add classes.dex failed"
zipalign -p -f 4 "$OUT/unsigned.apk" "$OUT/aligned.apk" || fail "zipalign failed"
apksigner sign --ks "$KEYSTORE" --ks-pass pass:android --key-pass pass:android --ks-key-alias androiddebugkey \
  --out "$APK" "$OUT/aligned.apk" || fail "apksigner sign failed"
echo "$BUILD_KEY" > "$OUT/.built-from"
fi
BUILD_CHECKS=""

# ---------------------------------------------------------------- what a device would check
check "apksigner verify" apksigner verify "$APK"
aapt dump badging "$APK" > "$OUT/badging.txt" 2>&1 || fail "aapt dump badging failed: $(tail -n 1 "$OUT/badging.txt")"
check "package $APP_ID" grep -q "^package: name='$APP_ID'" "$OUT/badging.txt"
check "minSdk 21 (sdkVersion:'$MIN_SDK')" grep -qx "sdkVersion:'21'" "$OUT/badging.txt"
check "launchable activity $APP_ID.MainActivity" grep -q "^launchable-activity: name='$APP_ID.MainActivity'" "$OUT/badging.txt"
# aapt list -v: "Length Method Size Ratio ... Name"; the method must be Stored for every .tflite.
tflite_methods="$(aapt list -v "$APK" | awk '$NF ~ /\.tflite$/ {print $2}' | sort -u)"
check ".tflite assets stored uncompressed (zip method: ${tflite_methods:-none})" test "$tflite_methods" = Stored

echo "Android APK: built and checked in $((SECONDS - build_start)) s: $APK"
echo "Android APK: $PASSED passed, $FAILED failed"
if [ "$FAILED" -ne 0 ]; then
  status failed --reason "failed APK checks" --passed "$PASSED" --failed "$FAILED"
  exit 1
fi
status passed --passed "$PASSED" --failed "$FAILED"
