"""What a report is made of: runs, cells, model variants and the report itself (no logic that builds them).

``report/build.py`` fills these; ``report/render.py`` and ``report/plots.py`` read them. Keeping the types
here lets both sides import them without importing each other (the import graph stays acyclic).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolchain.report.catalog import Catalog, Metrics
from toolchain.report.checks import Flag
from toolchain.report.stats import Summary


@dataclass
class RunView:
    result: dict[str, Any]
    device: str
    row: str
    variant: str
    summary: Summary | None
    flags: list[Flag]
    #: False for a run of an artifact whose export parity did not pass: never timed in the report's tables
    trusted: bool = True

    @property
    def run_id(self) -> str:
        return self.result["run_id"]


@dataclass
class Cell:
    row: str
    variant: str
    runs: list[RunView]
    summary: Summary | None


@dataclass
class Variant:
    label: str
    bundle_sha256: str | None
    bundle_name: str | None
    precision: str | None
    parameters: int | None = None
    nonzero_parameters: int | None = None
    bundle_size_bytes: int | None = None
    compression: float | None = None  # compression_deployed: the trunk's parameters (see report/build.py)
    shrinkbench_parameters: int | None = None  # the whole model, classification head included
    shrinkbench_nonzero_parameters: int | None = None
    compression_shrinkbench: float | None = None
    metrics: Metrics | None = None
    artifact_sizes: dict[str, int] = field(default_factory=dict)  # format -> size_bytes
    #: how it was made, from model.json's provenance.recipe (report/paper.py): "baseline", a pruning method, "KD"...
    method: str = "unknown"
    #: the pruning target ratio asked for (unstructured recipes), None otherwise
    ratio: float | None = None
    ratio_of: str | None = None
    #: dense and effective (non-zero weights only, ShrinkBench's) FLOPs of one image, None when the weights are absent
    flops: int | None = None
    effective_flops: int | None = None

    @property
    def top1(self) -> float | None:
        return self.metrics.top1 if self.metrics else None

    @property
    def size_bytes(self) -> int | None:
        """The deployed size: the fp32 bundle's weights, else the smallest artifact of this precision."""
        if self.precision in (None, "fp32") and self.bundle_size_bytes:
            return self.bundle_size_bytes
        return min(self.artifact_sizes.values(), default=None) or self.bundle_size_bytes

    @property
    def compression_deployed(self) -> float | None:
        return self.compression

    @property
    def eer(self) -> float | None:
        return self.metrics.eer if self.metrics else None


@dataclass
class Report:
    runs: list[RunView]
    rows: list[str]
    variants: list[Variant]
    cells: dict[tuple[str, str], Cell]
    catalog: Catalog
    problems: list[str]
    created_at: str
    min_iterations: int
    #: runs of artifacts whose export parity did not pass (any status but "passed"): never in the timing tables
    untrusted: list[RunView] = field(default_factory=list)

    @property
    def far_keys(self) -> list[str]:
        keys = {k for v in self.variants if v.metrics for k in v.metrics.tar_at_far}
        return sorted(keys, key=lambda k: float(k), reverse=True)

    def variant(self, label: str) -> Variant:
        return next(v for v in self.variants if v.label == label)
