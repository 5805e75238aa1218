"""Waiting for one launch of a plan: exactly the runs it expects, and which are missing when time runs out.

A launch of plan P with launch id L expects one result per run key of P (on Device Farm: per key and
per job). A stored result counts for the launch when its ``plan_id`` is P, its ``launch_id`` is L and
its run key is one of P's; a result of P from another launch is *stale* (kept in the store, never
counted), and one of launch L but another plan means the app ran a different plan than the one given.

Example: plan ``p1`` with keys ``a``, ``b`` launched as ``L2``; the device still holds ``p1.a`` from
``L1``. After the app wrote ``p1.a`` for ``L2`` the report says found ``a``, missing ``b``, stale one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from toolchain.bench.apps import WAIT_TIMEOUT_S
from toolchain.bench.store import AddOutcome, ResultStore
from toolchain.bench.transport import Collected, RemoteFolderMissing, Transient, Transport, collect
from toolchain.errors import CollectError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Expectation:
    """What one launch must produce.

    ``keys`` None means "the plan is not known: at least one result from every group" (``deploy collect farm``
    without ``--plan``). ``launch_id`` None means any launch counts: Device Farm runs each job on a device it
    cleaned first ("Device Farm always reboots a device before making it available for the next job",
    Device Farm developer guide, test-runs), so every result in a run's artifacts is that run's.
    """

    plan_id: str | None
    keys: tuple[str, ...] | None
    launch_id: str | None = None


def expect(plan: dict[str, Any] | None, launch_id: str | None = None) -> Expectation:
    """The expectation for ``plan`` (a validated plan.json object) launched as ``launch_id``."""
    if plan is None:
        return Expectation(None, None, launch_id)
    return Expectation(plan["plan_id"], tuple(r["key"] for r in plan["runs"]), launch_id)


def run_key_of(result: dict[str, Any], keys: Iterable[str]) -> str | None:
    """The plan run key a result belongs to: its ``run_key``, else the one its run id starts with.

    Run ids are ``<plan_id>.<key>.<suffix>`` (both apps), so older results without ``run_key`` still match.

    >>> run_key_of({"run_id": "p.00-m-cpu.1a2b3c4d", "plan_id": "p"}, ["00-m-cpu", "01-m-gpu"])
    '00-m-cpu'
    """
    keys = list(keys)
    if result.get("run_key") in keys:
        return result["run_key"]
    prefix = f"{result.get('plan_id')}."
    rid = str(result.get("run_id", ""))
    for k in sorted(keys, key=len, reverse=True):  # longest first: "00-a.b" before "00-a"
        if rid.startswith(f"{prefix}{k}."):
            return k
    return None


#: What :attr:`PlanReport.missing` says while no device (Device Farm job) is listed at all.
NO_GROUP = "every run: no device has a job yet (ListJobs is empty)"
#: Transient errors survived in a row before the wait gives up, and the longest pause between two tries.
MAX_TRANSIENT_IN_A_ROW = 8
MAX_BACKOFF_S = 60.0


def _slot(group: str | None, key: str | None) -> str:
    return f"{group}: {key}" if group else str(key)


@dataclass
class PlanReport:
    """Where a launch stands: found and missing runs, stale and foreign results, every store outcome."""

    expectation: Expectation
    groups: list[str | None]
    found: dict[tuple[str | None, str], str] = field(default_factory=dict)  # (group, key) -> run_id
    stale: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    outcomes: list[AddOutcome] = field(default_factory=list)
    timed_out: bool = False
    problem: str | None = None  # the last "folder not there yet" (or transient error) message while waiting
    failures: list[str] = field(default_factory=list)  # runs/jobs the service reports as failed, with why
    retries: int = 0  # transient errors (device offline, stream cut, throttled) survived on the way

    @property
    def expected(self) -> int:
        keys = self.expectation.keys
        return len(self.groups) * (len(keys) if keys is not None else 1)

    @property
    def missing(self) -> list[str]:
        """Each expected run with no result, as ``key`` or ``device: key`` (``device: any result`` without a plan).

        No group at all (a Device Farm run whose ListJobs is still empty: SCHEDULING, PENDING, or a run that
        failed at parsing) is never "nothing missing": every run is missing, on no device yet.
        """
        if not self.groups:
            return [NO_GROUP]
        out = []
        for g in self.groups:
            if self.expectation.keys is None:
                if not any(fg == g for fg, _ in self.found):
                    out.append(_slot(g, "no results file"))
                continue
            out += [_slot(g, k) for k in self.expectation.keys if (g, k) not in self.found]
        return out

    @property
    def complete(self) -> bool:
        return not self.missing and not self.failures


def match(exp: Expectation, collected: Iterable[Collected], groups: list[str | None]) -> PlanReport:
    """Sort collected results into found / stale / foreign for one expectation."""
    report = PlanReport(exp, list(groups))
    for c in collected:
        report.outcomes.append(c.outcome)
        r = c.result
        if r is None or not c.outcome.ok:
            continue
        if exp.keys is None:
            report.found.setdefault((c.remote.group, r["run_id"]), r["run_id"])
            continue
        same_launch = exp.launch_id is None or r.get("launch_id") == exp.launch_id
        if r.get("plan_id") != exp.plan_id:
            if exp.launch_id is not None and r.get("launch_id") == exp.launch_id:
                report.foreign.append(r["run_id"])
            continue
        if not same_launch:
            report.stale.append(r["run_id"])
            continue
        key = run_key_of(r, exp.keys)
        if key is not None:
            report.found.setdefault((c.remote.group, key), r["run_id"])
    return report


def wait_for_plan(transport: Transport, plan: dict[str, Any] | None, store: ResultStore, launch_id: str | None = None,
                  timeout_s: float = WAIT_TIMEOUT_S, poll_s: float = 5.0,
                  progress: Callable[[PlanReport], None] | None = None,
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> PlanReport:
    """Collect until every run this launch expects has a result, the transport is finished, or time runs out.

    Args:
        transport: where the app writes (its ``finished()`` ends the wait early: a completed Device Farm run).
        plan: the plan launched (validated plan.json object); None: one result per group is enough.
        store: every file collected on the way is stored, stale ones too (nothing is lost).
        launch_id: the launch's id (None: any launch counts; see :class:`Expectation`).
        timeout_s, poll_s: seconds to wait in all, and between two listings.
        progress: called with the report after every listing.

    Returns the report; ``report.missing`` names the runs that never produced a results file and
    ``report.timed_out`` says whether the time ran out. A file is read once: later polls skip sources
    already stored or rejected for their content.

    A :class:`~toolchain.bench.transport.Transient` error (device offline, unplugged, a cut stream,
    throttling) is retried after a pause that doubles each time (at most ``MAX_BACKOFF_S``), at most
    ``MAX_TRANSIENT_IN_A_ROW`` times in a row; ``report.retries`` counts them. Any other error ends the
    wait at once (a permanent failure: the app is not installed, trust was revoked).
    """
    exp = expect(plan, launch_id)
    seen: dict[str, Collected] = {}  # read once: stored, duplicate, or rejected for its content
    failed: dict[str, Collected] = {}  # the last failed read of each source: retried on the next poll
    deadline = clock() + timeout_s
    problem = None
    retries = in_a_row = 0
    while True:
        try:
            done = transport.finished()  # before listing, so the last listing sees everything a finished run has
            try:
                for c in collect(transport, store, skip=seen):
                    if c.outcome.status == "rejected" and "cannot read" in c.outcome.message:
                        failed[c.remote.source] = c
                    else:
                        seen[c.remote.source] = c
                        failed.pop(c.remote.source, None)
                problem = None
            except RemoteFolderMissing as e:
                problem = str(e)
            groups = transport.groups()
            failures = transport.failures() if done else []
            in_a_row = 0
        except Transient as e:
            # Offline, unplugged, cut stream, throttled: try again after a growing pause, a bounded number of times.
            retries, in_a_row = retries + 1, in_a_row + 1
            log.warning("transient error (%d in a row): %s", in_a_row, e)
            transport.reconnect()  # a USB drop kills an open house-arrest connection: the next try opens a new one
            if in_a_row > MAX_TRANSIENT_IN_A_ROW:
                raise CollectError(f"{e} (gave up after {in_a_row} tries in a row; {retries} transient error(s) "
                                   "in this wait)") from None
            left = deadline - clock()
            if left <= 0:
                raise CollectError(f"{e} (still failing when the time ran out; {retries} transient error(s) "
                                   "in this wait)") from None
            sleep(min(max(poll_s, 1.0) * 2 ** (in_a_row - 1), MAX_BACKOFF_S, left))
            continue
        report = match(exp, [*seen.values(), *failed.values()], groups)
        report.problem, report.failures, report.retries = problem, failures, retries
        if progress:
            progress(report)
        if report.complete or done:
            return report
        left = deadline - clock()
        if left <= 0:
            report.timed_out = True
            return report
        sleep(min(poll_s, left))
