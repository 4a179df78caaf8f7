import shutil
import subprocess

import pytest

from sercal_keras.provenance import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(root, *args):
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "model.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("# readme\n")
    (tmp_path / "benchmarks" / "results" / "grid.json").write_text("{}\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_clean_checkout_is_its_commit(repo):
    commit = git_commit(repo)
    assert commit and not commit.endswith("-dirty") and commit != "unknown"


def test_edited_code_is_dirty(repo):
    (repo / "model.py").write_text("x = 2\n")
    assert git_commit(repo).endswith("-dirty")


def test_result_files_and_docs_rewritten_between_runs_are_not_code_changes(repo):
    (repo / "benchmarks" / "results" / "grid.json").write_text('{"runs": 5}\n')
    (repo / "README.md").write_text("# readme, edited\n")
    assert not git_commit(repo).endswith("-dirty")


def test_outside_a_checkout_is_unknown(tmp_path):
    assert git_commit(tmp_path / "nowhere") == "unknown"
