"""`python -m training.fit`: train, cross-validate, evaluate; see `--help`.

Exit codes: 0 done; 1 a run failed (e.g. the loss became NaN, unreadable
data); 2 invalid flags or config (a one-line message naming the flag, before
any work).
"""

from __future__ import annotations

import json
import sys
from typing import Optional, Sequence

PROG = "python -m training.fit"


def main(argv: Optional[Sequence[str]] = None) -> int:
    from training.config import build_parser, config_from_args, import_library_quietly

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        build_parser().parse_args(argv)  # --help and unknown flags: instant, before TensorFlow loads
    except SystemExit as exit_:
        return int(exit_.code or 0)
    import_library_quietly(verbose="--verbose" in argv or "-v" in argv)
    try:
        config = config_from_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except Exception as error:  # ConfigError (imported late: the package loads Keras)
        return _fail(error)

    from sercal_keras.errors import ConfigError, SercalError
    from training.cross_validation import run_cross_validation, summary_line

    try:
        summary = run_cross_validation(config, command=["python", "-m", "training.fit", *argv])
    except ConfigError as error:
        return _fail(error)
    except SercalError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr, flush=True)
        return 130
    if summary.get("chief") is False:
        return 0  # a non-chief worker of a multi-worker run: the chief reports
    if config.json_output:
        print(json.dumps(summary, indent=2, default=str), flush=True)
        print(summary_line(summary), file=sys.stderr, flush=True)
    else:
        print(summary_line(summary), flush=True)
    return 0


def _fail(error: Exception) -> int:
    from sercal_keras.errors import ConfigError

    if not isinstance(error, ConfigError):
        raise error
    message = " ".join(str(error).split())  # one line
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
