"""The timing protocol: how many untimed and timed runs, threads and pauses. One dataclass, whose defaults the
CLI (``deploy bench host``), ``pipeline.toml`` ``[bench]`` and the benchmarks read.

(Named *timing* protocol to keep it apart from a *verification* protocol, the genuine/impostor pairs of
``toolchain.data.splits``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from toolchain.errors import BenchError


@dataclass(frozen=True)
class TimingProtocol:
    """The timing protocol (same fields as the apps' run plans). Counts in runs, pauses in ms."""

    warmup: int = field(default=10, metadata={"minimum": 0, "doc": "untimed runs after the first inference"})
    iterations: int = field(default=100, metadata={"minimum": 1, "doc": "timed runs (latency_ns samples)"})
    threads: int = field(default=2, metadata={"minimum": 1, "doc": "runtime CPU threads"})
    cooldown_ms: int = field(default=0, metadata={"minimum": 0, "doc": "pause between timed runs"})

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.iterations < 1 or self.threads < 1 or self.cooldown_ms < 0:
            raise BenchError(f"bad protocol {self}: need warmup >= 0, iterations >= 1, threads >= 1, cooldown >= 0")
