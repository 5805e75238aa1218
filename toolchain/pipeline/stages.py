"""Turn a validated pipeline config (:class:`toolchain.pipeline.config.PipelineConfig`) into stages, each
calling the library (never the CLI).

Stage kinds, in order: data -> train -> compress -> evaluate -> export -> bench -> plan -> report.
Every stage writes only into its own (temporary until done) folder and records paths
relative to it, so outputs stay valid after the final rename. A stage's config holds the versions of the
toolchain and of every converter/runtime it uses, so an upgrade re-runs what the new versions would change.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from toolchain import __version__, typed
from toolchain.artifact import manifest
from toolchain.artifact.formats import BUNDLE_FORMAT
from toolchain.pipeline import recipes
from toolchain.pipeline.config import PipelineConfig
from toolchain.pipeline.engine import Context, PipelineError, Stage

BUNDLE = "bundle"
DATA_IMAGES = "images"


def _listing_hash(root: Path) -> str:
    """Content key of a user's data set: relative paths, sizes and modification times (fast, no reads)."""
    if not root.is_dir():
        raise PipelineError(f"[data] path {root} is not a folder")
    h = hashlib.sha256()
    from toolchain.fsutil import walk_files

    for p in sorted(walk_files(root)):  # iterative: a tree of any depth
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def data_root(done) -> Path:
    return Path(done.summary["data_root"]) if done.summary.get("data_root") else done.path / DATA_IMAGES


# --- stage functions ------------------------------------------------------------------------


def run_data(ctx: Context) -> dict[str, Any]:
    from toolchain.data.layouts import scan
    from toolchain.data.protocols import resolve_rules
    from toolchain.data.splits import write_split_files

    c = ctx.config
    if c.get("synth"):
        from toolchain.data.synth import generate

        s = c["synth"]
        ctx.progress(f"generating {s['subjects']} synthetic subjects x {s['images_per_subject']} images")
        root = generate(ctx.out / DATA_IMAGES, s["subjects"], s["images_per_subject"], s["size"], s["seed"],
                        layout=s.get("layout", "per-subject"))
        external = None
    else:
        root = Path(c["path"])
        external = str(root)
    ds = scan(root, c.get("layout"), c.get("subject_regex"), c.get("index_csv"))
    rules = resolve_rules(ds.layout, c["protocol"], c["enrol_sessions"], c["verify_sessions"], c["other_eye"],
                          c["condition"])
    ctx.progress(f"verification protocol: {rules.label()}")
    # ctx.out is this stage's own fresh folder (it already holds the synthetic images): force is safe here.
    written = write_split_files(ds, ctx.out, seed=c["seed"], fractions=c["fractions"], max_impostors=c["max_impostors"],
                                force=True, rules=rules, check_images=c["check_images"],
                                closed_set=c.get("closed_set", 0))
    import json

    excluded = json.loads(written["excluded"].read_text())["count"]
    if excluded:
        ctx.progress(f"{excluded} unreadable image(s) left out, listed in {written['excluded']}")
    return {"data_root": external, "subjects": len(ds.subjects()), "images": len(ds.samples), "layout": ds.layout,
            "protocol": rules.to_json(), "excluded_images": excluded}


def _train_cfg(c: dict[str, Any], seed: int):
    from toolchain.train.config import TrainConfig

    return TrainConfig(epochs=c["epochs"], batch_size=c["batch_size"], lr=c["lr"], optimizer=c["optimizer"],
                       weight_decay=c["weight_decay"], threads=c.get("threads", 0), seed=seed)


def _finetune_cfg(c: dict[str, Any], epochs: int, seed: int):
    """A prune fine-tune's config: the teacher's settings, the short-run warm-up policy of ``deploy prune``."""
    from toolchain.train.config import finetune_config

    return finetune_config(epochs, batch_size=c["batch_size"], lr=c["lr"], optimizer=c["optimizer"],
                           weight_decay=c["weight_decay"], threads=c.get("threads", 0), seed=seed)


def _epoch_log(ctx: Context, what: str):
    """Adapt the training loop's progress callback to one log line per finished epoch."""
    def report(stage: str, done: int, total: int, info: dict[str, Any]) -> None:
        if stage == "train" and done == total:
            ctx.progress(f"{what}: epoch {info['epoch']}/{info['epochs']} loss {info.get('loss', float('nan')):.3f} "
                         f"accuracy {info.get('accuracy', float('nan')):.1%}")
    return report


def run_import(ctx: Context) -> dict[str, Any]:
    """``epochs = 0``: take an existing bundle (a checkpoint) as the teacher, checked and copied."""
    from toolchain.fsutil import copy_tree
    from toolchain.models.bundle import load_bundle

    b = load_bundle(ctx.config["model"])
    copy_tree(b.path, ctx.out / BUNDLE)  # a full disk is one line, not shutil.Error's list of tuples
    return {"bundle": BUNDLE, "source": str(b.path), "sha256": b.sha256}


def run_train(ctx: Context) -> dict[str, Any]:
    import shutil

    from toolchain.train.checkpoint import STATE_FILE
    from toolchain.train.run import train

    (data,) = ctx.inputs.values()
    c = ctx.config
    # The run folder lives in the stage's scratch (it outlives a killed or requeued attempt), so a preempted
    # Slurm job, or a rerun after Ctrl-C, resumes from the last epoch's checkpoint instead of starting over.
    run_dir = ctx.scratch / "run" if ctx.scratch is not None else ctx.out / "run"
    resume = (run_dir / STATE_FILE).is_file()
    if resume:
        ctx.progress(f"resuming from the checkpoint in {run_dir}")
    res = train(c["model"], data_root(data), run_dir, _train_cfg(c, c["seed"]), input_size=c["input_size"],
                weights=c["weights"], splits_file=data.path / "splits.json", progress=_epoch_log(ctx, "teacher"),
                resume=resume)
    if run_dir != ctx.out / "run":
        shutil.move(run_dir, ctx.out / "run")
    (ctx.out / "run" / BUNDLE).rename(ctx.out / BUNDLE)
    return {"bundle": BUNDLE, "best_epoch": res.fit.best_epoch, "best_val_eer": res.fit.best_val_eer}


def run_compress(ctx: Context) -> dict[str, Any]:
    from toolchain.compress import run as C
    from toolchain.compress.distill import parse_losses

    c = ctx.config
    data = ctx.inputs["data"]
    parent = ctx.inputs[c.get("from", "teacher")]  # prune/distill start from the teacher or an earlier recipe
    teacher = ctx.inputs["teacher"]
    spec = C.DataSpec(root=data_root(data), splits_file=data.path / "splits.json")
    current = parent.path / BUNDLE
    steps = []
    if c.get("prune"):
        p = recipes.nested_options(c["prune"], recipes.PRUNE_TABLES, "prune")
        epochs = int(c.get("finetune_epochs", 0))
        cfg = _finetune_cfg(c["train"], epochs, c["seed"])
        out = ctx.out / "pruned"
        res = C.prune(current, out, p.pop("method"), {**p, "ratio": float(p["ratio"]), "seed": c["seed"]},
                      data=spec if epochs else None, cfg=cfg, progress=_epoch_log(ctx, "prune fine-tune"))
        current, steps = res.bundle, steps + ["prune"]
    if c.get("structured"):
        s = recipes.nested_options(c["structured"], recipes.STRUCTURED_TABLES, "structured")
        epochs = int(c.get("finetune_epochs", 0))
        cfg = _finetune_cfg(c["train"], epochs, c["seed"])
        out = ctx.out / "structured"
        res = C.prune_structured(current, out, data=spec if epochs else None, cfg=cfg,
                                 progress=_epoch_log(ctx, "structured fine-tune"), **s)
        current, steps = res.bundle, steps + ["structured"]
    if c.get("distill"):
        d = dict(c["distill"])
        student = d.pop("student", None) or str(current)
        # parse_losses' own defaults (alpha, temperature) unless the recipe sets them: one home for each
        losses, ce_weight = parse_losses(d.pop("losses", None), **{k: d.pop(k) for k in ("alpha", "temperature",
                                                                                        "ce_weight") if k in d})
        cfg = _train_cfg({**c["train"], **{k: d.pop(k) for k in ("epochs", "lr", "batch_size", "optimizer", "weight_decay") if k in d}},
                         c["seed"])
        out = ctx.out / "distilled"
        res = C.distill(teacher.path / BUNDLE, student, out, spec, cfg, losses=losses, ce_weight=ce_weight,
                        progress=_epoch_log(ctx, "distillation"), **d)
        current, steps = res.bundle, steps + ["distill"]
    current.rename(ctx.out / BUNDLE)
    return {"bundle": BUNDLE, "steps": steps}


def run_evaluate(ctx: Context) -> dict[str, Any]:
    from toolchain.evaluate.run import evaluate_model

    data = ctx.inputs["data"]
    model = ctx.inputs[ctx.config["model_stage"]]
    targets = [model.path / BUNDLE] if ctx.config["what"] == "bundle" else [
        p for p in _artifact_dirs([model]) if manifest.read(p).format in ctx.config["formats"]]
    out = {}
    for t in targets:
        name = "bundle" if t.name == BUNDLE else t.name
        ev = evaluate_model(t, data_root(data), data.path / "protocol-test.json", ctx.out / name)
        out[name] = {"eer": ev.metrics["eer"], "tar_at_far": ev.metrics["tar_at_far"],
                     **({"closed_set": ev.document["closed_set"]} if "closed_set" in ev.document else {})}
    return {"evaluations": out}


def run_export(ctx: Context) -> dict[str, Any]:
    from toolchain.export.base import ExportRequest, export_bundle

    (model,) = ctx.inputs.values()
    c = ctx.config
    rows = []
    for target in c["targets"]:
        for precision in c["precisions"]:
            for o in export_bundle(ExportRequest(model.path / BUNDLE, target, ctx.out, devices=c["devices"],
                                                 precision=precision), progress=ctx.progress):
                m = o.manifest
                rows.append({"artifact": o.folder.name, "format": m.format, "precision": m.precision,
                             "devices": m.devices, "size_bytes": m.size_bytes, "parity": m.parity.status,
                             "cosine_min": m.parity.cosine_min})
    return {"artifacts": rows}


def _artifact_dirs(exports: list) -> list[Path]:
    return [p for d in exports for p in sorted(d.path.iterdir()) if (p / manifest.MANIFEST_FILE).is_file()]


def run_bench(ctx: Context) -> dict[str, Any]:
    from toolchain.bench.host import TimingProtocol, bench_host

    c = ctx.config
    exports = [d for d in ctx.inputs.values() if d.kind == "export"]
    models = [d for d in ctx.inputs.values() if d.kind in ("train", "compress")]
    paths: list[Path] = [p for p in _artifact_dirs(exports) if manifest.read(p).format in c["formats"]]
    if BUNDLE_FORMAT in c["formats"]:
        paths += [d.path / BUNDLE for d in models]
    outcomes = bench_host(paths, TimingProtocol(c["warmup"], c["iterations"], c["threads"]), ctx.out / "results")
    return {"runs": sum(1 for o in outcomes if o.error is None and o.skipped is None),
            "errors": [f"{o.target}: {o.error}" for o in outcomes if o.error]}


def run_plan(ctx: Context) -> dict[str, Any]:
    from toolchain.bench.plan import PlanRequest, make_plan
    from toolchain.devices import get_device
    from toolchain.artifact.formats import app_format

    c = ctx.config
    written = {}
    for key in c["devices"]:
        fmt = app_format(get_device(key).platform).name
        arts = [p for p in _artifact_dirs(list(ctx.inputs.values()))
                if (m := manifest.read(p)).format == fmt and key in m.devices and m.parity.status != "failed"]
        if not arts:
            continue
        make_plan(PlanRequest(artifact_dirs=arts, device=key, out=ctx.out / key, warmup=c["warmup"],
                              iterations=c["iterations"], compute_units=c["compute_units"]))
        written[key] = len(arts)
    return {"plans": written}


def run_report(ctx: Context) -> dict[str, Any]:
    from toolchain.report.build import build_report, write_report

    ins = list(ctx.inputs.values())
    rep = build_report(results=[d.path / "results" for d in ins if d.kind == "bench"],
                       artifacts=_artifact_dirs([d for d in ins if d.kind == "export"]),
                       bundles=[d.path / BUNDLE for d in ins if d.kind in ("train", "compress")],
                       metrics=[d.path for d in ins if d.kind == "evaluate"])
    write_report(rep, ctx.out / "report")
    return {"report_md": "report/report.md", "report_html": "report/report.html"}


# --- config -> stages ------------------------------------------------------------------------


def _versions(*packages: str) -> dict[str, str]:
    """The toolchain's and these packages' versions: part of a stage's key, so an upgrade re-runs the stage."""
    from toolchain.artifact.manifest import package_version

    return {"toolchain": __version__, **{p: package_version(p) for p in packages}}


#: What evaluating or timing artifacts runs on (the runtime layer's packages).
def build_stages(cfg: PipelineConfig, missing_data_ok: bool = False) -> list[Stage]:
    """The stage graph of ``cfg``. ``missing_data_ok`` (``--dry-run``): a ``[data] path`` that does not exist
    yet keys the data stage as ``absent`` instead of failing, so the plan can be seen before the data arrives."""
    from toolchain.artifact.formats import converter_versions
    from toolchain.runtimes import runtime_packages

    seed = cfg.pipeline.seed
    d, t = cfg.data, cfg.teacher
    teacher = typed.to_data(t)
    stages = []
    if d is not None:
        data_cfg = {**typed.to_data(d), "seed": seed, "versions": _versions("numpy", "pillow")}
        if not data_cfg.get("closed_set"):
            data_cfg.pop("closed_set", None)  # keys of configs written before closed sets stay the same
        if d.path is not None:
            absent = missing_data_ok and not Path(d.path).is_dir()
            data_cfg["content"] = "absent" if absent else _listing_hash(Path(d.path))
        stages.append(Stage("data", "data", data_cfg, run_data))
    if t.epochs == 0:
        from toolchain.models.bundle import read_meta

        # Keyed by the checkpoint's weights hash: a new checkpoint re-runs everything downstream.
        stages.append(Stage("teacher", "train", {"model": t.model, "sha256": read_meta(t.model)["weights"]["sha256"]},
                            run_import))
    else:
        stages.append(Stage("teacher", "train", {**teacher, "seed": seed, "versions": _versions("torch", "torchvision")},
                            run_train, deps=["data"]))
    models = ["teacher"]
    for r in cfg.compress:
        src = r.source
        deps = ["data", "teacher"] + ([src] if src != "teacher" else [])
        stages.append(Stage(r.name, "compress", {**r.stage_config(), "seed": seed, "train": dict(teacher),
                                                 "versions": _versions("torch", "torchvision", "torch-pruning")},
                            run_compress, deps=deps))
        models.append(r.name)
    export_cfg = {**typed.to_data(cfg.export),
                  "versions": {**_versions("torch"), **converter_versions(cfg.export.targets)}}
    evaluate_versions = _versions(*runtime_packages())
    exports = []
    for m in models:
        if d is not None:
            stages.append(Stage(f"eval-{m}", "evaluate", {"model_stage": m, "what": "bundle",
                                                          "versions": _versions("torch")}, run_evaluate,
                                deps=["data", m]))
        stages.append(Stage(f"export-{m}", "export", dict(export_cfg), run_export, deps=[m]))
        exports.append(f"export-{m}")
        if cfg.evaluate.artifacts:
            stages.append(Stage(f"eval-{m}-artifacts", "evaluate",
                                {"model_stage": f"export-{m}", "what": "artifacts",
                                 "formats": list(cfg.evaluate.artifacts), "versions": evaluate_versions},
                                run_evaluate, deps=["data", f"export-{m}"]))
    stages.append(Stage("bench-host", "bench", {**typed.to_data(cfg.bench), "versions": evaluate_versions}, run_bench,
                        deps=[*exports, *models]))
    stages.append(Stage("plans", "plan", {**typed.to_data(cfg.plan), "versions": _versions()}, run_plan,
                        deps=exports))
    evals = [s.name for s in stages if s.kind == "evaluate"]
    stages.append(Stage("report", "report", {"versions": _versions()}, run_report,
                        deps=["bench-host", *exports, *models, *evals]))
    return stages
