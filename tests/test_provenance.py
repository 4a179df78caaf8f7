import shutil
import subprocess

import pytest

from sercal_keras.provenance import cpu_signature, git_commit, machine_info

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")  # the cpuinfo tests do not


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


@needs_git
def test_clean_checkout_is_its_commit(repo):
    commit = git_commit(repo)
    assert commit and not commit.endswith("-dirty") and commit != "unknown"


@needs_git
def test_edited_code_is_dirty(repo):
    (repo / "model.py").write_text("x = 2\n")
    assert git_commit(repo).endswith("-dirty")


@needs_git
def test_result_files_and_docs_rewritten_between_runs_are_not_code_changes(repo):
    (repo / "benchmarks" / "results" / "grid.json").write_text('{"runs": 5}\n')
    (repo / "README.md").write_text("# readme, edited\n")
    assert not git_commit(repo).endswith("-dirty")


@needs_git
def test_outside_a_checkout_is_unknown(tmp_path):
    assert git_commit(tmp_path / "nowhere") == "unknown"


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse sse4_2 avx fma avx2 sha_ni

processor\t: 1
cpu family\t: 25
flags\t\t: avx512f
"""


def test_cpu_signature_tells_hosts_of_one_model_name_apart(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    assert cpu_signature(cpuinfo) == "family 25 model 17 stepping 1; avx avx2 fma"
    cpuinfo.write_text(CPUINFO.replace("stepping\t: 1", "stepping\t: 2").replace("sha_ni", "avx512f avx512_bf16"))
    assert cpu_signature(cpuinfo) == "family 25 model 17 stepping 2; avx avx2 fma avx512f avx512_bf16"


def test_cpu_signature_without_an_x86_cpuinfo_is_none(tmp_path):
    assert cpu_signature(tmp_path / "absent") is None
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\nCPU part\t: 0xd08\n")
    assert cpu_signature(arm) is None
    assert "cpu_signature" in machine_info()
