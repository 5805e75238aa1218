"""``python -m toolchain.pipeline.worker``: run pipeline stages sent on stdin, one after another (``local`` executor).

Protocol. In: frames of an 8-byte big-endian length and a pickled ``(log path, Task)``; end of input ends the worker.
Out: JSON lines on the *original* stdout — ``{"progress": msg}`` while a stage runs, then ``{"done": true}`` or
``{"error": msg}``. While a stage runs, fds 1 and 2 point at its log file, so whatever the libraries print (a
converter's chatter, a traceback) lands there and cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import traceback


def _read_frame(stream) -> bytes | None:
    head = stream.read(8)
    if len(head) < 8:
        return None
    return stream.read(int.from_bytes(head, "big"))


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)

    def send(**msg) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    from toolchain.errors import ToolchainError
    from toolchain.pipeline.engine import execute

    while (frame := _read_frame(sys.stdin.buffer)) is not None:
        log, task = pickle.loads(frame)  # written by our own driver into this child's stdin
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        try:
            execute(task, lambda m: send(progress=m))
        except Exception as e:  # noqa: BLE001  # reported to the driver; the worker takes the next stage
            traceback.print_exc()
            send(error=str(e) if isinstance(e, ToolchainError) else f"{type(e).__name__}: {e}")
        else:
            send(done=True)
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
