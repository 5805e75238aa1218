"""The export driver: convert -> read back -> parity on every runtime of the format -> manifest.

``export_bundle`` is what ``deploy export`` (and the pipeline, and ``deploy measure``) calls. The format's
plugin (``toolchain.artifact.formats`` names it) converts and describes; the runtime layer
(``toolchain.runtimes``) runs the written file for parity, settled by :mod:`toolchain.export.parity`;
:mod:`toolchain.policy` says how close it must be; the manifest (``toolchain.artifact.manifest``) records it all.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolchain import __version__
from toolchain.artifact import inputs
from toolchain.artifact import manifest as manifest_mod
from toolchain.artifact.compare import skipped
from toolchain.artifact.folder import ArtifactRef
from toolchain.artifact.formats import ArtifactFormat, ExportChoice, artifact_name, choose, formats, get_format
from toolchain.artifact.manifest import (Manifest, Normalization, ParityResult, ReferenceFeatures, SourceBundle,
                                         package_version)
from toolchain.devices import Device, parse_devices
from toolchain.errors import DeviceError, ExportError, ParityError, ToolchainError
from toolchain.export.calibration import calibration_and_parity
from toolchain.export.parity import parity_runs, settle
from toolchain.export.reduced import reduced_model
from toolchain.export.verdict import judge
from toolchain.export.types import Description, ExportJob
from toolchain.fsutil import atomic_dir, check_output_dir, ensure_writable_dir, sha256_file, size_bytes
from toolchain.models.bundle import load_bundle
from toolchain.policy import FEATURE_SAMPLE_LEN, min_cosine
from toolchain.progress import MessageFn

log = logging.getLogger(__name__)

#: The fixed input whose features the manifest keeps, so on-device numerics can be checked.
FIXED_INPUT_FILE = "fixed_input.png"
INT8_MODES = ("static", "dynamic")


@dataclass
class ExportOutcome:
    folder: Path
    manifest: Manifest
    reasons: tuple[str, ...] = ()

    @property
    def parity(self) -> ParityResult:
        return self.manifest.parity


@dataclass
class ExportRequest:
    bundle_dir: Path
    target: str
    out: Path
    devices: list[str] = field(default_factory=list)
    precision: str | None = None
    min_ios: int | None = None
    layout: str | None = None
    calibration_dir: Path | None = None
    verify: bool = True
    min_cosine: float | None = None
    compress: str | None = None
    int8_mode: str = "static"
    force: bool = False  # replace an artifact folder even when it is not one this tool wrote
    data_dir: Path | None = None  # the user's images: parity runs on held-out ones (never calibration images)
    allow_unverified: bool = False  # keep an artifact whose parity cannot run here (status "unverified")


def plan_choices(req: ExportRequest) -> list[tuple[ExportChoice, list[Device]]]:
    """Group the requested devices by what their export must be; one artifact per group."""
    devices = parse_devices(req.devices)
    if not devices:
        return [(choose(req.target, None, req.precision, req.min_ios, req.layout, req.compress), [])]
    fmt = get_format(req.target)
    groups: dict[tuple, tuple[ExportChoice, list[Device]]] = {}
    for d in devices:
        if not fmt.serves(d, many=len(devices) > 1):
            continue  # e.g. `--device all` with coreml means the Apple devices
        c = choose(req.target, d, req.precision, req.min_ios, req.layout, req.compress)
        groups.setdefault(c.key, (c, []))[1].append(d)
    if not groups:
        raise DeviceError(f"none of the devices {[d.key for d in devices]} runs {req.target}")
    return list(groups.values())


def export_bundle(req: ExportRequest, progress: MessageFn | None = None) -> list[ExportOutcome]:
    """Export one bundle for one target and a set of devices.

    Raises ParityError (carrying every outcome of this run) after writing when parity failed.
    """
    from toolchain import runtimes
    from toolchain.artifact.formats import BUNDLE_FORMAT

    say = progress or (lambda msg: log.info(msg))
    if req.min_cosine is not None:  # before any conversion: -1 passes against anything, 2 or NaN passes nothing
        from toolchain.bounds import MIN_COSINE, check_float

        check_float(req.min_cosine, "--min-cosine", *MIN_COSINE, low_open=True, error=ExportError)
    if req.int8_mode not in INT8_MODES:
        raise ExportError(f"unknown int8 mode {req.int8_mode!r}; known: {', '.join(INT8_MODES)}")
    fmt = get_format(req.target)  # unknown target -> the valid names, before any work
    if req.compress is not None and not fmt.weight_compression:
        takers = [n for n in formats() if formats().get(n).weight_compression]
        raise ExportError(f"--compress applies to {', '.join(formats().get(n).display for n in takers)} exports only "
                          f"({fmt.display} size comes from --precision)")
    groups = plan_choices(req)
    bundle = load_bundle(req.bundle_dir)
    for choice, _ in groups:  # before any conversion: refuse to replace a folder of the user's
        check_output_dir(Path(req.out) / artifact_name(bundle.name, choice, req.compress, req.int8_mode), "artifact",
                         req.force, what="artifact folder")
    calib, user_check, inputs_note = calibration_and_parity(bundle.input_chw, req.calibration_dir, req.data_dir,
                                                            **bundle.pixel_options)
    ensure_writable_dir(req.out)  # only once the inputs are known good: a refusal leaves no empty --out behind
    check = inputs.parity_inputs(bundle.input_chw) if user_check is None else user_check
    if inputs_note:
        say(inputs_note)
    fixed = inputs.fixed_input(bundle.input_chw)
    _, pytorch = runtimes.open_session(bundle, BUNDLE_FORMAT)
    reference = pytorch.features(check)
    fixed_reference = pytorch.features(fixed)[0].reshape(-1)[:FEATURE_SAMPLE_LEN]  # a map (--output) in value order
    outcomes: list[ExportOutcome] = []
    failures: list[str] = []
    unverified: list[str] = []
    for choice, devices in groups:
        name = artifact_name(bundle.name, choice, req.compress, req.int8_mode)
        job = ExportJob(bundle, choice, devices, name, calib, req.compress, req.int8_mode)
        say(f"{name}: converting ({'; '.join(choice.reasons)})")
        final = Path(req.out) / name
        with atomic_dir(final, "artifact", req.force, what="artifact folder") as work:
            t0 = time.perf_counter()
            try:
                artifact = fmt.convert(job, work, say)
            except ToolchainError:
                raise
            except Exception as e:  # converter internals: keep the message, name the stage
                raise ExportError(f"{req.target} conversion of {bundle.name} failed: {type(e).__name__}: {e}") from e
            convert_s = time.perf_counter() - t0
            desc = fmt.describe(job, artifact)
            desc.input.layout = choice.layout  # type: ignore[assignment]
            manifest_mod.save_fixed_input(work / FIXED_INPUT_FILE, fixed[0])
            if req.verify:
                say(f"{name}: checking parity against PyTorch")
                threshold = req.min_cosine or min_cosine(choice.precision, req.compress)
                got: dict[str, np.ndarray] = {}
                runs = parity_runs(ArtifactRef(artifact, fmt.name, name, desc.input, desc.output),
                                   check, reference, threshold, got)
                result = settle(runs)
                if result.status in ("passed", "failed") and runs and runs[0][0] in got:
                    result = judge(result, reference, got[runs[0][0]], reduced_model(job), check, choice.precision)
                result.inputs = "seeded" if user_check is None else "user"
                if result.status == "skipped":  # parity could not run here: never silently a pass
                    result = ParityResult(**{**result.to_json(), "status": "unverified",
                                             "reason": f"parity could not run: {result.reason}"})
                    if not req.allow_unverified:
                        unverified.append(f"{name}: {result.reason}")
            else:
                runs, result = [], skipped("--no-verify was given")
            man = build_manifest(job, fmt, artifact, desc, result, runs, convert_s,
                                 reference_sample=fixed_reference, fixed_input=FIXED_INPUT_FILE)
            manifest_mod.write(work, man)
        outcomes.append(ExportOutcome(final, man, choice.reasons))
        if result.status == "failed":
            failures.append(f"{name} ({result.reference}): " + "; ".join(result.mismatches))
    if failures or unverified:
        parts = (["parity failed:\n  " + "\n  ".join(failures)] if failures else []) + (
            ["parity could not run (pass --allow-unverified to keep such an artifact, recorded as unverified):\n  "
             + "\n  ".join(unverified)] if unverified else [])
        raise ParityError("\n".join(parts), outcomes)
    return outcomes


def build_manifest(job: ExportJob, fmt: ArtifactFormat, artifact: Path, desc: Description,
                   result: ParityResult, runs: list[tuple[str, ParityResult]], convert_s: float,
                   reference_sample: np.ndarray, fixed_input: str) -> Manifest:
    """The manifest of a freshly written artifact.

    Args:
        result: the artifact's parity (the primary runtime's, failed when any runtime failed).
        runs: (runtime name, result) of every runtime that checked it, or could not here.
        reference_sample: the first PyTorch features of the fixed input ``fixed_input`` (a file in the folder).
    """
    b, c = job.bundle, job.choice
    inp, out = desc.input, desc.output
    inp.layout = c.layout  # type: ignore[assignment]
    inp.color = b.color  # the channel order (gray: one channel) the apps must feed
    inp.normalization = Normalization(list(b.mean), list(b.std))
    if b.scale != 255.0:
        inp.normalization.formula = manifest_mod.FORMULA.replace("255", f"{b.scale:g}")
    out.dim = b.feature_dim
    man = Manifest(
        format=c.target, file=artifact.name, sha256=sha256_file(artifact), input=inp, output=out,
        name=job.artifact_name, precision=c.precision, size_bytes=size_bytes(artifact),
        devices=[d.key for d in job.devices], min_os=desc.min_os or fmt.min_os(c), compress=job.compress,
        choice_reasons=list(c.reasons),
        source_bundle=SourceBundle(b.name, b.sha256, str(b.path)), source_bundle_sha256=b.sha256,
        parity=result, parity_by_runtime=dict(runs),
        reference_features=ReferenceFeatures(fixed_input, [float(v) for v in reference_sample]),
        converter_versions={"toolchain": __version__, "torch": package_version("torch"), **fmt.versions()},
        convert_seconds=round(convert_s, 3),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if desc.details is not None:
        setattr(man, c.target, desc.details)
    return man
