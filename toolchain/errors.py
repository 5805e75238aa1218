"""Typed errors. Every user-facing error says what went wrong and what to do.

The CLI prints a :class:`ToolchainError` as one message and exits with status 2,
without a traceback; anything else is a bug and keeps its traceback.
"""


class ToolchainError(Exception):
    """Base class of the errors a user can cause and fix."""


class RegistryError(ToolchainError, KeyError):
    """Unknown or duplicate name in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BundleError(ToolchainError):
    """A model bundle is missing, truncated, or does not match its model.json."""


class CardError(ToolchainError):
    """A model card or architecture name cannot be resolved."""


class WeightsError(ToolchainError):
    """Pretrained weights were asked for but are not available offline."""


class DeviceError(ToolchainError):
    """A device, target or OS combination that cannot be exported for."""


class ExportError(ToolchainError):
    """A conversion failed or the output folder is unusable."""


class UnsupportedLayerError(ExportError):
    """The architecture contains a layer the target format cannot express."""


class ParityError(ExportError):
    """An exported artifact's outputs do not match PyTorch's.

    ``outcomes`` holds what this run exported (every artifact, the failed ones included), so a caller can show
    exactly this run's artifacts without rescanning the output folder.
    """

    def __init__(self, message: str, outcomes: list | None = None) -> None:
        super().__init__(message)
        self.outcomes = list(outcomes or [])


class ArtifactError(ToolchainError):
    """An exported artifact cannot be used as asked (parity failed, wrong format for the device, bad input)."""


class ManifestError(ArtifactError):
    """An artifact folder's manifest is missing, malformed, or disagrees with the files beside it."""


class SchemaError(ToolchainError):
    """A results file or run plan does not follow results schema v1."""


class DataLayoutError(ToolchainError):
    """A data set folder does not follow the layout expected."""


class PlanError(ToolchainError):
    """A run plan cannot be written as asked (bad protocol, input source, output folder)."""


class BenchError(ToolchainError):
    """A host timing run cannot be done as asked (bad timing protocol, input that does not fit)."""


class EvaluationError(ToolchainError):
    """An evaluation cannot run as asked (bad batch size, a protocol without pairs, missing images)."""


class ConfigError(ToolchainError):
    """A configuration (stage config, pipeline.toml section) has wrong types, names or values."""


class PipelineError(ConfigError):
    """A pipeline file or stage selection that cannot run."""


class StageFailedError(PipelineError):
    """Pipeline stages failed; the stages that did not depend on them still ran (``reports`` lists every stage)."""


class UsageError(ToolchainError):
    """Command-line arguments that do not go together."""


class RuntimeUnavailable(ToolchainError):
    """A runtime needed to run an artifact is not available on this machine."""


class MetricsError(ToolchainError):
    """Verification scores that no metric can be computed from (empty class, NaN, all equal)."""


class StoreError(ToolchainError):
    """The results store cannot be used, or a run asked for is not in it."""


class CollectError(ToolchainError):
    """Results cannot be fetched from a device or service (tool missing, no device, service error)."""


class DataError(ToolchainError):
    """A data set cannot be used as asked: too many unreadable images, too few subjects, a bad split or protocol file."""


class ImageError(DataError):
    """One image file cannot be read or decoded (corrupt, truncated, not an image)."""


class ImageBombError(ImageError):
    """An image whose header declares more pixels than the limit (a decompression bomb): refused, never skipped."""


class CheckpointError(ToolchainError):
    """A training checkpoint cannot be resumed from (missing, torn between its two files, or another run's)."""


class CompressionError(ToolchainError):
    """A pruning or distillation request that cannot be met (ratio out of reach, nothing to prune, bad student)."""


class ImportModelError(BundleError):
    """A checkpoint or model file cannot be imported as a bundle (needs a full pickle, keys do not match...)."""


class OutputFolderError(ToolchainError):
    """An output path that may not be written: a file, or a folder this tool did not write (``--force`` replaces it)."""


class JsonInputError(ToolchainError):
    """A JSON input that cannot be used: too large, too deep, not UTF-8, not JSON, or numbers out of range."""
