"""The harness apps' shared facts, for the collectors (``ios.py``, ``android.py``, ``farm.py``, ``wait.py``) and the CLI.

``APP_ID`` is the iOS app's ``PRODUCT_BUNDLE_IDENTIFIER`` and the Android app's ``applicationId``; the project
files cannot import it, so ``tests/harness/test_facts.py`` pins them to this value.
"""

from __future__ import annotations

#: Bundle identifier (iOS) and package name (Android) of both harness apps.
APP_ID = "org.oculardeploy.bench"
#: How long ``deploy bench ios|android`` wait for every run of a plan by default, in seconds.
WAIT_TIMEOUT_S = 1800.0
