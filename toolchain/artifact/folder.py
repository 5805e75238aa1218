"""Opening an exported artifact folder: the one function behind ``bench plan``, ``bench host`` and ``evaluate``.

:func:`open_artifact` reads the manifest through :func:`toolchain.artifact.manifest.read` (valid, its ``file``
inside the folder), hashes the artifact's bytes and refuses a mismatch (the measured sha256 is what callers
record, never the manifest's word for it), and refuses an artifact whose export parity failed unless the caller
opts in, in which case it says so in a warning. Whatever uses an artifact therefore checks it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from toolchain.artifact import manifest as manifest_mod
from toolchain.artifact.manifest import InputSpec, Manifest, OutputSpec
from toolchain.errors import ArtifactError, ManifestError
from toolchain.fsutil import sha256_file


@dataclass(frozen=True)
class ArtifactRef:
    """What a runtime needs to open an artifact: its file, its format and how to feed it."""

    path: Path
    format: str
    name: str
    input: InputSpec
    output: OutputSpec

    @classmethod
    def of(cls, folder: Path, man: Manifest) -> "ArtifactRef":
        return cls(Path(folder) / man.file, man.format, man.name, man.input, man.output)


@dataclass
class ArtifactFolder:
    """A checked artifact folder: its manifest, the sha256 measured on its bytes, and warnings to show."""

    folder: Path
    manifest: Manifest
    sha256: str
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manifest.name or self.folder.name

    @property
    def file(self) -> Path:
        return self.folder / self.manifest.file

    @property
    def ref(self) -> ArtifactRef:
        return ArtifactRef.of(self.folder, self.manifest)


def open_artifact(path: str | Path, *, allow_parity_failed: bool = False) -> ArtifactFolder:
    """Check an artifact folder (or a file in it) before anything uses it.

    Args:
        path: the artifact folder, its manifest.json, or a file inside it.
        allow_parity_failed: use an artifact whose export parity failed (with a warning) instead of refusing it.

    Raises:
        ManifestError: no/invalid manifest, a ``file`` outside the folder, bytes that differ from the manifest.
        ArtifactError: parity failed at export and ``allow_parity_failed`` is False.
    """
    folder = manifest_mod.folder_of(path)
    man = manifest_mod.read(folder)
    art_file = folder / man.file
    got = sha256_file(art_file)
    if got != man.sha256:
        raise ManifestError(f"{art_file}: sha256 {got[:12]}... differs from its manifest ({man.sha256[:12]}...): "
                            "the file changed after export; re-export it")
    art = ArtifactFolder(folder, man, got)
    status = man.parity.status
    if status == "failed":
        why = "; ".join(man.parity.mismatches) or man.parity.reason or "no details"
        if not allow_parity_failed:
            raise ArtifactError(f"{art.name}: parity with PyTorch failed at export ({why}); its timings and accuracy "
                                "would describe a wrong model: fix the export first, or pass --allow-parity-failed "
                                "to use it anyway")
        art.warnings.append(f"{art.name}: parity with PyTorch FAILED at export ({why}); used anyway "
                            "(--allow-parity-failed): its numbers do not describe the PyTorch model")
    elif status != "passed":
        art.warnings.append(f"{art.name}: parity {status} ({man.parity.reason or 'no reason given'})")
    return art
