"""`load_corpus(name, data_dir, **options)`: one entry point for every corpus."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional, Union

from sercal_keras.data.corpus import Corpus
from sercal_keras.data.emodb import load_emodb
from sercal_keras.data.folder import load_csv, load_folder
from sercal_keras.data.iemocap import load_iemocap
from sercal_keras.data.ravdess import load_ravdess
from sercal_keras.data.synthetic import load_synthetic
from sercal_keras.errors import ConfigError

DATA_ENV_VAR = "SERCAL_DATA_DIR"

_READERS: Dict[str, Callable[..., Corpus]] = {
    "synthetic": lambda data_dir, **kw: load_synthetic(cache_dir=data_dir, **kw),
    "emodb": load_emodb,
    "ravdess": load_ravdess,
    "iemocap": load_iemocap,
    "folder": load_folder,
    "csv": load_csv,
}
CORPORA = tuple(_READERS)
# Sub-folder of $SERCAL_DATA_DIR each corpus is looked for in when data_dir is None
# (the names used in ../shared/data and the IEMOCAP release).
DEFAULT_SUBDIRS = {"emodb": "emodb", "ravdess": "ravdess16k", "iemocap": "IEMOCAP_full_release"}


def load_corpus(
    name: str, data_dir: Optional[Union[str, Path]] = None, **options
) -> Corpus:
    """Reads a corpus by name.

    Args:
        name: one of `CORPORA`: "synthetic" (generated, the offline default),
            "emodb", "ravdess", "iemocap", "folder", "csv".
        data_dir: the corpus folder (for "csv": the manifest file; for
            "synthetic": the cache root). If `None`: "synthetic" uses the
            default cache; "emodb"/"ravdess"/"iemocap" look in
            `$SERCAL_DATA_DIR/{emodb,ravdess16k,IEMOCAP_full_release}`.
        **options: passed to the reader, e.g. `subset="all", happy="exc"`
            (IEMOCAP), `labels=`, `speaker_regex=` (folder), `num_speakers=`
            (synthetic).

    Returns:
        The `Corpus`.

    Raises:
        ConfigError: unknown name or option, or no data_dir where one is needed.
        CorpusLayoutError: the folder is missing or not in the reader's layout.

    Example:
    >>> corpus = load_corpus("synthetic")  # doctest: +SKIP
    >>> corpus = load_corpus("emodb", "../shared/data/emodb")  # doctest: +SKIP
    """
    if name not in _READERS:
        raise ConfigError(f"Unknown corpus {name!r}; choose one of {CORPORA}.")
    if data_dir is None and name != "synthetic":
        env = os.environ.get(DATA_ENV_VAR)
        if not env or name not in DEFAULT_SUBDIRS:
            raise ConfigError(
                f"Corpus {name!r} needs a data_dir (the corpus folder), or set "
                f"${DATA_ENV_VAR} to the folder holding {DEFAULT_SUBDIRS.get(name, name)}/."
            )
        data_dir = Path(env) / DEFAULT_SUBDIRS[name]
    try:
        return _READERS[name](data_dir, **options)
    except TypeError as e:  # an option the reader does not take
        if "unexpected keyword" not in str(e):
            raise
        raise ConfigError(f"Bad option for corpus {name!r}: {e}.") from e
