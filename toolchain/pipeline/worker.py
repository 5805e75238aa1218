"""``python -m toolchain.pipeline.worker``: run one pipeline stage sent pickled on stdin (the ``local`` executor).

Protocol: JSON lines on the *original* stdout — ``{"progress": msg}`` while it runs, ``{"error": msg}`` on failure
(exit 1). Anything the libraries print goes to stderr instead (fd 1 is pointed there first), so a converter's chatter
cannot corrupt the protocol; the driver keeps stderr as the stage's log.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import traceback


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(**msg: str) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    from toolchain.errors import ToolchainError
    from toolchain.pipeline.engine import execute

    try:
        task = pickle.load(sys.stdin.buffer)  # written by our own driver into this child's stdin
        execute(task, lambda m: send(progress=m))
    except BaseException as e:  # noqa: BLE001  # every failure is reported to the driver, then exit 1
        traceback.print_exc()
        send(error=str(e) if isinstance(e, ToolchainError) else f"{type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
