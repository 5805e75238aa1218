"""Atomic file and folder writes, hashing, and output-folder checks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from toolchain.errors import ToolchainError


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, or of every file in a folder (sorted relative paths + contents)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(bytes.fromhex(sha256_file(f)))
        return h.hexdigest()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def walk_files(root: str | Path, *, skip_hidden: bool = False) -> Iterator[Path]:
    """Every non-folder entry under ``root`` (files, and symlinks not to folders), without recursion.

    Why not ``Path.rglob``/``os.walk``: on Python 3.11 both recurse once per folder level, so a tree 2,000
    folders deep raised ``RecursionError``. This keeps an explicit stack, never descends into a symlinked
    folder (no loops), and skips names starting with ``.`` when ``skip_hidden``. Order is unspecified: sort.
    """
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue  # unreadable (or vanished) sub-folder; the root itself is checked by callers
        for e in entries:
            if skip_hidden and e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                stack.append(Path(e.path))
            else:
                yield Path(e.path)


def os_error_line(e: OSError) -> str:
    """One line for an OSError, ``shutil.Error`` included (its message is a list of (src, dst, why) tuples,
    one per file a ``copytree`` could not copy: on a full disk, thousands)."""
    if isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list) and e.args[0]:
        first = e.args[0][0]
        src, dst, why = (list(first) + ["", "", ""])[:3] if isinstance(first, (tuple, list)) else ("", "", first)
        more = len(e.args[0]) - 1
        return f"{dst or src}: {why}" + (f" (and {more} more file(s) not copied)" if more else "")
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    return f"{where}{e.strerror or e}"


def copy_tree(src: str | Path, dst: str | Path) -> None:
    """``shutil.copytree`` whose failure is one OSError line (see :func:`os_error_line`)."""
    try:
        shutil.copytree(src, dst)
    except shutil.Error as e:
        raise OSError(os_error_line(e)) from None


def size_bytes(path: str | Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mkstemp/mkdtemp create 0600 files and 0700 folders; what we publish gets the modes a plain open()/mkdir()
#: would give (e.g. 0644/0755), so results, manifests and artifacts stay readable to other users and tools.
_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def atomic_write_bytes(path: str | Path, data: bytes, clean: bool = True) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``.

    ``clean=False``: the caller already removed stale temps of the folder (a batch of many writes, where
    rescanning the folder per write is quadratic).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        clean_stale_temps(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class WriteBatch:
    """Many atomic writes with one sync: each :meth:`write` goes to a temp file beside its target;
    :meth:`commit` syncs the file system once, then renames every temp over its target.

    Why: :func:`atomic_write_bytes` fsyncs each file (~5 ms on a plain disk), which made `collect dir` of
    10,000 results files spend most of its time in fsync. Renaming only after the one sync keeps the
    guarantee of the single write: a target is either absent or complete. A kill before :meth:`commit` leaves
    only temps named like :func:`atomic_write_bytes`'s, which the next writer of the folder removes.
    """

    def __init__(self) -> None:
        self.pending: dict[Path, Path] = {}  # target -> its temp, in write order

    def write(self, path: str | Path, data: bytes) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        old = self.pending.pop(path, None)
        if old is not None:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        self.pending[path] = Path(tmp)

    def current(self, path: str | Path) -> Path:
        """Where ``path``'s bytes are now: its pending temp, or ``path`` itself."""
        return self.pending.get(Path(path), Path(path))

    def commit(self) -> None:
        if not self.pending:
            return
        os.sync()  # every temp's data on disk before any rename makes it visible
        folders = set()
        for path, tmp in self.pending.items():
            os.replace(tmp, path)
            folders.add(path.parent)
        self.pending.clear()
        for folder in folders:  # the renames themselves
            with contextlib.suppress(OSError):
                fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def discard(self) -> None:
        for tmp in self.pending.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self.pending.clear()


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    from toolchain import jsonio

    atomic_write_text(path, jsonio.dumps(obj, indent=2, sort_keys=False) + "\n")  # no NaN/Inf literals


#: The file every output folder carries: which tool wrote it and as what (``kind``). A folder is replaced or
#: written into only when it is new, empty, or carries this marker for the same kind.
OUTPUT_MARKER = ".toolchain-output.json"
MARKER_TOOL = "toolchain"

#: A folder holding only these (e.g. a plan folder kept in git) counts as empty.
PLACEHOLDERS = frozenset({".gitignore", ".gitkeep"})

#: Folders written before the marker existed are recognised by a file each kind always had (glob patterns;
#: any one that matches a file).
LEGACY_SIGNATURES: dict[str, tuple[str, ...]] = {
    "bundle": ("model.json",),
    "artifact": ("manifest.json",),
    "report": ("report.md", "report.json"),
    "plan": ("plan.json",),
    "synth": ("synth.json",),
    "splits": ("splits.json",),
    "evaluation": ("metrics.json",),
    "comparison": ("compare.json",),
    "run": ("checkpoint.json", "bundle/model.json"),
    "stage": ("stage.json",),
    "pipeline": ("*/*/stage.json",),
}


def read_marker(folder: str | Path) -> dict[str, Any] | None:
    """The output marker of ``folder`` ({"tool", "kind", ...}), or None when it has none or it is not ours."""
    p = Path(folder) / OUTPUT_MARKER
    try:
        if not p.is_file() or p.stat().st_size > 4096:
            return None
        obj = json.loads(p.read_bytes())
    except (OSError, ValueError):
        return None
    if isinstance(obj, dict) and obj.get("tool") == MARKER_TOOL and isinstance(obj.get("kind"), str):
        return obj
    return None


def _marker_bytes(kind: str) -> bytes:
    from toolchain import __version__

    return (json.dumps({"tool": MARKER_TOOL, "kind": kind, "version": __version__}) + "\n").encode()


def write_marker(folder: str | Path, kind: str) -> None:
    """Mark ``folder`` as a ``kind`` output of this tool (atomically)."""
    atomic_write_bytes(Path(folder) / OUTPUT_MARKER, _marker_bytes(kind))


def check_output_dir(path: str | Path, kind: str, force: bool = False, what: str = "--out") -> Path:
    """Refuse, before any work, to replace or write into a folder this tool did not write as ``kind``.

    ``path`` may be: absent; an empty folder; or a folder whose marker (or, for folders written before markers,
    whose signature file in :data:`LEGACY_SIGNATURES`) says it is a ``kind`` output. Anything else — a file, a
    user's data set, another kind of output — raises :class:`~toolchain.errors.OutputFolderError` naming what is
    there, unless ``force`` (``--force``) is given. Nothing is changed either way.

    >>> import tempfile, pathlib; d = pathlib.Path(tempfile.mkdtemp()); (d / "thesis.tex").write_text("...")
    3
    >>> check_output_dir(d, "synth")
    Traceback (most recent call last):
    ...
    toolchain.errors.OutputFolderError: --out ... is a non-empty folder that is not a synth written by deploy ...
    """
    from toolchain.errors import OutputFolderError

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        for parent in path.parents:  # "notes.txt/out": say so now, not as "File exists" after the work
            if parent.exists():
                if not parent.is_dir():
                    raise OutputFolderError(f"{what} {path}: {parent} is a file, not a folder (nothing was changed)")
                break
        return path
    if not path.is_dir():
        raise OutputFolderError(f"{what} {path} exists and is not a folder; give a new folder path "
                                f"(nothing was changed)")
    if force:
        return path
    try:
        entries = sorted(p.name for p in path.iterdir())
    except OSError as e:
        raise OutputFolderError(f"{what} {path} cannot be read: {e.strerror or e}") from None
    if not set(entries) - PLACEHOLDERS:
        return path
    marker = read_marker(path)
    if marker is not None:
        if marker["kind"] == kind:
            return path
        raise OutputFolderError(f"{what} {path} holds a {marker['kind']} written by deploy, not a {kind}; "
                                "choose another folder, or give --force to replace it (nothing was changed)")
    sig = LEGACY_SIGNATURES.get(kind, ())
    if any(p.is_file() for pattern in sig for p in path.glob(pattern)):
        return path
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise OutputFolderError(f"{what} {path} is a non-empty folder that is not a {kind} written by deploy "
                            f"({len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: {shown}); nothing was "
                            "changed. Choose a new or empty folder, or give --force to replace it")


def claim_output_dir(path: str | Path, kind: str, force: bool = False, what: str = "--out") -> Path:
    """For outputs written into a folder in place (run folders): check it, create it, mark it, check writable."""
    path = check_output_dir(path, kind, force, what)
    ensure_writable_dir(path)
    clean_stale_temps(path)  # debris of a killed run in this folder (half-written checkpoints, bundles)
    if read_marker(path) is None or read_marker(path)["kind"] != kind:
        try:
            write_marker(path, kind)
        except OSError as e:
            from toolchain.errors import OutputFolderError

            raise OutputFolderError(f"{what} {path} is not writable: {e.strerror or e}") from None
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[^.]+\.(?:tmp|old)$")


def clean_stale_temps(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove temp files/folders that a killed writer left in ``folder`` (optionally only those for ``name``).

    Temp names carry the writer's pid (``.<name>.<pid>-<random>.tmp``); one whose process is gone is debris
    of a kill and never a valid output. A live writer's temp is left alone.
    """
    removed: list[Path] = []
    folder = Path(folder)
    try:
        children = list(folder.iterdir())
    except OSError:
        return removed
    for p in children:
        m = _TEMP.match(p.name)
        if not m or (name is not None and m["name"] != name) or _pid_alive(int(m["pid"])):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_dir(final: str | Path, kind: str = "folder", force: bool = False, what: str = "--out") -> Iterator[Path]:
    """Yield a temp folder beside ``final``; on success it replaces ``final``, on error it is removed.

    A failed or interrupted write therefore never leaves a half-written ``final``. An existing ``final`` is
    replaced only if :func:`check_output_dir` allows it (new, empty, or this tool's ``kind`` output; or
    ``force``): checked on entry, before the work, and again just before the swap. The new folder carries the
    output marker. Debris of an earlier killed write of the same ``final`` is removed first.
    """
    from toolchain.errors import OutputFolderError

    final = Path(final)
    check_output_dir(final, kind, force, what)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(final.parent, final.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".tmp", dir=final.parent))
    except OSError as e:
        raise OutputFolderError(f"{what} {final} cannot be written: {e.strerror or e} (nothing was changed)") from None
    try:
        tmp.chmod(DIR_MODE)
        yield tmp
        (tmp / OUTPUT_MARKER).write_bytes(_marker_bytes(kind))
        if final.exists() or final.is_symlink():
            check_output_dir(final, kind, force, what)
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}-", suffix=".old", dir=final.parent))
            os.replace(final, old / "x")  # rename: a symlink is moved as a link, never followed
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` if needed and check that files can be written there, before any work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ToolchainError(f"output folder {path} is not writable: {e.strerror or e}") from None
    return path
