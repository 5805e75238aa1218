"""`deploy collect dir` and `deploy results list|show|rm` through the CLI."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from tests.bench._results import FIXTURES, fixture
from toolchain.cli import app


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_collect_dir_keeps_good_files_names_bad_ones_and_exits_1(tmp_path):
    src = tmp_path / "airdrop"
    (src / "sub").mkdir(parents=True)
    shutil.copy(FIXTURES / "ok.json", src / "ok.json")
    shutil.copy(FIXTURES / "partial.json", src / "sub" / "partial.json")
    (src / "broken.json").write_text("{\"schema_version\": 1,")
    res = _run("collect", "dir", src, "--out", tmp_path / "store")
    assert res.exit_code == 1
    assert "broken.json" in res.output and "1 rejected, 2 stored" in res.output
    again = _run("collect", "dir", src / "ok.json", "--out", tmp_path / "store")
    assert again.exit_code == 0 and "1 duplicate" in again.output


def test_results_list_show_rm(tmp_path):
    store = tmp_path / "store"
    assert _run("collect", "dir", FIXTURES, "--out", store).exit_code == 0
    listing = _run("results", "list", "--store", store)
    n = len(list(FIXTURES.glob("*.json")))  # v1 and v2 fixtures
    assert listing.exit_code == 0 and f"{n} runs in" in listing.output
    rid = fixture("ok")["run_id"]
    shown = _run("results", "show", rid, "--store", store)
    assert shown.exit_code == 0 and json.loads(shown.output)["run_id"] == rid
    assert _run("results", "rm", rid, "--store", store).exit_code == 0
    assert f"{n - 1} runs in" in _run("results", "list", "--store", store).output
    missing = _run("results", "show", rid, "--store", store)
    assert missing.exit_code != 0 and "no run" in str(missing.exception)
