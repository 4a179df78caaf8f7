"""Shared pytest fixtures and markers.

Real-data tests are marked `@pytest.mark.slow` (deselected by default, run with
`-m slow`) and skip with a reason when the shared corpora are absent:

    from tests.conftest import requires_shared_data

    @pytest.mark.slow
    @requires_shared_data
    def test_emodb_counts(shared_data): ...
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()

#: The small synthetic corpus of the fast tests (4 speakers × 4 classes × 2 utterances), as
#: corpus options and as `training.fit` flags; `warm_cache` extracts exactly this one.
SMALL_CORPUS_OPTIONS = {"num_speakers": 4, "utterances_per_class": 2}
SMALL_CORPUS = [arg for key, value in SMALL_CORPUS_OPTIONS.items() for arg in ("--corpus-option", f"{key}={value}")]

requires_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"real corpora not found at {SHARED_DATA} (<repo>/../shared/data)",
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: real-data or long tests (run with -m slow); they skip when ../shared/data is absent",
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared corpora folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA} (<repo>/../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """SERCAL_CACHE_DIR for the session (synthetic audio + features), restored afterwards."""
    path = tmp_path_factory.mktemp("sercal_cache")
    old = os.environ.get("SERCAL_CACHE_DIR")
    os.environ["SERCAL_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SERCAL_CACHE_DIR", None)
    else:
        os.environ["SERCAL_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def warm_cache(cache_dir):
    """Generates the small corpus and its features once, so subprocesses find them cached."""
    from training.config import TrainConfig
    from training.trainer import load_data

    config = TrainConfig(corpus_options=SMALL_CORPUS_OPTIONS)
    load_data(config, log=lambda message: None).extract(log=lambda message: None)
    return cache_dir
