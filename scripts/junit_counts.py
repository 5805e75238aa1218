"""The CI line of a harness test run, counted from its JUnit/xUnit XML reports (never from a runner's prose).

Both harness test runners call it: ``ios_harness/run-tests.sh`` (SwiftPM's ``--xunit-output``) and
``android_harness/core/run-tests.sh`` (the JUnit platform launcher's ``TEST-*.xml``). CI reads the printed
``<label>: N passed, N failed`` line (shared/FINDINGS.md, "Harness tooling").

    python3 scripts/junit_counts.py "Kotlin core" RUNNER_RC build/reports/TEST-*.xml [--counts FILE]

Exit 1 when a test failed, the runner's exit code was not 0, or nothing passed; ``--counts`` also writes
``passed failed`` to FILE for a status file.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(reports: list[Path]) -> tuple[int, int, int, list[str]]:
    """(passed, failed, skipped, names of failed tests) over every ``testcase`` of the existing reports."""
    total = failed = skipped = 0
    failures = []
    for path in reports:
        if not path.is_file():
            continue
        for case in ET.parse(path).getroot().iter("testcase"):
            total += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failures.append(f"{case.get('classname')}.{case.get('name')}")
            elif case.find("skipped") is not None:
                skipped += 1
    return total - failed - skipped, failed, skipped, failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("label")
    ap.add_argument("runner_rc", type=int)
    ap.add_argument("reports", nargs="*", type=Path)
    ap.add_argument("--counts", type=Path)
    args = ap.parse_args(argv)
    passed, failed, skipped, failures = count(args.reports)
    for name in failures:
        print(f"FAILED {name}", file=sys.stderr)
    print(f"{args.label}: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    if args.counts is not None:
        args.counts.write_text(f"{passed} {failed}\n")
    return 1 if (failed or args.runner_rc or passed == 0) else 0


if __name__ == "__main__":
    sys.exit(main())
