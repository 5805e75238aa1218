"""`--help` everywhere: every option described, flags shown as flags, `-h`, and `deploy --version`."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import typer

from tests.cli._cli import deploy
from toolchain.cli import app

REPO = Path(__file__).resolve().parents[2]


def _commands():
    """(command words, click command) of every command and group, the root included."""
    def walk(cmd, words):
        yield words, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*words, name])
    return list(walk(typer.main.get_command(app), []))


def test_every_option_and_argument_has_a_description():
    options = [(" ".join(["deploy", *w]), p) for w, c in _commands() for p in c.params]
    assert len(options) > 200  # the walk reached the whole CLI
    missing = [f"{cmd} {p.opts[0] if p.param_type_name == 'option' else p.name}"
               for cmd, p in options if not (p.help or "").strip()]
    assert missing == [], f"{len(missing)} options without a description: {missing}"


def test_every_command_answers_dash_h_and_shows_flags_as_flags(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    commands = _commands()
    for words, cmd in commands:
        ran = deploy(capsys, *words, "-h")
        out = re.sub(r"\x1b\[[0-9;]*m", "", ran.out)  # rich may style it
        assert ran.code == 0 and re.search(r"Usage: .*deploy", out), (words, ran.err, out[:300])
        for p in cmd.params:
            if p.param_type_name != "option" or not p.is_flag:
                continue
            line = next(ln for ln in out.splitlines() if f" {p.opts[0]} " in ln)
            assert "<bool>" not in line, line  # a flag takes no value
    assert re.sub(r"\x1b\[[0-9;]*m", "", deploy(capsys, "export", "-h").out).count("<fp32|fp16|int8>") == 1  # a choice lists its values


def test_a_choice_outside_its_values_is_refused_with_exit_2(capsys, tmp_path):
    ran = deploy(capsys, "export", tmp_path, "--target", "onnx", "--precision", "fp64", "--out", tmp_path / "x")
    assert ran.code == 2 and "fp64" in ran.err


def test_version_names_the_tool_and_the_converters_without_importing_them():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = ("import sys; from toolchain.cli import main; sys.argv = ['deploy', '--version']\n"
            "try: main()\nexcept SystemExit: pass\n"
            "print('heavy:', sorted(m for m in ('torch', 'coremltools', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("deploy (ocular-deploy) ")
    for dist in ("torch", "coremltools", "litert-torch", "onnxruntime"):
        assert f"{dist} {importlib.metadata.version(dist)}" in lines
    assert lines[-1] == "heavy: []"
