"""Which failures of the real device tools are "not yet", "not now" or "never": one place for all of them.

A wait (:func:`toolchain.bench.wait.wait_for_plan`) treats them differently:
:class:`~toolchain.bench.transport.RemoteFolderMissing` is "not yet" (the app has not written anything),
:class:`~toolchain.bench.transport.Transient` is "not now" (retried with backoff, counted), anything else
ends the wait at once. Each vocabulary below cites where its words come from; a wording no source shows
is not relied on beyond "neither missing nor transient", which is the safe side (fail fast, say why).
"""

from __future__ import annotations

import re

from toolchain.bench.transport import RemoteFolderMissing, Transient
from toolchain.errors import CollectError

#: adb's own errors that a later try may not see (AOSP ``adb/client/adb_client.cpp`` and ``transport.cpp``
#: wording): the phone offline, unplugged, re-enumerating, or the connection closed under us.
#: ``device unauthorized`` is not among them: it needs a person at the phone. ``device 'SERIAL' not found`` is
#: matched by its quote, so the phone shell's ``sh: CMD: inaccessible or not found`` (permanent) is not retried.
TRANSIENT_ADB = ("device offline", "no devices/emulators found", "' not found", "closed", "protocol fault",
                 "connection reset", "device still authorizing", "device still connecting")

#: pymobiledevice3 errors of a connection that died or a device that is (for now) gone: the USB cable
#: knocked, the phone re-enumerating (pymobiledevice3 ``exceptions.py``; OS socket errors under it).
#: A wait re-creates the house-arrest service on the next try.
LOST_CONNECTION = frozenset({"ConnectionTerminatedError", "NoDeviceConnectedError", "DeviceNotFoundError",
                             "ConnectionFailedError", "ConnectionFailedToUsbmuxdError", "MuxException",
                             "ConnectionAbortedError", "ConnectionResetError", "BrokenPipeError"})

#: What `devicectl device copy from` prints, sorted: a folder the app has not made yet (NSCocoaErrorDomain
#: 260, flutter_tools ``core_devices_test.dart``), and the failures a later try may not see (unplugged:
#: CoreDeviceError 1000, same file; a lost connection: error 1 / 4000 / ControlChannelConnectionError; a
#: passcode-locked phone, as devicectl wrappers' fixtures report it). Anything else — trust revoked,
#: pairing lost, an unknown error — ends the wait at once.
DEVICECTL_MISSING = re.compile(r"doesn.t exist|does not exist|NSCocoaErrorDomain error 260|No such file")
DEVICECTL_TRANSIENT = re.compile(r"CoreDeviceError error (?:1|1000|4000)\b|could not be established"
                                 r"|ControlChannelConnectionError|disconnected|passcode protected|is locked"
                                 r"|Operation timed out", re.I)

#: Device Farm error codes that say "not now" (botocore ``data/_retry.json`` "general" throttling codes,
#: which botocore's own retry handler retries too) and botocore's connection-level exceptions.
TRANSIENT_AWS_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                                 "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure"})
TRANSIENT_AWS_ERRORS = frozenset({"EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
                                  "ConnectTimeoutError"})


def adb_error(what: str, text: str) -> CollectError:
    """A :class:`Transient` for adb's "not now" errors, else a plain CollectError (unauthorized, unknown command)."""
    return (Transient if any(t in text for t in TRANSIENT_ADB) else CollectError)(f"{what}: {text}")


def devicectl_copy_error(text: str, msg: str) -> CollectError:
    """A failed ``devicectl device copy from``: missing folder, transient, or permanent (by its whole output)."""
    if DEVICECTL_MISSING.search(text):
        return RemoteFolderMissing(msg)
    return (Transient if DEVICECTL_TRANSIENT.search(text) else CollectError)(msg)


def aws_error(what: str, e: Exception) -> CollectError:
    """A botocore failure as one line: Transient when throttled or the connection failed."""
    code = ((getattr(e, "response", None) or {}).get("Error") or {}).get("Code")
    cls = Transient if code in TRANSIENT_AWS_CODES or type(e).__name__ in TRANSIENT_AWS_ERRORS else CollectError
    return cls(f"Device Farm {what} failed: {type(e).__name__}: {e}")
