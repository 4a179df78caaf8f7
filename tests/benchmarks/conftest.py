"""Trained runs shared by the benchmark tests (each trained once per session, on first use).

The benchmarks only read a run's folder; a test that needs to change one copies it first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import SMALL_CORPUS

ONE_FOLD = SMALL_CORPUS + ["--batch-size", "8", "--quiet", "--folds", "0"]
#: Runs that pick an epoch on a validation split and keep every epoch's weights (the rescoring benchmarks).
PICKING = ONE_FOLD + ["--epochs", "3", "--keep-epoch-weights", "--validation-fraction", "0.2",
                      "--average-from-epoch", "0"]
#: The library's default recipe (no validation split, weight average, speeds 0.9 and 1.1), two epochs.
DEFAULT_RECIPE = ONE_FOLD + ["--epochs", "2"]


@pytest.fixture(scope="session")
def picking_run(warm_cache, tmp_path_factory) -> Path:
    """One `PICKING` run (first fold, seed 0)."""
    from training.fit import main as fit

    out = tmp_path_factory.mktemp("picking") / "run"
    assert fit(PICKING + ["--output-dir", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def default_recipe_run(warm_cache, tmp_path_factory) -> Callable[[int], Path]:
    """`default_recipe_run(seed)`: the `DEFAULT_RECIPE` run of that seed (first fold), trained on first use."""
    from training.fit import main as fit

    root, runs = tmp_path_factory.mktemp("default_recipe"), {}

    def run(seed: int) -> Path:
        if seed not in runs:
            out = root / f"seed{seed}"
            assert fit(DEFAULT_RECIPE + ["--seeds", str(seed), "--output-dir", str(out)]) == 0
            runs[seed] = out
        return runs[seed]

    return run
