"""`deploy`: the one command. Thin: parse arguments, call the library, print with rich.

Heavy imports (torch, coremltools, converters) happen inside the commands that need them,
so ``deploy --help`` answers at once. A :class:`~toolchain.errors.ToolchainError` is printed
as one red line (exit 2), never as a traceback; so is an ``OSError`` (unwritable folder, full disk) or
running out of memory, which are the machine's answer, not bugs.
"""

from __future__ import annotations

import importlib
import sys

from typing import Annotated

import typer

from toolchain.cli._help import CONTEXT_SETTINGS, version_callback

app = typer.Typer(
    name="deploy",
    help=(
        "Make an ocular recognition CNN small and fast enough for phones, and prove it.\n\n"
        "Typical path: deploy data synth -> deploy train -> deploy prune / distill -> deploy evaluate -> "
        "deploy export -> deploy bench host / plan -> (apps on devices) -> deploy collect -> deploy report."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings=CONTEXT_SETTINGS,
)


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=version_callback,
        help="Print the tool's version and those of torch, coremltools, litert-torch and onnxruntime, then exit.")]
        = False) -> None:
    """Make an ocular recognition CNN small and fast enough for phones, and prove it."""

# Each module adds its commands to `app` on import; all of them import only typer/rich at top level.
COMMAND_MODULES = [
    "model", "data", "train", "evaluate", "compress", "export",
    "bench", "bench_plan", "bench_run", "bench_device", "collect", "report", "pipeline",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"toolchain.cli.{_name}")


def main() -> None:
    from toolchain.errors import ToolchainError

    from toolchain.cli._common import expand_multi_value
    from toolchain.cli._waitpolicy import sleep_when_busy

    if "torch" not in sys.modules:  # libgomp reads it once, when torch loads it (_waitpolicy says why)
        sleep_when_busy()

    sys.argv[1:] = expand_multi_value(sys.argv[1:])  # `--bundles runs/*/bundle`: several values after one option
    try:
        app()
    except ToolchainError as e:
        from toolchain.cli._common import err_console, styled

        err_console.print(styled(("error:", "bold red"), f" {e}"), soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as e:  # the machine said no (permissions, disk full, a path through a file): not a bug
        from toolchain.cli._common import err_console, styled

        from toolchain.fsutil import os_error_line

        err_console.print(styled(("error:", "bold red"), f" {os_error_line(e)}"), soft_wrap=True)
        sys.exit(2)
    except MemoryError:
        from toolchain.cli._common import err_console, styled

        err_console.print(styled(("error:", "bold red"), " out of memory: lower the sizes asked for (--input-size, "
                                 "--batch-size, --size, --subjects) or free memory"), soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
