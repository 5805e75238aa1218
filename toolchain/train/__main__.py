"""`python -m toolchain.train ...` = `deploy train ...`; the entry point for `torchrun --nproc-per-node N -m toolchain.train`."""

import sys

import typer

from toolchain.errors import ToolchainError


def main() -> None:
    from toolchain.cli.train import train_command

    cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    cli.command()(train_command)
    try:
        cli()
    except ToolchainError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
