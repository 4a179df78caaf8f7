"""Where sercal-keras caches generated audio and features."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

ENV_VAR = "SERCAL_CACHE_DIR"


def cache_root(cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """The cache folder: `cache_dir`, else `$SERCAL_CACHE_DIR`, else `~/.cache/sercal_keras`.

    Example:
    >>> cache_root("/tmp/c")
    PosixPath('/tmp/c')
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sercal_keras"
