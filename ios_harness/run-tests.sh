#!/usr/bin/env bash
# Compile the Foundation-only core of the iOS harness (ios_harness/Package.swift: OcularBench/Core and
# OcularBenchTests, the files the Xcode project builds) with a real Swift compiler and run its XCTests.
#
# macOS: `swift test` as is. Linux: Debian trixie's `swiftlang` (Swift 6.0.3; bookworm has none, and
# trixie's needs glibc 2.38) inside a trixie chroot made once with debootstrap under
# .tools/swift-trixie (~3.2 GB, a few minutes cold, reused afterwards, build products included).
# The chroot runs in a private mount namespace (unshare), so its /proc and /dev mounts vanish with the
# process, whatever way it ends.
#
# The package is built from a copy with links resolved: SwiftPM copies a resource that is a link as
# the link itself, and OcularBenchTests/Fixtures/results links to tests/fixtures/results.
#
# Prints "Swift core: N passed, N failed" and exits 1 on a compile error or a failing test. Where the
# toolchain cannot be set up (not root, no debootstrap, no Debian mirror) it prints
# "Swift core: SKIPPED (why)" and exits 0; tests/harness/test_app_builds.py then reports a skip.
#
#   bash ios_harness/run-tests.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
TOOLS="${TOOLS:-$REPO/.tools}"
ROOTFS="$TOOLS/swift-trixie"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
LOG="$TOOLS/logs/swift-setup.log"
STEP=swift-core
START=$SECONDS

status() { python3 "$REPO/scripts/harness_status.py" write "$STEP" "$@" --seconds $((SECONDS - START)); }
skip() {
  echo "Swift core: SKIPPED ($1)"
  status skipped --reason "$1"
  exit 0
}
fail() {
  echo "Swift core: FAILED ($1)" >&2
  status failed --reason "$1"
  exit 1
}

# Counts from the xUnit report, not from XCTest's prose; prints the CI line, returns 1 on any failure.
report() { # report XUNIT_XML BUILD_RC
  python3 "$REPO/scripts/junit_counts.py" "Swift core" "$2" "$1" --counts "$1.counts"
}

finish() { # finish XUNIT_XML RC
  local rc=0
  report "$1" "$2" || rc=$?
  read -r passed failed < "$1.counts" 2>/dev/null || { passed=0; failed=0; rc=1; }
  if [ "$rc" -eq 0 ]; then
    status passed --passed "$passed" --failed "$failed"
  else
    status failed --passed "$passed" --failed "$failed" --reason "failing XCTests"
  fi
  exit "$rc"
}

mkdir -p "$TOOLS/logs"

# stage DIR: a copy of the package with links resolved, timestamps kept (incremental rebuilds);
# only what Package.swift builds (BenchPlan/ may hold large models).
stage() {
  rm -rf "$1/ios_harness"
  mkdir -p "$1/ios_harness"
  cp -R -L -p "$HERE/Package.swift" "$HERE/OcularBench" "$HERE/OcularBenchTests" "$1/ios_harness/"
}

# XCTest writes an xUnit report only in parallel mode (each test in its own process).
TEST_ARGS="--skip-build --parallel --num-workers 2 --disable-swift-testing"

if [ "$(uname -s)" = Darwin ]; then
  command -v swift >/dev/null || skip "no swift on PATH: install Xcode or the command line tools"
  work="$TOOLS/swift-stage"
  stage "$work"
  rc=0
  (cd "$work/ios_harness" && swift build --build-tests --scratch-path "$work/scratch") || fail "compile errors above"
  rm -f "$work/scratch/xunit.xml"
  (cd "$work/ios_harness" && swift test $TEST_ARGS --scratch-path "$work/scratch" --xunit-output "$work/scratch/xunit.xml") || rc=$?
  finish "$work/scratch/xunit.xml" "$rc"
fi

# ---- Linux: the trixie chroot
[ "$(id -u)" -eq 0 ] || skip "the Swift chroot needs root (debootstrap, chroot, mounts); run as root or on a Mac"
unshare --mount --propagation private true 2>/dev/null \
  || skip "cannot make a private mount namespace (unshare --mount) for the Swift chroot"

# Runs a command inside ROOT with /proc and /dev mounted in a mount namespace of its own: nothing
# stays mounted after it returns, even when it is killed.
in_chroot() { # in_chroot ROOT CMD
  local root="$1"; shift
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  unshare --mount --propagation private -- /bin/bash -euc '
    root="$1"; shift
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -euc "$*"
  ' in_chroot "$root" "$@"
}

exec 9>"$TOOLS/swift-trixie.lock"
flock 9 # one setup or build at a time on this chroot

# gcc (a swiftlang dependency) only recommends libc6-dev, whose headers Foundation's C modules need.
PACKAGES="swiftlang libc6-dev ca-certificates"
setup_start=$SECONDS
if [ ! -e "$ROOTFS/.ready" ]; then
  echo "Swift core: setting up Debian trixie + swiftlang in $ROOTFS (once; a few minutes)"
  if ! command -v debootstrap >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap; } \
      >>"$LOG" 2>&1 || skip "debootstrap is not installed and apt-get could not install it (see $LOG)"
  fi
  partial="$ROOTFS.partial"
  rm -rf "$partial"
  debootstrap --variant=minbase trixie "$partial" "$MIRROR" >>"$LOG" 2>&1 \
    || skip "debootstrap trixie from $MIRROR failed: $(tail -n 1 "$LOG")"
  rm -rf "$ROOTFS"
  mv "$partial" "$ROOTFS"
  touch "$ROOTFS/.ready"
fi
# The stamp holds the package list, so adding a package here installs it into an existing chroot.
if [ "$(cat "$ROOTFS/.ready")" != "$PACKAGES" ]; then
  in_chroot "$ROOTFS" "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES && apt-get clean" \
    >>"$LOG" 2>&1 || skip "apt-get install $PACKAGES in the trixie chroot failed: $(tail -n 1 "$LOG")"
  echo "$PACKAGES" > "$ROOTFS/.ready"
fi
echo "Swift core: toolchain ready in $((SECONDS - setup_start)) s: $(in_chroot "$ROOTFS" 'swift --version 2>/dev/null | head -n 1')"

# Build products live in the chroot's /scratch (under .tools), so a second run is incremental.
build_start=$SECONDS
stage "$ROOTFS/work"
# Compiler messages name the staged copy: point them at the repository's files.
in_chroot "$ROOTFS" 'cd /work/ios_harness && swift build --build-tests --scratch-path /scratch' 2>&1 \
  | sed -u "s|/work/ios_harness/|$HERE/|g" || fail "compile errors above"
echo "Swift core: compiled in $((SECONDS - build_start)) s"
rm -f "$ROOTFS/scratch/xunit.xml"
rc=0
in_chroot "$ROOTFS" "cd /work/ios_harness && swift test $TEST_ARGS --scratch-path /scratch --xunit-output /scratch/xunit.xml" || rc=$?
finish "$ROOTFS/scratch/xunit.xml" "$rc"
