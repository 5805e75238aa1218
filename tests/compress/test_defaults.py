"""One home for each compression default (issue 16): the CLI's --help shows the numbers the library functions
use, both read from toolchain/compress/config.py; a drift between them fails here."""

from __future__ import annotations

import inspect

import typer.main

from toolchain.cli import app
from toolchain.compress import config as cfg
from toolchain.compress import distill as D
from toolchain.compress import run as R


def _cli_defaults(name: str) -> dict[str, object]:
    cmd = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {p.name: p.default for p in cmd.params}


def _fn_defaults(fn) -> dict[str, object]:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}


def test_prune_cli_and_library_share_defaults():
    cli, lib = _cli_defaults("prune"), _fn_defaults(R.prune_unstructured)
    pairs = {"schedule": "schedule", "steps": "steps", "calibration_batches": "calibration",
             "gradient_mode": "gradient_mode", "ratio_of": "ratio_of"}
    for c, f in pairs.items():
        assert cli[c] == lib[f] == getattr(cfg.PRUNE, f), c
    assert cli["method"] == cfg.PRUNE.method and cli["ratio"] == cfg.PRUNE.ratio
    assert _fn_defaults(R.prune_structured)["calibration"] == cfg.PRUNE.calibration


def test_distill_cli_and_library_share_defaults():
    cli, lib = _cli_defaults("distill"), _fn_defaults(D.parse_losses)
    assert cli["temperature"] == lib["temperature"] == cfg.DISTILL.temperature
    assert cli["alpha"] == lib["alpha"] == cfg.DISTILL.alpha
    assert _fn_defaults(D.HintonKD.__init__)["temperature"] == cfg.DISTILL.temperature
