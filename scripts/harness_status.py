"""Status files of the app-build steps, shared by their scripts and the tests that report them.

`ios_harness/run-tests.sh` (Swift core) and `android_harness/build-apk.sh` (APK) each end by writing
`.tools/status/<step>.json`: passed, failed or skipped (with the reason), test counts, seconds, and a
hash of the files the step read. `tests/harness/test_app_builds.py` turns that into a pytest pass,
failure or skip, and trusts it only while the hash still matches the files on disk, so editing a
Swift or Kotlin file after a build never leaves a stale "passed" behind.

    python3 scripts/harness_status.py write swift-core passed --passed 6 --failed 0 --seconds 21
    python3 scripts/harness_status.py hash android-apk
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: The files each step reads: (folder relative to the repo, file name suffixes).
STEP_INPUTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "swift-core": [("ios_harness", (".swift", ".sh")), ("tests/fixtures/results", (".json",))],
    "android-apk": [("android_harness", (".kt", ".kts", ".java", ".xml", ".toml", ".properties", ".sh", ".pro"))],
}
_SKIP_PARTS = {".build", "build", ".gradle"}


def status_dir(repo: Path = REPO) -> Path:
    return Path(os.environ.get("TOOLS", repo / ".tools")) / "status"


def input_files(step: str, repo: Path = REPO) -> list[Path]:
    """The step's input files, sorted, links not followed (each file counts once)."""
    out = []
    for folder, suffixes in STEP_INPUTS[step]:
        base = repo / folder
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_PARTS and not Path(dirpath, d).is_symlink())
            out += [Path(dirpath, f) for f in filenames if f.endswith(suffixes) and not Path(dirpath, f).is_symlink()]
    return sorted(out)


def inputs_sha256(step: str, repo: Path = REPO) -> str:
    """One hash over every input file's path and bytes."""
    h = hashlib.sha256()
    for f in input_files(step, repo):
        h.update(f.relative_to(repo).as_posix().encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def write(step: str, status: str, reason: str = "", passed: int = 0, failed: int = 0, seconds: float = 0.0,
          repo: Path = REPO) -> Path:
    """Writes `<status dir>/<step>.json` atomically (temp file + rename)."""
    if status not in ("passed", "failed", "skipped"):
        raise ValueError(f"status must be passed, failed or skipped, not {status!r}")
    record = {"step": step, "status": status, "reason": reason, "passed": passed, "failed": failed,
              "seconds": round(seconds, 1), "inputs_sha256": inputs_sha256(step, repo)}
    folder = status_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{step}.")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=2)
    target = folder / f"{step}.json"
    os.replace(tmp, target)
    return target


def read(step: str, repo: Path = REPO) -> dict | None:
    path = status_dir(repo) / f"{step}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("step", choices=sorted(STEP_INPUTS))
    w.add_argument("status", choices=["passed", "failed", "skipped"])
    w.add_argument("--reason", default="")
    w.add_argument("--passed", type=int, default=0)
    w.add_argument("--failed", type=int, default=0)
    w.add_argument("--seconds", type=float, default=0.0)
    h = sub.add_parser("hash")
    h.add_argument("step", choices=sorted(STEP_INPUTS))
    args = p.parse_args(argv)
    if args.cmd == "write":
        write(args.step, args.status, args.reason, args.passed, args.failed, args.seconds)
    else:
        print(inputs_sha256(args.step))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
