# The two commands: `make demo` and `make test`. Each sets up from nothing (a venv in
# .venv, Debian/npm tools for the harness checks) and is quick when already set up.
# `make test` also builds the apps' code for real: the Swift core + XCTests (a Debian trixie chroot
# with swiftlang, .tools/swift-trixie) and a signed APK (Debian's Android tools, .tools/android).
# Each script sets up its own tools on first use and reports SKIPPED (never passed) where it cannot.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The stamp changes whenever pyproject.toml changes, so edits reinstall.
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
TOOLS := .tools
KOTLINC := $(TOOLS)/node_modules/kotlin-compiler/bin/kotlinc
APT_STAMP := $(TOOLS)/.apt-installed
APT_PACKAGES := junit4 junit5 libhamcrest-java libandroid-json-java chromium

.PHONY: setup test test-apps demo clean-venv

setup: $(STAMP) $(KOTLINC) $(APT_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch + torchvision first, from the pinned builds (a CUDA build that runs on CPU).
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev]'
	# triton ships with the torch wheel, is useless on CPU and segfaults when loaded after TensorFlow.
	$(PIP) uninstall -q -y triton || true
	rm -f $(VENV)/.installed-*
	touch $@

$(KOTLINC):
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --silent --no-audit --no-fund kotlin-compiler@2 >/dev/null

$(APT_STAMP):
	mkdir -p $(TOOLS)
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	touch $@

# Just the two app builds. They fetch their tools on first use (minutes, ~3 GB under .tools).
test-apps:
	bash ios_harness/run-tests.sh
	bash android_harness/build-apk.sh

test: setup
	KOTLINC=$(KOTLINC) bash android_harness/core/run-tests.sh
	bash ios_harness/run-tests.sh
	bash android_harness/build-apk.sh
	$(PY) -m pytest -q -p no:cacheprovider

demo: setup
	$(VENV)/bin/deploy demo

clean-venv:
	rm -rf $(VENV) $(TOOLS)
