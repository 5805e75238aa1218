"""`pipeline.toml` as validated dataclasses: every problem of a file in one error, before any stage runs.

Each section is a dataclass whose defaults are read from the library's own config dataclasses
(:class:`toolchain.train.config.TrainConfig`, :class:`toolchain.data.config.SplitConfig` /
:class:`~toolchain.data.config.SynthConfig`, :class:`toolchain.bench.timing.TimingProtocol`, the device
catalog and the format plugins), so ``deploy train`` / ``data split`` / ``bench host``, the pipeline and the
benchmarks cannot drift apart. :func:`parse` checks types, names (unknown keys, methods, devices, formats,
losses) and values (negative ratios, zero epochs) of the whole file and raises one
:class:`~toolchain.errors.PipelineError` listing them all; ``--dry-run`` goes through it too.

See ``examples/pipeline.toml`` for a commented example of every section.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolchain import bounds as B, typed
from toolchain.bench.timing import TimingProtocol
from toolchain.data.config import SplitConfig, SynthConfig
from toolchain.devices import CATALOG, get_device
from toolchain.errors import PipelineError, ToolchainError
from toolchain.pipeline.cluster import ClusterSection
from toolchain.pipeline.recipes import Recipe, names_problems as _names, recipes
from toolchain.train.config import TrainConfig

_MIN0 = {"minimum": 0}
_MIN1 = {"minimum": 1}


def _in(bounds: tuple[int | float, int | float]) -> dict[str, Any]:
    """A field's range from :mod:`toolchain.bounds` (one home per kind of value)."""
    return {"minimum": bounds[0], "maximum": bounds[1]}


@dataclass
class PipelineSection:
    """Where stage outputs go (relative to the file) and the seed every stage derives its own from."""

    work_dir: str = "runs/pipeline"
    seed: int = field(default=0, metadata=_in(B.SEED))


@dataclass
class SynthSection:
    """A synthetic data set instead of a path (``deploy data synth``'s options)."""

    subjects: int = field(default=SynthConfig.subjects, metadata={"minimum": 2, "maximum": B.SUBJECTS[1]})
    images_per_subject: int = field(default=SynthConfig.images_per_subject,
                                    metadata={"minimum": 2, "maximum": B.IMAGES_PER_SUBJECT[1]})
    size: int = field(default=SynthConfig.size, metadata=_in(B.IMAGE_SIZE_PX))
    seed: int | None = None  # default: [pipeline] seed
    layout: Literal["per-subject", "ufpr", "visob"] = SynthConfig.layout  # type: ignore[assignment]


@dataclass
class DataSection:
    """The data set (``path`` or ``synth``) and its splits (``deploy data split``'s options)."""

    path: str | None = None
    layout: str | None = None
    subject_regex: str | None = None
    index_csv: str | None = None
    fractions: list[float] = field(default_factory=lambda: list(SplitConfig.fractions))
    max_impostors: int = field(default=SplitConfig.max_impostors, metadata={"minimum": 1, "maximum": B.MAX_IMPOSTORS[1]})
    protocol: str = SplitConfig.protocol
    enrol_sessions: list[str] = field(default_factory=lambda: list(SplitConfig.enrol_sessions))
    verify_sessions: list[str] = field(default_factory=lambda: list(SplitConfig.verify_sessions))
    other_eye: str = SplitConfig.other_eye
    condition: str = SplitConfig.condition
    check_images: bool = SplitConfig.check_images
    closed_set: int = field(default=SplitConfig.closed_set, metadata={"minimum": 0, "maximum": B.IMAGES_PER_SUBJECT[1]})
    synth: SynthSection | None = None


@dataclass
class TeacherSection:
    """The teacher: a card trained ``epochs`` (``deploy train``'s defaults), or a bundle taken as is (epochs 0)."""

    model: str = "resnet50_ocular"
    input_size: int | None = field(default=None, metadata=_in(B.INPUT_SIZE_PX))
    epochs: int = field(default=TrainConfig.epochs, metadata={"minimum": 0, "maximum": B.EPOCHS[1]})
    batch_size: int = field(default=TrainConfig.batch_size, metadata=_in(B.BATCH_SIZE))
    lr: float = field(default=TrainConfig.lr, metadata={"exclusive_minimum": 0, "maximum": B.LEARNING_RATE[1]})
    optimizer: str = TrainConfig.optimizer
    weight_decay: float = field(default=TrainConfig.weight_decay, metadata=_in(B.WEIGHT_DECAY))
    threads: int = field(default=TrainConfig.threads, metadata={"minimum": 0, "maximum": B.THREADS[1]})  # also the fine-tunes'; see train/repro.py
    weights: Literal["random", "imagenet"] = "random"


@dataclass
class EvaluateSection:
    """Which exported formats are evaluated too (accuracy after conversion and quantisation)."""

    artifacts: list[str] = field(default_factory=lambda: _default_evaluated())


@dataclass
class ExportSection:
    targets: list[str] = field(default_factory=lambda: _format_names())
    devices: list[str] = field(default_factory=lambda: ["all"])
    precisions: list[str | None] = field(default_factory=lambda: [None])  # None: each target's own default


@dataclass
class BenchSection:
    """Host timings (``deploy bench host``'s protocol)."""

    warmup: int = field(default=TimingProtocol.warmup, metadata={"minimum": 0, "maximum": B.ITERATIONS[1]})
    iterations: int = field(default=TimingProtocol.iterations, metadata=_in(B.ITERATIONS))
    threads: int = field(default=TimingProtocol.threads, metadata=_in(B.THREADS))
    formats: list[str] = field(default_factory=lambda: _default_timed())


@dataclass
class PlanSection:
    """Run plans for the harness apps (``deploy bench plan``), one per device."""

    devices: list[str] = field(default_factory=lambda: list(CATALOG))
    warmup: int = field(default=TimingProtocol.warmup, metadata={"minimum": 0, "maximum": B.ITERATIONS[1]})
    iterations: int = field(default=TimingProtocol.iterations, metadata=_in(B.ITERATIONS))
    compute_units: list[str] | None = None


@dataclass
class ReportSection:
    pass


@dataclass
class PipelineConfig:
    """A whole pipeline.toml, validated. ``data`` is None when the teacher is a bundle used without data."""

    pipeline: PipelineSection
    data: DataSection | None
    teacher: TeacherSection
    compress: list[Recipe]
    evaluate: EvaluateSection
    export: ExportSection
    bench: BenchSection
    plan: PlanSection
    report: ReportSection
    cluster: ClusterSection = field(default_factory=ClusterSection)  # only --executor slurm reads it


SECTIONS: dict[str, type] = {"pipeline": PipelineSection, "data": DataSection, "teacher": TeacherSection,
                             "evaluate": EvaluateSection, "export": ExportSection, "bench": BenchSection,
                             "plan": PlanSection, "report": ReportSection, "cluster": ClusterSection}


def _format_names() -> list[str]:
    from toolchain.artifact.formats import format_names

    return format_names()


def _default_evaluated() -> list[str]:
    """The Android app's format: the one whose accuracy after quantisation matters and that runs on any host."""
    from toolchain.artifact.formats import app_format

    return [app_format("android").name]


def _default_timed() -> list[str]:
    """Every format this host can time, and the bundles themselves (PyTorch eager)."""
    from toolchain import runtimes
    from toolchain.artifact.formats import BUNDLE_FORMAT

    here = [f for f in _format_names() if any(r.unavailable() is None for r in runtimes.runtimes_for(f, timing=True))]
    return [*here, BUNDLE_FORMAT]


# --- checks of names and values (types are typed.problems') ------------------------------------


def _section(name: str, given: Any, problems: list[str]) -> Any:
    cls = SECTIONS[name]
    if given is None:
        given = {}
    if not isinstance(given, dict):
        problems.append(f"[{name}] must be a table")
        return cls()
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(given) - known)
    if unknown:
        problems.append(f"[{name}] has unknown keys {unknown}; known: {sorted(known)}")
    data = {k: v for k, v in given.items() if k in known}
    found = typed.problems(cls, data)
    problems += [f"[{name}] {p}" for p in found]
    if found:
        ok = {k: v for k, v in data.items() if not any(p.startswith(f"{k}:") or p.startswith(f"{k}.") for p in found)}
        return _safe(cls, ok)
    return typed.build(cls, data)


def _safe(cls: type, data: dict[str, Any]) -> Any:
    """``cls`` from the keys that passed (so later checks can go on), defaults for the rest."""
    try:
        return typed.build(cls, data)
    except ToolchainError:
        return cls()


def _devices(values: list[str], where: str, problems: list[str], allow_all: bool) -> None:
    for v in values:
        for key in (k.strip() for k in str(v).split(",") if k.strip()):
            if allow_all and key.lower() == "all":
                continue
            try:
                get_device(key)
            except ToolchainError as e:
                problems.append(f"{where}: {e}")


def _checks(cfg: PipelineConfig, raw: dict[str, Any], base: Path, problems: list[str]) -> None:
    from toolchain.data.layouts import LAYOUTS
    from toolchain.artifact.formats import PRECISIONS
    from toolchain.artifact.formats import BUNDLE_FORMAT
    from toolchain.train.config import OPTIMIZERS

    d, t = cfg.data, cfg.teacher
    if d is not None:
        if d.layout is not None and d.layout not in LAYOUTS:
            problems.append(f"[data] unknown layout {d.layout!r}; known: {', '.join(LAYOUTS.names())}")
        if len(d.fractions) != 3 or any(not 0 <= f <= 1 for f in d.fractions) or abs(sum(d.fractions) - 1) > 1e-6:
            problems.append(f"[data] fractions {d.fractions} must be three shares in [0, 1] that sum to 1")
        from toolchain.data.config import CONDITION_RULES, OTHER_EYE_RULES, PROTOCOL_NAMES

        for key, known in (("protocol", PROTOCOL_NAMES), ("other_eye", OTHER_EYE_RULES), ("condition", CONDITION_RULES)):
            if getattr(d, key) not in known:
                problems.append(f"[data] unknown {key} {getattr(d, key)!r}; known: {', '.join(known)}")
        if d.protocol == "cross-session" and d.synth is not None and d.synth.layout == "per-subject":
            problems.append("[data] protocol = \"cross-session\" needs sessions: set synth.layout = \"ufpr\" or "
                            "\"visob\" (the per-subject synthetic set has none)")
    if t.optimizer not in OPTIMIZERS:
        problems.append(f"[teacher] unknown optimizer {t.optimizer!r}; known: {', '.join(OPTIMIZERS.names())}")
    if t.epochs == 0 and not (base / t.model).joinpath("model.json").is_file() \
            and not Path(t.model).joinpath("model.json").is_file():
        problems.append(f"[teacher] epochs = 0 means: use the bundle {t.model!r} as is; no model.json there")
    formats = _format_names()
    _names(cfg.export.targets, formats, "export target", "[export] targets", problems)
    _names(cfg.evaluate.artifacts, formats, "artifact format", "[evaluate] artifacts", problems)
    _names(cfg.bench.formats, [*formats, BUNDLE_FORMAT], "format", "[bench] formats", problems)
    _names([p for p in cfg.export.precisions if p is not None], list(PRECISIONS), "precision", "[export] precisions",
           problems)
    _devices(cfg.export.devices, "[export] devices", problems, allow_all=True)
    _devices(cfg.plan.devices, "[plan] devices", problems, allow_all=False)


def parse(raw: dict[str, Any], base: Path = Path("."), source: str = "pipeline config") -> PipelineConfig:
    """Validate a parsed pipeline.toml (paths relative to ``base``); one PipelineError lists every problem."""
    problems: list[str] = []
    unknown = set(raw) - set(SECTIONS) - {"compress"}
    if unknown:
        problems.append(f"unknown sections {sorted(unknown)}; known: {sorted([*SECTIONS, 'compress'])}")
    sections = {name: _section(name, raw.get(name), problems) for name in SECTIONS}
    compress = recipes(raw.get("compress"), problems)
    data: DataSection | None = sections["data"]
    teacher: TeacherSection = sections["teacher"]
    evaluate: EvaluateSection = sections["evaluate"]
    if data.path is not None and data.synth is not None:
        problems.append("[data] takes one of path = \"DIR\" (your data set) or synth = {...} (synthetic), not both")
    if data.path is None and data.synth is None:
        # No data: only a checkpoint can be exported, benchmarked and reported (e.g. CI exports).
        if teacher.epochs or raw.get("compress"):
            problems.append("[data] needs path = \"DIR\" or synth = {...}: training and compression need data "
                            "(without data, set [teacher] epochs = 0 and model = a bundle folder)")
        data = None
        evaluate = EvaluateSection(artifacts=[])
    elif data.synth is not None:
        if data.synth.seed is None:
            data.synth.seed = sections["pipeline"].seed
    else:
        p = Path(data.path)
        data.path = str(p if p.is_absolute() else (base / p).resolve())
    cfg = PipelineConfig(sections["pipeline"], data, teacher, compress, evaluate, sections["export"],
                         sections["bench"], sections["plan"], sections["report"], sections["cluster"])
    _checks(cfg, raw, base, problems)
    if problems:
        raise PipelineError(typed.problem_text(source, problems))
    if teacher.epochs == 0:
        m = Path(teacher.model)
        teacher.model = str(m if m.is_absolute() or m.joinpath("model.json").is_file() else (base / m).resolve())
    return cfg


def load(path: str | Path, scale: str = "full") -> PipelineConfig:
    """Read and validate a pipeline.toml; ``scale`` rewrites it first (``toolchain.pipeline.scale``: ``tiny``)."""
    from toolchain.pipeline.scale import SCALES

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"pipeline file {path} does not exist (see examples/pipeline.toml)")
    from toolchain.tomlio import read_toml

    raw = read_toml(path, PipelineError, "pipeline file")  # bounded: 5,000-deep nesting is one clean error
    raw = SCALES.get(scale)(raw)
    cfg = parse(raw, base=path.parent, source=str(path))
    wd = Path(cfg.pipeline.work_dir)
    cfg.pipeline.work_dir = str(wd if wd.is_absolute() else (path.parent / wd).resolve())
    return cfg
