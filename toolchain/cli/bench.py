"""`deploy bench`: the group that plan (apps) and host/ios/android/farm runs hang from."""

from __future__ import annotations

import typer

from toolchain.cli import app

bench_app = typer.Typer(help="Time feature extraction: host runs, app plans, device runs.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
