"""Loads the library's numpy front-end by file path, without importing `sercal_keras`.

`sercal_keras/audio/frontend.py` is the one definition of the features (WAV
decoding, resampling, segmenting, MFCC). It imports only numpy and the standard
library, but importing it as `sercal_keras.audio.frontend` would run
`sercal_keras/__init__.py`, which imports Keras and TensorFlow. So the edge
runtime executes that file directly, as its own module, and the features on the
device are computed by exactly the code that computed them in training.

Where the file is looked for, first match wins:

1. `$SERCAL_FRONTEND`: an explicit path to a `frontend.py`;
2. the repository checkout this package sits in:
   `<repo>/sercal_keras/audio/frontend.py` (running from a clone, or a copy of
   the repo tree on the device);
3. a copy beside the package folder: `<dir holding edge_demo>/frontend.py`;
4. a copy inside the package folder: `edge_demo/frontend.py`.

On a device without the whole repository, copy `sercal_keras/audio/frontend.py`
to one of the last two places (see `edge_demo/README.md`). Copy it from the
same commit that trained and exported the model.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import List, Optional

ENV_VAR = "SERCAL_FRONTEND"
MODULE_NAME = "sercal_frontend"
#: What the edge runtime uses from the front-end; a stale copy lacking one is refused.
REQUIRED = (
    "FeatureConfig",
    "FrontendError",
    "read_wav",
    "to_mono",
    "resample",
    "check_waveform",
    "segment_waveform",
    "mfcc",
    "aggregate_utterance",
    "speaker_statistics",
    "standardize",
    "shrink_statistics",
    "SPEAKER_PRIOR_WEIGHT",
    "check_test_time_speeds",
    "change_speed",
)

_PACKAGE_DIR = Path(__file__).resolve().parent


class FrontendNotFoundError(ImportError):
    """No usable `frontend.py` was found (message lists where it looked)."""


def candidate_paths() -> List[Path]:
    """The places searched for `frontend.py`, in order."""
    paths = []
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        paths.append(Path(explicit).expanduser())
    paths.append(_PACKAGE_DIR.parent / "sercal_keras" / "audio" / "frontend.py")
    paths.append(_PACKAGE_DIR.parent / "frontend.py")
    paths.append(_PACKAGE_DIR / "frontend.py")
    return paths


def find_frontend() -> Path:
    """The first existing `frontend.py` among `candidate_paths()`.

    Raises:
        FrontendNotFoundError: none exists, or `$SERCAL_FRONTEND` names a missing file.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit and not Path(explicit).expanduser().is_file():
        raise FrontendNotFoundError(
            f"${ENV_VAR}={explicit} is not a file; point it at sercal_keras/audio/frontend.py "
            "or unset it."
        )
    for path in candidate_paths():
        if path.is_file():
            return path.resolve()
    searched = ", ".join(str(p) for p in candidate_paths())
    raise FrontendNotFoundError(
        f"sercal front-end not found (looked in: {searched}). Copy "
        "sercal_keras/audio/frontend.py from the repository next to the edge_demo folder, "
        f"or set ${ENV_VAR} to its path."
    )


def load_frontend(path: Optional[os.PathLike] = None) -> ModuleType:
    """Executes `frontend.py` as the module `sercal_frontend` and returns it.

    Loaded once per process; later calls return the same module (a different
    `path` than the loaded one raises, rather than mixing two feature definitions).

    Args:
        path: the file to load; default `find_frontend()`.

    Returns:
        The module, with `FeatureConfig`, `read_wav`, `mfcc`, ... and
        `__file__` set to the resolved path it was loaded from.

    Raises:
        FrontendNotFoundError: no file, or a copy that lacks a required function.
    """
    path = Path(path).resolve() if path is not None else find_frontend()
    loaded = sys.modules.get(MODULE_NAME)
    if loaded is not None:
        if Path(loaded.__file__).resolve() != path:
            raise FrontendNotFoundError(
                f"front-end already loaded from {loaded.__file__}; refusing to load a second "
                f"one from {path}."
            )
        return loaded
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise FrontendNotFoundError(f"{path} cannot be loaded as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module  # dataclasses look the module up while it executes
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MODULE_NAME]
        raise
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing:
        del sys.modules[MODULE_NAME]
        raise FrontendNotFoundError(
            f"{path} lacks {missing}: it is an older copy of sercal_keras/audio/frontend.py. "
            "Copy the file from the commit that exported the model."
        )
    return module
