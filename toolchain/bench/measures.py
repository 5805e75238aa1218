"""Results schema v2: what a device run records beside the latency samples (added to v1, which still reads).

The anchors — TFLite's ``benchmark_model``, ExecuTorch's benchmark apps, Qualcomm AI Hub's profiles —
record more than latency. Version 2 adds, each written by both apps:

- ``cold_load_ns``: the run's first load of the model, compile included (``compile_ns + load_ns`` of the
  first prepare); ``warm_load_ns``: later loads of the same, already compiled model (:data:`WARM_LOADS`
  times, after the timed loop so they never disturb it). ``first_inference_ns`` is v1's.
- ``native_latency_ns``: per timed iteration, the runtime's own inference time where it reports one
  (LiteRT's ``Interpreter.getLastNativeInferenceDurationNanoseconds()``, no buffer copies: comparable with
  ``benchmark_model``); null when the runtime has none (Core ML).
- ``memory``: bytes before the load and after the timed loop, and the peak; ``kind`` says what was read
  (iOS ``phys_footprint`` from ``task_info(TASK_VM_INFO)``, the figure Xcode's memory gauge shows;
  Android ``pss`` from ``Debug.getPss()`` with the native heap beside it).
- ``placement``: where the graph ran. Core ML's ``MLComputePlan`` (iOS 17.4+) per-op device counts, else
  ``source: unknown``; LiteRT's delegated node count out of the total (the delegate's "Replacing N out
  of M node(s)" log line). A run whose compute units ask for an accelerator but left nodes on the CPU is
  *partly delegated* (:func:`partly_delegated`).
- ``device_state``: samples during the run (battery level, charging, low-power mode, thermal state), and
  whether the app stayed in the foreground with the screen on for the whole run.
"""

from __future__ import annotations

from typing import Any, Callable

#: Warm loads after the timed loop (ExecuTorch's benchmark apps repeat the load; three keeps a run short).
WARM_LOADS = 3
MEMORY_KINDS = ("phys_footprint", "pss")
PLACEMENT_SOURCES = ("mlcomputeplan", "litert_log", "unknown")
#: Devices an op may run on (Core ML's MLComputeDevice kinds; LiteRT's delegate or the CPU).
OP_DEVICES = ("cpu", "gpu", "neural_engine", "delegate")
#: At most this many state samples per run (a long run samples less often, never more).
MAX_STATE_SAMPLES = 256


def v2_properties(ns: dict[str, Any], nullable: Callable[[dict], dict], obj: Callable[..., dict],
                  thermal_states: tuple[str, ...]) -> dict[str, Any]:
    """The top-level fields v2 adds, built with schema.py's helpers (so this module imports nothing of it)."""
    count = {"type": "integer", "minimum": 0}
    byte_count = nullable({"type": "integer", "minimum": 0})
    sample = obj({
        "t_ms": {"type": "integer", "minimum": 0},
        "battery_level": nullable({"type": "number", "minimum": 0, "maximum": 1}),
        "charging": {"type": ["boolean", "null"]},
        "low_power_mode": {"type": ["boolean", "null"]},
        "thermal_state": {"enum": list(thermal_states)},
        "foreground": {"type": ["boolean", "null"]},
        "screen_on": {"type": ["boolean", "null"]},
    })
    return {
        "cold_load_ns": nullable(ns),
        "warm_load_ns": {"type": "array", "items": ns},
        "native_latency_ns": nullable({"type": "array", "items": ns}),
        "memory": nullable(obj({
            "kind": {"enum": list(MEMORY_KINDS)},
            "before_bytes": byte_count,
            "after_bytes": byte_count,
            "peak_bytes": byte_count,
            "native_heap_before_bytes": byte_count,
            "native_heap_after_bytes": byte_count,
        }, optional=("native_heap_before_bytes", "native_heap_after_bytes"))),
        "placement": obj({
            "source": {"enum": list(PLACEMENT_SOURCES)},
            "total_nodes": nullable(count),
            "delegated_nodes": nullable(count),
            "ops_by_device": nullable({"type": "object", "propertyNames": {"enum": list(OP_DEVICES)},
                                       "additionalProperties": count}),
            "note": nullable({"type": "string"}),
        }),
        "device_state": obj({
            "samples": {"type": "array", "items": sample, "maxItems": MAX_STATE_SAMPLES},
            "stayed_foreground": {"type": ["boolean", "null"]},
            "screen_stayed_on": {"type": ["boolean", "null"]},
        }),
    }


V2_FIELDS = ("cold_load_ns", "warm_load_ns", "native_latency_ns", "memory", "placement", "device_state")


def v2_semantics(r: dict[str, Any]) -> list[str]:
    """v2's cross-field rules (presence is the schema's if/then): one native sample per timed sample, no v2
    field in a v1 file, no more delegated nodes than nodes."""
    out = []
    if r["schema_version"] == 1:
        extra = [k for k in V2_FIELDS if k in r]
        if extra:
            out.append(f"{', '.join(extra)}: schema v2 fields in a schema_version 1 file")
        return out
    native = r["native_latency_ns"]
    if native is not None and len(native) != len(r["latency_ns"]):
        out.append(f"native_latency_ns: {len(native)} values for {len(r['latency_ns'])} latency samples")
    p = r["placement"]
    if p["delegated_nodes"] is not None and p["total_nodes"] is not None and p["delegated_nodes"] > p["total_nodes"]:
        out.append(f"placement: {p['delegated_nodes']} delegated nodes of {p['total_nodes']}")
    return out


def partly_delegated(r: dict[str, Any]) -> bool | None:
    """True when an accelerator run left part of the graph on the CPU; None when unknown (v1, or not reported).

    >>> partly_delegated({"placement": {"source": "litert_log", "total_nodes": 45, "delegated_nodes": 42,
    ...                                 "ops_by_device": None}})
    True
    >>> partly_delegated({"placement": {"source": "mlcomputeplan", "total_nodes": 10, "delegated_nodes": None,
    ...                                 "ops_by_device": {"neural_engine": 10}}})
    False
    """
    p = r.get("placement")
    if not p or p.get("source") == "unknown":
        return None
    if p.get("delegated_nodes") is not None and p.get("total_nodes") is not None:
        return p["delegated_nodes"] < p["total_nodes"]
    by = p.get("ops_by_device")
    if by:
        return by.get("cpu", 0) > 0 and any(v > 0 for k, v in by.items() if k != "cpu")
    return None
