import os
import stat

import pytest

from sercal_keras.io_utils import atomic_path, write_json, write_text


def test_written_file_is_complete_and_readable_by_others(tmp_path):
    path = write_text(tmp_path / "sub" / "a.md", "hello")
    assert path.read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_failure_leaves_nothing_behind(tmp_path):
    target = tmp_path / "model.keras"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_only_on_success(tmp_path):
    target = write_json(tmp_path / "m.json", {"v": 1})
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("{broken")
            raise ValueError
    assert target.read_text().strip().endswith("}") and '"v": 1' in target.read_text()
