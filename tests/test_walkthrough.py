"""The README's walkthrough runs as written: every command of its `run` blocks, in order, in an empty folder.

Sizes come from the environment variables the README names (tiny here); the shell expands them and the globs
(`exports/*`, `runs/*/bundle`) exactly as a user's shell would, then each command runs through the real entry
point in this process (torch imported once). The `device` block needs a phone: its commands are parsed by the
CLI (every option and value must be accepted), not run.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import typer

from tests.cli._cli import deploy

REPO = Path(__file__).resolve().parents[1]
TINY = {"SIZE": "64", "SUBJECTS": "12", "IMAGES": "8", "EPOCHS": "1", "ITERATIONS": "5",
        "TEACHER": "tiny_ocular", "STUDENT": "tiny_ocular"}


def walkthrough_blocks(readme: str) -> list[tuple[str, list[str]]]:
    """(kind, commands) of each ```sh block after a `<!-- walkthrough: KIND -->` marker; continuation lines joined."""
    blocks = []
    for kind, body in re.findall(r"<!-- walkthrough: (run|device) -->\s*```sh\n(.*?)```", readme, re.S):
        text = body.replace("\\\n", " ")
        cmds = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        blocks.append((kind, cmds))
    return blocks


def shell_words(command: str, cwd: Path, env: dict[str, str]) -> list[str]:
    """The argv bash makes of ``command`` (variables, quotes, globs, ~, comments) without running it."""
    assert command.startswith("deploy "), command
    out = subprocess.run(["bash", "-c", "printf '%s\\0' " + command[len("deploy "):]], cwd=cwd, env=env,
                         capture_output=True, check=True).stdout.decode()
    return out.split("\0")[:-1]


def test_the_readme_names_the_tiny_sizes_and_the_blocks_cover_every_step():
    readme = (REPO / "README.md").read_text()
    blocks = walkthrough_blocks(readme)
    kinds = [k for k, _ in blocks]
    assert kinds == ["run", "device", "run"], kinds
    every = " ".join(c for _, cmds in blocks for c in cmds)
    for var in TINY:
        assert f"${{{var}:-" in every and f"{var}={TINY[var]}" in readme, var
    for step in ("data synth", "train", "prune", "distill", "export", "bench host", "bench plan", "bench ios",
                 "bench android", "collect", "report"):
        assert f"deploy {step}" in every, step
    assert "<artifact>" not in every and "UDID " not in every  # no placeholder a user cannot fill


@pytest.mark.slow
def test_the_walkthrough_runs_as_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, **TINY, "HOME": str(tmp_path / "home")}
    root = typer.main.get_command(__import__("toolchain.cli", fromlist=["app"]).app)
    ran = 0
    for kind, commands in walkthrough_blocks((REPO / "README.md").read_text()):
        for command in commands:
            args = shell_words(command, tmp_path, env)
            if kind == "device":  # parsed, not run: the command and every option must be accepted
                cmd, words = root, list(args)
                while hasattr(cmd, "commands") and words and words[0] in cmd.commands:
                    cmd = cmd.commands[words.pop(0)]
                cmd.make_context(" ".join(args[:2]), words)
                continue
            result = deploy(capsys, *args)
            assert result.code == 0, f"`{command}` exited {result.code}:\n{result.out[-2000:]}\n{result.err[-3000:]}"
            ran += 1
    assert ran >= 17
    assert (tmp_path / "report" / "report.md").is_file()
    report = (tmp_path / "report" / "report.md").read_text()
    assert "onnxruntime" in report or "litert" in report  # host timings reached the report
