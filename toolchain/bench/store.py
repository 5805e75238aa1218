"""The results store: every collected file validated, kept raw, de-duplicated, never overwritten.

Layout of a store folder::

    STORE/
      <run_id>.<sha256>.json        a valid results v1 file, byte for byte as received
      rejected/<sha256>.json        a file that failed validation, kept so nothing is lost,
      rejected/<sha256>.why.txt     ... with where it came from and why it was rejected
      .lock                         serialises writers (several collectors may run at once)

The stored name is built from the result's ``run_id`` (checked against ``RUN_ID_PATTERN``,
``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``, by the schema: no separators, no leading dot) and the sha256 of the content; a name that came from a device or a zip member
is only ever used as a label in messages, so it cannot escape the store. Adding a run whose
``run_id`` is already stored is a *duplicate* when the JSON is the same and a *conflict*
(the stored file wins, the newcomer goes to ``rejected/``) when it differs.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from toolchain import jsonio
from toolchain.bench.schema import MAX_RESULT_BYTES, RUN_ID_PATTERN, validate_result
from toolchain.errors import SchemaError, StoreError, ToolchainError
from toolchain.fsutil import WriteBatch, atomic_write_bytes

REJECTED_DIR = "rejected"
LOCK_FILE = ".lock"
#: A batch makes its writes visible every this many files (one sync each): bounds what a kill -9 loses to a
#: rerun of the same command, and the temps waiting beside the store.
BATCH_COMMIT_FILES = 1000
_NAME = re.compile(r"^(?P<run_id>[A-Za-z0-9][A-Za-z0-9._-]{0,127})\.(?P<sha>[0-9a-f]{64})\.json$")
_RUN_ID = re.compile(RUN_ID_PATTERN)


@dataclass(frozen=True)
class AddOutcome:
    """What happened to one incoming file. ``status``: stored | duplicate | conflict | rejected."""

    source: str
    status: str
    message: str
    run_id: str | None = None
    path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("stored", "duplicate")


@dataclass(frozen=True)
class Entry:
    run_id: str
    sha256: str
    path: Path


def label(source: str, limit: int = 160) -> str:
    """A printable label for a file name that came from elsewhere (control characters escaped)."""
    text = source.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SAFE_REMOTE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json$")


def is_safe_remote_name(name: str) -> bool:
    """A results file name from a device that may be asked for: one path segment, plain characters.

    >>> [is_safe_remote_name(n) for n in ("run-1.json", "../x.json", "a/b.json", ".hidden.json", "x.txt")]
    [True, False, False, False, False]
    """
    return bool(_SAFE_REMOTE.match(name)) and ".." not in name


def parse_result_bytes(data: bytes, source: str) -> dict[str, Any]:
    """Bytes -> validated results v1 object; :class:`SchemaError` naming ``source`` and the problem."""
    src = label(source)
    obj = jsonio.loads(data, src, max_bytes=MAX_RESULT_BYTES, error=SchemaError, what="results file")
    if not isinstance(obj, dict):
        raise SchemaError(f"{src}: a results file holds one JSON object, not {type(obj).__name__}")
    validate_result(obj, src)
    problem = sample_problem(obj)
    if problem:
        raise SchemaError(f"{src}: {problem}")
    return obj


def sample_problem(obj: dict[str, Any]) -> str | None:
    """What makes a schema-valid result's timings unusable, or None.

    Why here and not in the schema: the schema checks shape and counts per status; these are measurements no
    clock gives (every sample 0 ns), which the store must not keep and reports must not average. (Fewer samples
    than ``protocol.iterations`` is already a schema error for an ``ok`` run, and a ``partial`` run must say why.)
    """
    lat = obj.get("latency_ns") or []
    if lat and not any(lat):
        return (f"every one of its {len(lat)} latency samples is 0 ns: the timer did not run (a harness or "
                "clock fault), so there is nothing to report")
    return None


def _read(path: Path) -> bytes:
    """A stored or found results file's bytes: regular files only (a FIFO named *.json must not hang us)."""
    return jsonio.read_bytes(path, max_bytes=MAX_RESULT_BYTES, error=SchemaError, what="results file")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class ResultStore:
    """A folder of results v1 files. Safe for several processes adding at once (``flock``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"results store {self.root} is a file, not a folder")
        self._held = 0  # lock depth: flock on a second descriptor of this process would wait for itself
        self._index: dict[str, list[Entry]] | None = None  # run_id -> entries, valid only while a batch holds the lock
        self._writes: WriteBatch | None = None  # a batch's writes, made visible together (one sync, not one each)

    @contextlib.contextmanager
    def batch(self) -> Iterator["ResultStore"]:
        """Hold the lock for many adds, listing the store and cleaning stale temps once, not once per file.

        Why: each add used to glob the whole store (and each write rescanned it for stale temps), so
        `collect dir` of 10,000 files was quadratic (210 s). Under the lock no other writer can change the
        store, so one listing kept up to date by this process is exact.
        """
        with self._locked():
            from toolchain.fsutil import clean_stale_temps

            clean_stale_temps(self.root)
            clean_stale_temps(self.root / REJECTED_DIR)
            index: dict[str, list[Entry]] = {}
            for e in self.entries():
                index.setdefault(e.run_id, []).append(e)
            self._index, self._writes = index, WriteBatch()
            try:
                yield self
            finally:
                try:
                    self._writes.commit()  # also on an error: what was stored before it stays stored
                finally:
                    self._writes.discard()
                    self._index, self._writes = None, None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._held:
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / LOCK_FILE, "a+")
        except OSError as e:
            raise StoreError(f"results store {self.root} is not writable: {e.strerror or e}") from None
        with fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            self._held = 1
            try:
                yield
            finally:
                self._held = 0
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _write(self, path: Path, data: bytes) -> None:
        if self._writes is None:
            atomic_write_bytes(path, data)
            return
        self._writes.write(path, data)
        if len(self._writes.pending) >= BATCH_COMMIT_FILES:
            self._writes.commit()

    def _find(self, run_id: str) -> list[Entry]:
        if not _RUN_ID.match(run_id):  # "../x", "/abs", ".hidden": never a path outside (or hidden in) the store
            raise StoreError(f"{label(run_id)!r} is not a run id (letters, digits, '.', '_', '-'; not starting "
                             "with '.'); see `deploy results list`")
        if self._index is not None:
            return list(self._index.get(run_id, []))
        pattern = f"{glob.escape(run_id)}.{'[0-9a-f]' * 64}.json"
        return [Entry(run_id, p.name[len(run_id) + 1:-5], p) for p in sorted(self.root.glob(pattern))]

    def _reject(self, data: bytes, source: str, why: str, keep: bool = True) -> AddOutcome:
        if not keep:
            return AddOutcome(source, "rejected", why)
        sha = hashlib.sha256(data).hexdigest()
        kept = self.root / REJECTED_DIR / f"{sha}.json"
        with self._locked():
            if not (kept.exists() or (self._writes is not None and kept in self._writes.pending)):
                self._write(kept, data)
            self._write(kept.with_suffix(".why.txt"), f"source: {label(source)}\nproblem: {why}\n".encode())
        return AddOutcome(source, "rejected", f"{why} (kept as {kept})", path=kept)

    def add_bytes(self, data: bytes, source: str) -> AddOutcome:
        """Validate and store one file's bytes; never raises for bad content (see the outcome)."""
        try:
            obj = parse_result_bytes(data, source)
        except SchemaError as e:
            return self._reject(data, source, str(e), keep=len(data) <= MAX_RESULT_BYTES)
        run_id = obj["run_id"]
        sha = hashlib.sha256(data).hexdigest()
        with self._locked():
            existing = self._find(run_id)
            for e in existing:
                if e.sha256 == sha:
                    return AddOutcome(source, "duplicate", f"run {run_id} is already stored", run_id, e.path)
            for e in existing:
                try:
                    where = self._writes.current(e.path) if self._writes is not None else e.path
                    same = _canonical(jsonio.read(where, max_bytes=MAX_RESULT_BYTES)) == _canonical(obj)
                except ToolchainError:
                    same = False
                if same:
                    return AddOutcome(source, "duplicate", f"run {run_id} is already stored (same JSON)", run_id, e.path)
            if not existing:
                path = self.root / f"{run_id}.{sha}.json"
                self._write(path, data)  # a batch cleaned stale temps once at its start
                if self._index is not None:
                    self._index[run_id] = [Entry(run_id, sha, path)]
                return AddOutcome(source, "stored", f"stored run {run_id}", run_id, path)
        out = self._reject(data, source, f"{label(source)}: run {run_id} is already stored with different content "
                                         f"({existing[0].path.name}); the stored file is kept")
        return AddOutcome(source, "conflict", out.message, run_id, out.path)

    def add_object(self, obj: dict[str, Any], source: str) -> AddOutcome:
        return self.add_bytes((jsonio.dumps(obj, indent=2) + "\n").encode("utf-8"), source)

    def add_file(self, path: str | Path, source: str | None = None) -> AddOutcome:
        """Read at most the size limit (so a huge file is refused without reading it all)."""
        path = Path(path)
        src = source or str(path)
        try:
            data = _read(path)
        except SchemaError as e:
            return AddOutcome(src, "rejected", f"{e} (left where it is, not copied)")
        return self.add_bytes(data, src)

    def add_many(self, items: Iterable[tuple[str, bytes]]) -> list[AddOutcome]:
        return [self.add_bytes(data, source) for source, data in items]

    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            return []
        out = []
        for p in sorted(self.root.iterdir()):
            m = _NAME.match(p.name)
            if m and p.is_file():
                out.append(Entry(m["run_id"], m["sha"], p))
        return out

    def rejected(self) -> list[Path]:
        d = self.root / REJECTED_DIR
        return sorted(p for p in d.glob("*.json")) if d.is_dir() else []

    def _one(self, run_id: str) -> Entry:
        found = self._find(run_id) if self.root.is_dir() else []
        if not found:
            near = [e.run_id for e in self.entries() if e.run_id.startswith(run_id)]
            hint = f"; runs starting so: {', '.join(near[:5])}" if near else "; see `deploy results list`"
            raise StoreError(f"no run {run_id!r} in {self.root}{hint}")
        return found[0]

    def get(self, run_id: str) -> dict[str, Any]:
        e = self._one(run_id)
        return parse_result_bytes(_read(e.path), str(e.path))

    def remove(self, run_id: str) -> Path:
        with self._locked():
            e = self._one(run_id)
            e.path.unlink()
        return e.path

    def load_all(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every stored result (validated again) and the problems of any that no longer validate."""
        results, problems = [], []
        for e in self.entries():
            try:
                results.append(parse_result_bytes(_read(e.path), str(e.path)))
            except (SchemaError, OSError) as err:
                problems.append(str(err))
        return results, problems


def find_results_files(folder: Path) -> tuple[list[Path], list[str]]:
    """Every ``*.json`` under ``folder`` (iteratively: any depth), and why each one passed over was skipped.

    A symlink is followed when it resolves to a regular file inside ``folder`` (a link to another results
    file of the same tree); one that leads outside, dangles or loops is named as skipped with the reason,
    never passed over silently.
    """
    from toolchain.fsutil import walk_files

    root = folder.resolve()
    files, skipped = [], []
    for f in walk_files(folder):
        if f.suffix != ".json":
            continue
        if f.is_symlink():
            try:
                target = f.resolve(strict=True)
            except (OSError, RuntimeError):
                skipped.append(f"{label(str(f))}: skipped, a symlink that dangles or loops")
                continue
            if not target.is_relative_to(root):
                skipped.append(f"{label(str(f))}: skipped, a symlink to {label(str(target))} outside {label(str(folder))}")
                continue
            if not target.is_file():
                skipped.append(f"{label(str(f))}: skipped, a symlink to something that is not a file")
                continue
        files.append(f)
    return sorted(files), skipped


def load_results_dirs(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """All results under folders (any ``*.json`` outside ``rejected/``) or files, de-duplicated by run_id.

    Returns (results, problems): a bad file becomes a problem line naming it; the rest still load.
    """
    seen: dict[str, str] = {}
    results, problems = [], []
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*.json") if REJECTED_DIR not in f.relative_to(p).parts[:-1]
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    for f in files:
        try:
            obj = parse_result_bytes(_read(f), str(f))
        except (SchemaError, OSError) as e:
            problems.append(str(e))
            continue
        sha = hashlib.sha256(_canonical(obj).encode()).hexdigest()
        if obj["run_id"] in seen:
            if seen[obj["run_id"]] != sha:
                problems.append(f"{f}: run {obj['run_id']} appears twice with different content; kept the first")
            continue
        seen[obj["run_id"]] = sha
        results.append(obj)
    return results, problems
