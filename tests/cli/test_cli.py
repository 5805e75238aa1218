"""The CLI: fast help, clear one-line errors (exit 2, no traceback) for user mistakes."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

DEPLOY = [sys.executable, "-m", "toolchain.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*DEPLOY, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("args", [["--help"], ["export", "--help"]])
def test_help_is_fast_and_imports_nothing_heavy(args):
    code = ("import sys, time; t = time.perf_counter(); sys.argv = ['deploy', *%r]\n"
            "from toolchain.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'coremltools', 'onnx', 'litert_torch', 'tensorflow') if m in sys.modules]\n"
            "print('HEAVY', heavy, 'SECONDS', time.perf_counter() - t)" % (args,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    # What keeps --help fast is that nothing heavy is imported (torch alone takes seconds); a wall-clock bound
    # here failed on a loaded 2-core machine (1.2 s) and belongs in a benchmark, not a test.
    assert "HEAVY []" in out, out[-500:]


def test_bad_input_is_one_line_not_a_traceback(tmp_path):
    r = run("export", str(tmp_path / "missing"), "--target", "onnx", "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "error:" in r.stderr and "Traceback" not in r.stderr and "deploy model init" in r.stderr
    r = run("export", str(tmp_path), "--target", "caffe", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "onnx" in r.stderr and "Traceback" not in r.stderr
    r = run("model", "init", "resnet51", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "resnet50_ocular" in r.stderr


def test_model_init_info_export_from_the_command_line(tmp_path):
    r = run("model", "init", "tiny_ocular", "--out", str(tmp_path / "b"), "--seed", "4")
    assert r.returncode == 0, r.stderr
    r = run("model", "info", str(tmp_path / "b"))
    assert r.returncode == 0 and "tiny_resnet" in r.stdout and "sha256" in r.stdout
    r = run("export", str(tmp_path / "b"), "--target", "onnx", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "passed" in r.stdout and (tmp_path / "o" / "tiny_ocular_onnx_fp32" / "manifest.json").is_file()
