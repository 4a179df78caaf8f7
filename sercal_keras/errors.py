"""The library's exception hierarchy.

Every error a user can cause (bad audio, a corpus in the wrong layout, a bad
config, a failed export) is a `SercalError` whose message names the file or
value at fault and says what to do about it. Catch `SercalError` to handle all.
This module imports nothing heavy, so the edge runtime can use it too.
"""

from __future__ import annotations


class SercalError(Exception):
    """Base class of every error raised on purpose by sercal-keras."""


class ConfigError(SercalError, ValueError):
    """An argument, flag or config file value is invalid."""


class AudioDecodeError(SercalError):
    """An audio file is missing, empty, corrupt, not audio, or holds NaN/Inf."""


class CorpusLayoutError(SercalError):
    """A corpus directory is missing or not in the layout its reader expects."""


class ModelFileError(SercalError):
    """A model file or its sidecar is missing, unreadable or inconsistent."""


class ExportError(SercalError):
    """TFLite conversion or its post-conversion check failed."""


class SpeakerStatisticsError(SercalError):
    """A model trained with per-speaker normalisation was given no statistics of the speaker."""
