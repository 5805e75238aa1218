"""Atomic writes: all or nothing, and published with ordinary permissions (not mkstemp's 0600)."""

import os
import stat

import pytest

from toolchain.fsutil import atomic_dir, atomic_write_json, atomic_write_text


@pytest.fixture
def fs_with_umask_022():
    """toolchain.fsutil re-imported under umask 022 (it reads the umask once, at import); restored afterwards."""
    import importlib

    import toolchain.fsutil as fs

    old = os.umask(0o022)
    try:
        yield importlib.reload(fs)
    finally:
        os.umask(old)
        importlib.reload(fs)


def test_files_and_folders_get_umask_modes(tmp_path, fs_with_umask_022):
    fs = fs_with_umask_022
    fs.atomic_write_text(tmp_path / "a.txt", "x")
    with fs.atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("y")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_failed_writes_leave_nothing(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "m.json", {"a": object()})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1\n}\n'
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d") as d:
            (d / "half").write_text("z")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    atomic_write_text(tmp_path / "t.txt", "ok")
    assert (tmp_path / "t.txt").read_text() == "ok"


# --- the output-folder rule (issue: a careless --out must never delete a user's folder) ---

from toolchain.errors import OutputFolderError  # noqa: E402
from toolchain.fsutil import OUTPUT_MARKER, check_output_dir, claim_output_dir, clean_stale_temps  # noqa: E402


def test_output_rule_allows_new_empty_placeholder_marked_and_legacy_folders(tmp_path):
    assert check_output_dir(tmp_path / "new", "bundle") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "bundle")
    (tmp_path / "gitkept").mkdir()
    (tmp_path / "gitkept" / ".gitignore").write_text("*\n")
    check_output_dir(tmp_path / "gitkept", "plan")
    with atomic_dir(tmp_path / "mine", "bundle") as d:
        (d / "model.json").write_text("{}")
    check_output_dir(tmp_path / "mine", "bundle")  # our marker, same kind
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "model.json").write_text("{}")  # a bundle written before markers existed
    check_output_dir(legacy, "bundle")


def test_output_rule_refuses_users_files_other_kinds_and_files_unless_forced(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "a.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"not a synth written by deploy \(1 entry: a.txt\)"):
        check_output_dir(user, "synth")
    check_output_dir(user, "synth", force=True)
    with atomic_dir(tmp_path / "b", "bundle") as d:
        (d / "x").write_text("")
    with pytest.raises(OutputFolderError, match="holds a bundle written by deploy, not a report"):
        check_output_dir(tmp_path / "b", "report")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputFolderError, match="exists and is not a folder"):
        check_output_dir(tmp_path / "f", "bundle", force=True)  # --force replaces folders, never a file
    legacy_other = tmp_path / "lo"
    legacy_other.mkdir()
    (legacy_other / "model.json").write_text("{}")
    with pytest.raises(OutputFolderError):
        check_output_dir(legacy_other, "synth")  # a legacy signature counts only for its own kind


def test_atomic_dir_checks_before_the_work_and_keeps_the_users_folder(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "a.txt").write_text("mine")
    ran = []
    with pytest.raises(OutputFolderError):
        with atomic_dir(user, "synth"):
            ran.append(1)
    assert not ran and (user / "a.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user"]  # no temp left
    with atomic_dir(user, "synth", force=True) as d:
        (d / "new").write_text("n")
    assert sorted(p.name for p in user.iterdir()) == [OUTPUT_MARKER, "new"]


def test_atomic_dir_replacing_a_symlink_never_touches_its_target(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("k")
    (tmp_path / "link").symlink_to(target)
    with atomic_dir(tmp_path / "link", "bundle", force=True) as d:
        (d / "model.json").write_text("{}")
    assert (target / "keep").read_text() == "k" and not (tmp_path / "link").is_symlink()


def test_claim_marks_a_run_folder_in_place(tmp_path):
    run = claim_output_dir(tmp_path / "run", "run")
    (run / "checkpoint.json").write_text("{}")
    claim_output_dir(run, "run")  # again: ours
    with pytest.raises(OutputFolderError):
        claim_output_dir(run, "evaluation")


def test_debris_of_a_killed_write_is_removed_by_the_next_one(tmp_path):
    import subprocess

    p = subprocess.Popen(["true"])  # a pid that has exited: its temps are a killed writer's debris
    p.wait()
    stale_dir = tmp_path / f".out.{p.pid}-abc123.tmp"
    stale_dir.mkdir()
    (stale_dir / "half.bin").write_bytes(b"x" * 10)
    stale_file = tmp_path / f".m.json.{p.pid}-zz9.tmp"
    stale_file.write_text("half")
    live = tmp_path / f".out.{os.getpid()}-live.tmp"  # a writer that is still running (this process)
    live.mkdir()
    with atomic_dir(tmp_path / "out", "bundle") as d:
        (d / "model.json").write_text("{}")
    atomic_write_text(tmp_path / "m.json", "{}")
    names = sorted(x.name for x in tmp_path.iterdir())
    assert stale_dir.name not in names and stale_file.name not in names and live.name in names
    assert clean_stale_temps(tmp_path) == []  # the live one stays
