"""Getting files on and off devices: one :class:`Transport` per tool, one :func:`collect` for all of them.

Every way results come back — pymobiledevice3's house-arrest and Apple's ``devicectl`` for iOS,
``adb`` for Android, AWS Device Farm's artifacts — is a :class:`Transport` with five verbs:

- ``list()``: the results files the app has written so far (:class:`RemoteFile`, names as the
  device reported them: labels only, checked before they are asked for);
- ``read(file, limit_bytes)``: one file's bytes, never more than ``limit_bytes``;
- ``write(local, remote)``: put a plan folder where the app reads it;
- ``install(app)`` and ``launch(launch)``: install the harness and start it on a plan.

:func:`collect` is the one loop that turns a listing into stored results: it skips what is not a
``.json``, refuses unsafe names and oversized files before reading them, and hands every file's
bytes to the :class:`~toolchain.bench.store.ResultStore` (which validates and de-duplicates).
Waiting for a launch to finish is :func:`toolchain.bench.wait.wait_for_plan`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from toolchain.bench.schema import LAUNCH_ID_PATTERN, MAX_RESULT_BYTES
from toolchain.bench.store import AddOutcome, ResultStore, is_safe_remote_name, label
from toolchain.errors import CollectError

log = logging.getLogger(__name__)


class ReadFailed(CollectError):
    """One file could not be read (it is reported as rejected; the others are still collected)."""


class TooLarge(ReadFailed):
    """A file is larger than a results file can be: left on the device, not read whole."""


class Transient(CollectError):
    """A failure the next poll may not see: the device went offline or was unplugged, the stream was cut,
    the service throttled us. A wait retries it with backoff (a bounded number of times in a row, each
    one counted in the final report); a one-off collection reports it like any other error.
    """


class RemoteFolderMissing(CollectError):
    """The app's results folder does not exist (yet): nothing has been written there.

    While waiting for a launch this means "not yet"; for a one-off ``deploy collect`` it is an error.
    """


@dataclass(frozen=True)
class RemoteFile:
    """One file on the device side.

    ``name`` is the file's name as the device reported it; ``source`` the printable origin used in
    messages and in the store (``adb:PKG:/sdcard/.../x.json``); ``group`` the device it came from when one
    transport serves several (a Device Farm job), else None; ``ref`` is the transport's own handle.
    """

    name: str
    source: str
    size_bytes: int | None = None
    group: str | None = None
    ref: Any = None


@dataclass(frozen=True)
class Launch:
    """One start of the app on a plan. ``plan_ref``: where the app finds the plan (None: the one built in)."""

    plan_id: str
    launch_id: str
    plan_ref: str | None = None


def new_launch_id(now: datetime | None = None) -> str:
    """A fresh id for one launch: UTC time and 6 random hex digits, e.g. ``20250302T091500-3fa9c1``.

    The apps write it into every result of that launch, so results an earlier launch of the same plan left
    on the device are never counted as this launch's.
    """
    now = now or datetime.now(timezone.utc)
    out = f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    assert re.match(LAUNCH_ID_PATTERN, out)
    return out


def check_launch_id(launch_id: str) -> str:
    if not re.match(LAUNCH_ID_PATTERN, launch_id or ""):
        raise CollectError(f"launch id {launch_id!r} must match {LAUNCH_ID_PATTERN} (letters, digits, . _ -)")
    return launch_id


class Transport:
    """Base class: the five verbs plus ``groups``/``finished``/``close``. Subclasses override what they can do."""

    #: Registry name, shown in messages ("adb", "pymobiledevice3", "devicectl", "devicefarm").
    name = "transport"

    def list(self) -> list[RemoteFile]:
        raise NotImplementedError

    def read(self, file: RemoteFile, limit_bytes: int) -> bytes:
        raise NotImplementedError

    def write(self, local: Path, remote: str) -> str:
        raise CollectError(f"{self.name} cannot copy files to the device")

    def install(self, app: Path) -> None:
        raise CollectError(f"{self.name} cannot install apps")

    def launch(self, launch: Launch) -> None:
        raise CollectError(f"{self.name} cannot launch the app")

    def groups(self) -> list[str | None]:
        """Where results are expected from: one device (``[None]``) or, on Device Farm, each job's device."""
        return [None]

    def finished(self) -> bool:
        """True once nothing more will arrive (a Device Farm run completed); an app on a phone may always write more."""
        return False

    def failures(self) -> list[str]:
        """Runs the service itself reports as failed (a Device Farm job ERRORED or STOPPED), each with why."""
        return []

    def reconnect(self) -> None:
        """Drop any open connection (after the app was reinstalled); the next call opens a new one."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Collected:
    """What happened to one remote file: the store's outcome, and the result object when it was stored or known."""

    remote: RemoteFile
    outcome: AddOutcome
    result: dict[str, Any] | None = None


def _rejected(f: RemoteFile, why: str) -> Collected:
    return Collected(f, AddOutcome(f.source, "rejected", f"{label(f.source)}: {why}"))


def collect(transport: Transport, store: ResultStore, skip: Iterable[str] = (),
            files: list[RemoteFile] | None = None) -> list[Collected]:
    """Store every ``.json`` results file the transport lists, except the sources in ``skip``.

    Args:
        transport: where the files are.
        store: the results store; it validates each file and de-duplicates by run id.
        skip: ``RemoteFile.source`` values already handled (a wait loop does not read a file twice).
        files: a listing already made (default: ``transport.list()``).

    Files whose name is unsafe or whose size is over the results limit are rejected without being read.
    A read that fails is one rejected outcome; the other files are still collected.
    """
    skip = set(skip)
    out: list[Collected] = []
    for f in transport.list() if files is None else files:
        if not f.name.endswith(".json") or f.source in skip:
            continue  # temporary files the apps write before renaming, logs, other files
        if not is_safe_remote_name(f.name):
            out.append(_rejected(f, "unsafe file name, not fetched"))
            continue
        if f.size_bytes is not None and f.size_bytes > MAX_RESULT_BYTES:
            out.append(_rejected(f, f"{f.size_bytes} bytes is larger than {MAX_RESULT_BYTES}: not fetched"))
            continue
        try:
            data = transport.read(f, MAX_RESULT_BYTES)
        except TooLarge as e:
            out.append(_rejected(f, f"larger than {MAX_RESULT_BYTES} bytes: not a results file, left on the device ({e})"))
            continue
        except ReadFailed as e:
            out.append(_rejected(f, f"cannot read ({e})"))
            continue
        if len(data) > MAX_RESULT_BYTES:
            out.append(_rejected(f, f"larger than {MAX_RESULT_BYTES} bytes: not a results file, left on the device"))
            continue
        outcome = store.add_bytes(data, f.source)
        result = None
        if outcome.ok:
            try:
                result = json.loads(data.decode("utf-8"))
            except ValueError:  # the store parsed it already; cannot happen, but never crash a collection on it
                result = None
        out.append(Collected(f, outcome, result))
    return out
