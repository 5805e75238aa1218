"""What the harness apps write for one launch of a plan, as the fakes' "app" writes it.

Mirrors the apps' writers (ios_harness Core/BenchRunner.swift, android_harness core BenchRunner.kt):
one file ``<run_id>.json`` per plan run, ``run_id = <plan_id>.<key>.<8 random hex>``, with the
launch id the app was started with (``-launch_id`` / ``--es launch_id``; null when it had none),
the run key, and the timed region both apps time. Built on the shared v2 fixtures, so every file is a
valid results v2 file, with what both apps now record beside the samples: LiteRT's native invoke time
per iteration (Android), where the ops ran (the GPU delegate took 42 of 45 nodes; Core ML's
MLComputePlan counts), cold and warm loads, memory and device state.
"""

from __future__ import annotations

import copy
import json
import secrets
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "results"


def result_for(plan: dict[str, Any], run: dict[str, Any], launch_id: str | None, platform: str) -> dict[str, Any]:
    base = json.loads((FIXTURES / ("v2_android.json" if platform == "android" else "v2_ios.json")).read_text())
    r = copy.deepcopy(base)
    iterations = plan["protocol"]["iterations"]
    r.update(run_id=f"{plan['plan_id']}.{run['key']}.{secrets.token_hex(4)}", plan_id=plan["plan_id"],
             launch_id=launch_id, run_key=run["key"], status="ok", error=None,
             timed_region="inference+read_features", protocol=dict(plan["protocol"]),
             latency_ns=[1_000_000 + 1_000 * i for i in range(iterations)])
    if r.get("native_latency_ns") is not None:  # one native sample per timed one, without the Java copies
        r["native_latency_ns"] = [ns - 150_000 for ns in r["latency_ns"]]
    r["artifact"] = {k: run["artifact"][k] for k in ("name", "format", "sha256", "precision")}
    runtime = r["runtime"]
    runtime["compute_units"] = run["compute_units"]
    runtime["delegate"] = run.get("delegate")
    runtime["threads"] = run.get("threads")
    runtime.pop("options", None)
    if run.get("gpu_options"):
        runtime["options"] = dict(run["gpu_options"])
    return r


def results_for(plan: dict[str, Any], launch_id: str | None, platform: str,
                skip: set[str] = frozenset()) -> list[tuple[str, bytes]]:
    """(file name, bytes) for every run of ``plan`` except the keys in ``skip`` (runs that crashed the app)."""
    out = []
    for run in plan["runs"]:
        if run["key"] in skip:
            continue
        r = result_for(plan, run, launch_id, platform)
        out.append((f"{r['run_id']}.json", (json.dumps(r, indent=2) + "\n").encode()))
    return out
