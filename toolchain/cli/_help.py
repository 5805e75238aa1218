"""How `--help` looks everywhere: flags shown as flags, `-h`, and `deploy --version`.

Typer (0.29) prints a value type beside every option, `<bool>` included, so `--force <bool>` reads as if it took a
value. Flags take none: their type column is left empty. Choices come from ``Literal[...]`` annotations (typer shows
them as ``<a|b|c>`` and refuses anything else with exit 2).
"""

from __future__ import annotations

from importlib import metadata

import typer
from typer.core import TyperOption

#: Given to every Typer app of the CLI (sub-apps inherit it from the parent context).
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

#: What `deploy --version` names beside the tool: the converters and runtimes whose versions change numbers.
VERSION_PACKAGES = ("torch", "coremltools", "litert-torch", "onnxruntime")

_typer_display_type = TyperOption.display_type_rich


def _display_type_rich(self: TyperOption, ctx) -> str | None:
    if self.is_flag:  # --force, --plots/--no-plots: no value follows the flag
        return None
    return _typer_display_type(self, ctx)


TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]


def version_text() -> str:
    """The tool's version and those of the packages in :data:`VERSION_PACKAGES` (metadata only: nothing heavy is
    imported, so this answers at once)."""
    from toolchain import __version__

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    parts = [f"{p} {version(p)}" for p in VERSION_PACKAGES]
    return f"deploy (ocular-deploy) {__version__}\n" + "\n".join(parts)


def version_callback(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit()
