"""Helpers shared by the bench tests: results objects built from the schema's fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results"


def fixture(name: str = "ok") -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def result(run_id: str, latency_ns: list[int] | None = None, **changes) -> dict:
    """A valid ok result with its own run_id (and samples, keeping protocol.iterations consistent)."""
    r = copy.deepcopy(fixture("ok"))
    r["run_id"] = run_id
    if latency_ns is not None:
        r["latency_ns"] = list(latency_ns)
        r["protocol"]["iterations"] = len(latency_ns)
    for k, v in changes.items():
        r[k] = v
    return r


def dumps(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2) + "\n").encode()


class Polls:
    """A clock for wait loops that advances one second per reading: ``timeout_s=n`` allows about n polls."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now
