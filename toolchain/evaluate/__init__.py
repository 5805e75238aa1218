"""Evaluation: verification metrics (``metrics``), feature extraction from bundles and exported
artifacts (``features``), plots (``plots``) and the ``deploy evaluate`` driver (``run``).

Import the submodules directly; this package imports nothing heavy.
"""
