"""Results schema (v2; v1 files still read) and the run-plan schema: the one source for Python, Swift and Kotlin.

A *result* is one JSON file per run, written by the harness apps (iOS, Android) and the
host runner: raw integer nanoseconds, never statistics (those live in ``toolchain.report``).
A *plan* (``plan.json``) tells an app which artifacts to run, with which compute units and
protocol. ``docs/results-schema.json`` is generated from :data:`RESULTS_SCHEMA` and
:data:`PLAN_SCHEMA` by ``python -m toolchain.bench.schema --write``; a test keeps it current.

JSON Schema (draft 2020-12) checks shapes and types; :func:`validate_result` adds the rules
a schema cannot say well (an ``ok`` run has exactly ``protocol.iterations`` samples, ...)
and reports every problem at once in one :class:`~toolchain.errors.SchemaError`.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Callable

from toolchain.artifact.formats import BUNDLE_FORMAT, PLUGINS, PRECISIONS, app_format
from toolchain.bench.measures import V2_FIELDS, v2_properties, v2_semantics
from toolchain.errors import SchemaError
from toolchain.policy import FEATURE_SAMPLE_LEN  # noqa: F401  (one home; the schema's maxItems)

#: What the writers write now; :data:`SCHEMA_VERSIONS` are all a reader accepts (v2 = v1 + toolchain.bench.measures).
SCHEMA_VERSION = 2
SCHEMA_VERSIONS = (1, 2)
PLAN_VERSION = 1
#: A results file is a few KB (10 000 samples ~ 100 KB); anything far larger is not one.
MAX_RESULT_BYTES = 8 << 20
MAX_PLAN_BYTES = 1 << 20

#: Run ids name files in the store: plain characters, no leading dot (a hidden file would drop out of reports).
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
PLAN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: A plan's run key (``runs[].key``) and one launch of a plan on a device (``deploy bench ios|android``).
RUN_KEY_PATTERN = r"^[A-Za-z0-9._-]{1,48}$"
LAUNCH_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
#: Upper bound of every nanosecond count (about 2.8 hours): larger is a corrupt file, not a timing.
MAX_NS = 10**13
#: Upper bound of counts of iterations (warm-up or timed) in one run.
MAX_ITERATIONS = 10**7
SHA256_PATTERN = r"^[0-9a-f]{64}$"
# ISO 8601 in UTC: "2025-01-31T12:00:00Z", optional fraction, "Z" or "+00:00".
UTC_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$"

STATUSES = ("ok", "error", "partial")
#: Every format a result can time: the artifact formats and a bundle run by PyTorch.
FORMATS = (*PLUGINS, BUNDLE_FORMAT)
PLATFORMS = ("ios", "ipados", "android", "linux", "macos")
THERMAL_STATES = ("nominal", "fair", "serious", "critical", "unknown")
BATTERY_STATES = ("unknown", "unplugged", "charging", "full")
RUNTIMES = ("coreml", "litert", "onnxruntime", "pytorch")
INPUT_SOURCES = ("image", "random")
#: What one ``latency_ns`` sample contains (results v1 ``timed_region``, optional: older writers did not say).
TIMED_REGIONS = {
    "inference": "the runtime's inference call alone (the output stays in the runtime's own buffers)",
    "inference+read_features": "one inference on an input prepared before the loop, plus reading the whole "
                               "feature vector back into app memory as float32 (what both harness apps time)",
}
GPU_INFERENCE_PREFERENCES = ("fast_single_answer", "sustained_speed")
#: Compute-unit names each runtime accepts (the runtimes not listed take any string).
COMPUTE_UNITS = {
    "coreml": ("cpuOnly", "cpuAndGPU", "all", "cpuAndNeuralEngine"),
    "litert": ("cpu", "gpu", "nnapi"),
}


def app_runtime(fmt: str) -> str:
    """The results ``runtime.name`` a harness app writes for an artifact of ``fmt``: the runtime that times that
    format (``coreml``: Apple's Core ML, ``tflite``: LiteRT), as the host runner names it too."""
    from toolchain.runtimes import runtimes_for

    return runtimes_for(fmt, timing=True)[0].name

_NS = {"type": "integer", "minimum": 0, "maximum": MAX_NS}
_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_ITERATIONS}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(props: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """A closed object: every listed key required (nullable ones may be null) except ``optional``."""
    return {"type": "object", "properties": props, "required": [k for k in props if k not in optional],
            "additionalProperties": False}


_STR = {"type": "string", "minLength": 1}

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    # "$id" is an absolute URI without a fragment (JSON Schema 2020-12, section 8.2.1); the
    # plain-name fragment goes in "$anchor" so the document passes its own meta-schema.
    "$id": "https://github.com/ocular-deploy/toolchain/docs/results-schema.json",
    "$anchor": "result-v2",
    "title": "Benchmark result v2 (v1 still reads): one run of one artifact on one device",
    **_obj({
        "schema_version": {"enum": list(SCHEMA_VERSIONS)},
        "run_id": {"type": "string", "pattern": RUN_ID_PATTERN},
        "status": {"enum": list(STATUSES)},
        "error": _nullable(_STR),
        "created_at": {"type": "string", "pattern": UTC_TIME_PATTERN},
        "plan_id": _nullable(_STR),
        "artifact": _obj({
            "name": _STR,
            "format": {"enum": list(FORMATS)},
            "sha256": {"type": "string", "pattern": SHA256_PATTERN},
            "precision": {"enum": [*PRECISIONS, None]},
            "size_bytes": _nullable(_NS),
        }, optional=("size_bytes",)),
        "device": _obj({
            "platform": {"enum": list(PLATFORMS)},
            "identifier": _STR,
            "marketing_name": _nullable(_STR),
            "os_version": _STR,
            "thermal_state_start": {"enum": list(THERMAL_STATES)},
            "thermal_state_end": {"enum": list(THERMAL_STATES)},
            "low_power_mode": {"type": ["boolean", "null"]},
            "battery_state": {"enum": [*BATTERY_STATES, None]},
            "cpu": _nullable(_STR),
            "cores": _nullable({"type": "integer", "minimum": 1}),
        }),
        "app": _obj({"name": _STR, "version": _STR, "build": _STR}),
        "runtime": _obj({
            "name": {"enum": list(RUNTIMES)},
            "version": _STR,
            "compute_units": _nullable(_STR),
            "delegate": _nullable(_STR),
            "threads": _nullable({"type": "integer", "minimum": 1}),
            "options": _nullable({"type": "object",
                                  "additionalProperties": {"type": ["string", "boolean", "number"]}}),
        }, optional=("options",)),
        "protocol": _obj({
            "warmup": _COUNT,
            "iterations": {"type": "integer", "minimum": 1, "maximum": MAX_ITERATIONS},
            "input_source": {"enum": list(INPUT_SOURCES)},
            "input_seed": {"type": ["integer", "null"]},
            "cooldown_ms": _NS,
        }),
        "load_ns": _nullable(_NS),
        "compile_ns": _nullable(_NS),
        "first_inference_ns": _nullable(_NS),
        "latency_ns": {"type": "array", "items": _NS},
        "feature_dim": _nullable({"type": "integer", "minimum": 1}),
        "feature_sample": _nullable({"type": "array", "items": {"type": "number"}, "maxItems": FEATURE_SAMPLE_LEN}),
        "notes": _nullable({"type": "string"}),
        "extra": {"type": "object"},
        "launch_id": _nullable({"type": "string", "pattern": LAUNCH_ID_PATTERN}),
        "run_key": _nullable({"type": "string", "pattern": RUN_KEY_PATTERN}),
        "timed_region": {"enum": list(TIMED_REGIONS)},
        **v2_properties(_NS, _nullable, _obj, THERMAL_STATES),
    }, optional=("notes", "extra", "launch_id", "run_key", "timed_region", *V2_FIELDS)),
    # v2 needs its fields (said here, so plain jsonschema users see it too; measures.v2_semantics adds the rest).
    "if": {"properties": {"schema_version": {"const": 2}}},
    "then": {"required": list(V2_FIELDS)},
}

#: LiteRT GPU delegate settings a plan asks for (GpuDelegateFactory.Options), recorded in ``runtime.options``.
GPU_OPTIONS_SCHEMA = _obj({
    "precision_loss_allowed": {"type": "boolean"},
    "inference_preference": {"enum": list(GPU_INFERENCE_PREFERENCES)},
})



def default_gpu_options(precision: str | None) -> dict[str, Any]:
    """The GPU delegate settings a plan asks for when not told otherwise (the apps use the same without a plan's).

    fp16 arithmetic only for artifacts that are not fp32 (an fp32 model run in fp16 is another model), and
    ``sustained_speed``: one delegate serves every timed run (LiteRT's default, ``fast_single_answer``, is for one).

    >>> default_gpu_options("fp32"), default_gpu_options("int8")["precision_loss_allowed"]
    ({'precision_loss_allowed': False, 'inference_preference': 'sustained_speed'}, True)
    """
    return {"precision_loss_allowed": precision not in (None, "fp32"), "inference_preference": "sustained_speed"}


_TENSOR = _obj({
    "name": _STR,
    "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
    "layout": {"enum": ["nchw", "nhwc", "chw", None]},
    "dtype": _STR,
    "quantization": _nullable(_obj({"scale": {"type": "number", "exclusiveMinimum": 0},
                                     "zero_point": {"type": "integer"}})),
    # the manifest's InputSpec colour: the apps read C, H, W from shape + layout and the channel order from this
    "color": {"enum": ["rgb", "bgr", "gray"]},
}, optional=("layout", "dtype", "quantization", "color"))

PLAN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$anchor": "plan-v1",
    "title": "Run plan v1: what a harness app runs (written by `deploy bench plan`)",
    **_obj({
        "plan_version": {"const": PLAN_VERSION},
        "plan_id": {"type": "string", "pattern": PLAN_ID_PATTERN},
        "created_at": {"type": "string", "pattern": UTC_TIME_PATTERN},
        "device": _STR,
        "platform": {"enum": ["ios", "android"]},
        "protocol": RESULTS_SCHEMA["properties"]["protocol"],
        "inputs": {"type": "array", "items": _STR},
        "runs": {"type": "array", "minItems": 1, "items": _obj({
            "key": {"type": "string", "pattern": RUN_KEY_PATTERN},
            "artifact": _obj({
                "name": _STR,
                "format": {"enum": [app_format(p).name for p in ("ios", "android")]},
                "path": _STR,
                "sha256": {"type": "string", "pattern": SHA256_PATTERN},
                "precision": {"enum": [*PRECISIONS, None]},
                "size_bytes": _nullable(_NS),
            }),
            "compute_units": _STR,
            "delegate": _nullable(_STR),
            "threads": _nullable({"type": "integer", "minimum": 1}),
            "input": _TENSOR,
            "output": _obj({"name": _STR, "dim": {"type": "integer", "minimum": 1}}),
            "fixed_input": _nullable(_STR),
            "reference_sample": _nullable({"type": "array", "items": {"type": "number"}}),
            "gpu_options": _nullable(GPU_OPTIONS_SCHEMA),
        }, optional=("gpu_options",))},
        "warnings": {"type": "array", "items": {"type": "string"}},
    }, optional=("warnings",)),
}


_VALIDATORS: dict[int, Any] = {}  # id(schema) -> validator: building one per file made `collect dir` slow


def _schema_problems(obj: Any, schema: dict[str, Any]) -> list[str]:
    from toolchain.bench import quickschema

    if quickschema.supports(schema) and quickschema.is_valid(obj, schema):
        return []  # the common case, ~10x faster; jsonschema below gives the messages of a "no"
    import jsonschema

    validator = _VALIDATORS.get(id(schema))
    if validator is None:
        base = jsonschema.Draft202012Validator
        # JSON Schema counts 6500000.0 as an integer; nanosecond counts must be written as integers.
        checker = base.TYPE_CHECKER.redefine(
            "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool))
        validator = _VALIDATORS[id(schema)] = jsonschema.validators.extend(base, type_checker=checker)(schema)
    out = []
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {err.message}")
    return out


def _parse_utc(text: str) -> _dt.datetime | None:
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.utcoffset() == _dt.timedelta(0) else None


def _result_semantics(r: dict[str, Any]) -> list[str]:
    """Rules across fields; only called on objects whose shape already validated."""
    out: list[str] = []
    status, error, lat = r["status"], r["error"], r["latency_ns"]
    iters = r["protocol"]["iterations"]
    if _parse_utc(r["created_at"]) is None:
        out.append(f"created_at: {r['created_at']!r} is not a valid UTC date and time")
    if status == "ok":
        if len(lat) != iters:
            out.append(f"latency_ns: status ok needs exactly protocol.iterations={iters} samples, got {len(lat)}")
        if error is not None:
            out.append("error: must be null when status is ok")
    elif status == "partial":
        if error is None:
            out.append("error: a partial run must say why it stopped early")
        if len(lat) >= iters:
            out.append(f"latency_ns: a partial run has fewer than {iters} samples, got {len(lat)}")
    elif status == "error":
        if error is None:
            out.append("error: status error needs a message")
        if lat:
            out.append(f"latency_ns: status error must have no samples (got {len(lat)}); use partial")
    units = COMPUTE_UNITS.get(r["runtime"]["name"])
    cu = r["runtime"]["compute_units"]
    if units and cu is not None and cu not in units:
        out.append(f"runtime/compute_units: {cu!r} is not a {r['runtime']['name']} compute unit ({', '.join(units)})")
    sample, dim = r["feature_sample"], r["feature_dim"]
    if sample is not None and dim is not None and len(sample) > dim:
        out.append(f"feature_sample: {len(sample)} values but feature_dim is {dim}")
    return out + v2_semantics(r)


def _plan_semantics(p: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if _parse_utc(p["created_at"]) is None:
        out.append(f"created_at: {p['created_at']!r} is not a valid UTC date and time")
    keys = [r["key"] for r in p["runs"]]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        out.append(f"runs: duplicate keys {', '.join(dupes)}")
    for i, run in enumerate(p["runs"]):
        for field in ("path",):
            path = run["artifact"][field]
            if path.startswith("/") or ".." in Path(path).parts:
                out.append(f"runs/{i}/artifact/{field}: {path!r} must be relative to the plan folder")
        if run.get("gpu_options") is not None and run["compute_units"] != "gpu":
            out.append(f"runs/{i}/gpu_options: set for compute_units {run['compute_units']!r}; it applies to gpu only")
        runtime = app_runtime(run["artifact"]["format"])
        if run["compute_units"] not in COMPUTE_UNITS[runtime]:
            out.append(f"runs/{i}/compute_units: {run['compute_units']!r} is not one of "
                       f"{', '.join(COMPUTE_UNITS[runtime])}")
    return out


def _ns_array_problems(values: list[Any], where: str, limit: int = 5) -> list[str]:
    """The schema's ``latency_ns`` items rule (integers in 0..MAX_NS) at C speed: jsonschema spends ~20 µs per
    item, minutes on a 600 000-sample file. Same messages as jsonschema's, for the first ``limit`` bad items."""
    if set(map(type, values)) <= {int} and (not values or (min(values) >= 0 and max(values) <= MAX_NS)):
        return []
    out = []
    for i, v in enumerate(values):
        if type(v) is not int:
            out.append(f"{where}/{i}: {v!r} is not of type 'integer'")
        elif v < 0:
            out.append(f"{where}/{i}: {v} is less than the minimum of 0")
        elif v > MAX_NS:
            out.append(f"{where}/{i}: {v} is greater than the maximum of {MAX_NS}")
        if len(out) >= limit:
            out.append(f"{where}: ... (only the first {limit} bad samples shown)")
            break
    return out


def _validate(obj: Any, schema: dict[str, Any], semantics: Callable[[dict[str, Any]], list[str]],
              what: str, source: str) -> None:
    fast: list[str] = []
    if schema is RESULTS_SCHEMA and isinstance(obj, dict) and isinstance(obj.get("latency_ns"), list):
        fast = _ns_array_problems(obj["latency_ns"], "latency_ns")
        obj_for_schema = {**obj, "latency_ns": []}  # the array's items are checked above
    else:
        obj_for_schema = obj
    problems = fast + _schema_problems(obj_for_schema, schema)
    if not problems:
        problems = semantics(obj)
    if problems:
        head = f"{source or 'object'} is not a valid {what}"
        raise SchemaError(f"{head} ({len(problems)} problem{'s' * (len(problems) > 1)}):\n  " + "\n  ".join(problems))


def validate_result(obj: dict[str, Any], source: str = "") -> None:
    """Raise :class:`SchemaError` naming ``source`` and every problem if ``obj`` is not a v1 or v2 result."""
    if isinstance(obj, dict) and obj.get("schema_version") not in (None, *SCHEMA_VERSIONS):
        raise SchemaError(f"{source or 'object'}: schema_version {obj.get('schema_version')!r} is not supported "
                          f"(this toolchain reads {', '.join(map(str, SCHEMA_VERSIONS))}); upgrade the toolchain")
    version = obj.get("schema_version") if isinstance(obj, dict) else None
    _validate(obj, RESULTS_SCHEMA, _result_semantics, f"result (schema v{version or SCHEMA_VERSION})", source)


def validate_plan(obj: dict[str, Any], source: str = "") -> None:
    """Raise :class:`SchemaError` naming ``source`` and every problem if ``obj`` is not a v1 plan."""
    _validate(obj, PLAN_SCHEMA, _plan_semantics, "run plan (v1)", source)


def _load_json(path: str | Path, limit_bytes: int, what: str) -> Any:
    from toolchain import jsonio

    return jsonio.read(path, max_bytes=limit_bytes, error=SchemaError, what=what)


def load_result(path: str | Path) -> dict[str, Any]:
    """Read and validate one results file; any problem is a :class:`SchemaError` naming the file."""
    obj = _load_json(path, MAX_RESULT_BYTES, "results file")
    validate_result(obj, str(path))
    return obj


def load_plan(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``plan.json``."""
    obj = _load_json(path, MAX_PLAN_BYTES, "run plan")
    validate_plan(obj, str(path))
    return obj


def schema_document() -> dict[str, Any]:
    """The committed ``docs/results-schema.json``: the result schema, with the plan schema under ``$defs``."""
    doc = dict(RESULTS_SCHEMA)
    doc["$defs"] = {"plan": {k: v for k, v in PLAN_SCHEMA.items() if k != "$schema"}}
    return doc


def schema_text() -> str:
    return json.dumps(schema_document(), indent=2) + "\n"


DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "results-schema.json"


def _main(argv: list[str] | None = None) -> int:
    import argparse

    from toolchain.fsutil import atomic_write_text

    ap = argparse.ArgumentParser(prog="python -m toolchain.bench.schema",
                                 description="Print, write or check docs/results-schema.json.")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help=f"write {DOC_PATH}")
    g.add_argument("--check", action="store_true", help="exit 1 if the committed file is out of date")
    args = ap.parse_args(argv)
    text = schema_text()
    if args.write:
        atomic_write_text(DOC_PATH, text)
    elif args.check:
        current = DOC_PATH.read_text() if DOC_PATH.is_file() else ""
        if current != text:
            print(f"{DOC_PATH} is out of date: run python -m toolchain.bench.schema --write")
            return 1
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
