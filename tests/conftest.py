"""Shared pytest fixtures and markers.

Real-data tests are marked `@pytest.mark.slow` (deselected by default, run with
`-m slow`) and skip with a reason when the shared corpora are absent:

    from tests.conftest import requires_shared_data

    @pytest.mark.slow
    @requires_shared_data
    def test_emodb_counts(shared_data): ...
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()

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
