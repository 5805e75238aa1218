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
