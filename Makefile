# The two commands: `make demo` and `make test`. Each sets up from nothing and is quick when already set up.
#
# `make demo` needs Python (3.11-3.13) and pip only: a venv in .venv from constraints.txt. No root, apt-get, npm or
# chroot, on Linux and on macOS.
# `make test` adds the dev extra and sets up what it can for the app builds; a step that needs root, a tool that is
# missing or another OS prints `SKIPPED: <reason>` (never passed) and the Python tests still run:
#   Linux:  the Swift core + XCTests (a Debian trixie chroot with swiftlang, .tools/swift-trixie; root), a signed APK
#           (Debian's Android tools, .tools/android; root), the Kotlin core's JUnit tests (kotlinc from npm, JUnit and
#           org.json from apt; root for apt).
#   macOS:  the Swift core with the host's `swift test`, the app with `xcodebuild` (generic iOS device, signing off)
#           when Xcode is installed; Core ML parity then runs Apple's runtime (the `coreml` runtime) first.
# CI (root, Debian) does all of the Linux steps, as before.
SHELL := /bin/bash
UNAME_S := $(shell uname -s)
# The first Python in the range the pinned stack has wheels for (pyproject.toml says why); PYTHON=... overrides.
PYTHON ?= $(firstword $(foreach p,python3.11 python3.12 python3.13 python3,$(if $(shell command -v $(p) 2>/dev/null),$(p))))
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONSTRAINTS := constraints.txt
# Empty: PyPI's torch (on Linux the CUDA build, ~3 GB of CUDA libraries, runs on CPU too).
# TORCH_INDEX=https://download.pytorch.org/whl/cpu installs the CPU-only build instead.
TORCH_INDEX ?=
TORCH_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
# The stamps change whenever pyproject.toml or constraints.txt change, so edits reinstall (cksum: POSIX, on macOS too).
HASH := $(shell cat pyproject.toml $(CONSTRAINTS) | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(HASH)
TOOLS := .tools
KOTLINC := $(TOOLS)/node_modules/kotlin-compiler/bin/kotlinc
APT_STAMP := $(TOOLS)/.apt-installed
APT_PACKAGES := junit4 junit5 libhamcrest-java libandroid-json-java chromium chromium-driver
IS_ROOT := $(shell [ "$$(id -u)" -eq 0 ] && echo yes)

.PHONY: setup setup-python setup-tools test test-apps test-kotlin-core test-swift test-xcode test-apk demo clean-venv

setup: setup-python setup-tools
setup-python: $(DEV_STAMP)

# Runtime dependencies only: what `make demo` (and `pip install ocular-deploy`) needs.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -n "$(PYTHON)" || { echo "no python3 on PATH: install Python 3.11, 3.12 or 3.13" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v < (3, 14) else "$(PYTHON) is Python %d.%d; make needs 3.11, 3.12 or 3.13 (make PYTHON=python3.12 ...)" % v)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch + torchvision first, from the pinned builds (TORCH_INDEX picks the CPU-only build).
	$(PIP) install -q -c $(CONSTRAINTS) $(TORCH_ARGS) torch torchvision
	$(PIP) install -q -c $(CONSTRAINTS) -e .
	# triton ships with the CUDA torch wheel, is useless on CPU and segfaults when loaded after TensorFlow.
	$(PIP) uninstall -q -y triton || true
	rm -f $(VENV)/.installed-*
	touch $@

$(DEV_STAMP): $(STAMP)
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[dev]'
	$(PIP) uninstall -q -y triton || true
	touch $@

# Tools of the Android harness checks (Linux): kotlinc from npm, JUnit/org.json/Chromium from apt (root).
setup-tools:
ifeq ($(UNAME_S),Linux)
	@$(MAKE) --no-print-directory $(KOTLINC) $(APT_STAMP)
else
	@echo "SKIPPED: kotlinc (npm) and JUnit/org.json (Debian packages) for the Kotlin core: set up on Linux only; this is $(UNAME_S)"
endif

$(KOTLINC):
	@if command -v npm >/dev/null; then \
	  mkdir -p $(TOOLS) && cd $(TOOLS) && npm install --silent --no-audit --no-fund kotlin-compiler@2 >/dev/null; \
	else echo "SKIPPED: kotlinc (npm is not installed; the Kotlin core's JUnit tests need it)"; fi

$(APT_STAMP):
	@mkdir -p $(TOOLS)
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then touch $@; \
	elif [ "$(IS_ROOT)" != yes ]; then echo "SKIPPED: apt-get install $(APT_PACKAGES) (needs root; run make test as root for them)"; \
	elif ! command -v apt-get >/dev/null; then echo "SKIPPED: apt-get install $(APT_PACKAGES) (no apt-get: not Debian/Ubuntu)"; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null && touch $@; fi

# The Kotlin core's JUnit tests, where kotlinc and the Debian jars are there.
test-kotlin-core:
	@if [ -x $(KOTLINC) ] && [ -e /usr/share/java/junit-platform-console-standalone.jar ] && [ -e /usr/share/java/com.android.json.jar ]; then \
	  KOTLINC=$(KOTLINC) bash android_harness/core/run-tests.sh; \
	else echo "SKIPPED: Kotlin core JUnit tests (kotlinc from npm and Debian's junit4 junit5 libhamcrest-java libandroid-json-java are not all set up here)"; fi

# Swift core: macOS runs the host's `swift test`; Linux a trixie chroot (root). The script says SKIPPED itself.
test-swift:
	bash ios_harness/run-tests.sh

test-xcode:
ifeq ($(UNAME_S),Darwin)
	@if xcodebuild -version >/dev/null 2>&1; then \
	  xcodebuild -project ios_harness/OcularBench.xcodeproj -scheme OcularBench -destination 'generic/platform=iOS' \
	    -derivedDataPath $(TOOLS)/xcode CODE_SIGNING_ALLOWED=NO CODE_SIGNING_REQUIRED=NO -quiet build \
	  && echo "iOS app: built with $$(xcodebuild -version | head -n 1) for a generic iOS device (signing off)"; \
	else echo "SKIPPED: iOS app build (xcodebuild needs Xcode, not only the command line tools)"; fi
else
	@echo "SKIPPED: iOS app build with xcodebuild (needs macOS with Xcode; this is $(UNAME_S))"
endif

test-apk:
ifeq ($(UNAME_S),Linux)
	bash android_harness/build-apk.sh
else
	@echo "SKIPPED: Android APK (its tools come from Debian packages; this is $(UNAME_S): build it with Gradle, android_harness/README.md)"
endif

# Just the app builds. They fetch their tools on first use (minutes, ~3 GB under .tools on Linux).
test-apps: test-swift test-xcode test-apk

test: setup test-kotlin-core test-apps
	$(PY) -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadfile

# DEMO_ARGS=--quick: the same stages with a tiny model (about a minute on an idle machine).
DEMO_ARGS ?=
demo: $(STAMP)
	$(VENV)/bin/deploy demo $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV) $(TOOLS)
