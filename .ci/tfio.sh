#!/usr/bin/env bash
# CI job for the optional tensorflow-io backend (DESIGN.md §3).
#
# tensorflow-io is abandoned upstream (tensorflow/io#2160) and its native audio ops
# load only on TF 2.17.1 (numpy < 2), so it cannot live in the default environment
# (TF 2.21, numpy 2). This job builds a SECOND, separate venv with the `tfio` extra,
# checks that the native ops really load, and runs only the tfio tests there, with
# SERCAL_REQUIRE_TFIO=1 so that they fail instead of skipping. The job fails if any tfio
# test skips (except the real-data one when ../shared/data is absent) or none is
# collected. Takes ~1 min with a warm pip cache (~2-3 min downloading ~0.6 GB of
# wheels). Called by .ci/run; runnable alone:
#     bash .ci/tfio.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

VENV="${SERCAL_TFIO_VENV:-.venv-tfio}"
PYTHON="${SERCAL_TFIO_PYTHON:-python3}"
say() { echo "[tfio] $*"; }
die() { echo "[tfio] FAILED: $*" >&2; exit 1; }

# tensorflow-io 0.37.1 and tensorflow-cpu 2.17.1 ship wheels for CPython 3.9-3.12 only.
if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 12))'; then
    die "$PYTHON is $("$PYTHON" -V 2>&1); tensorflow-io 0.37.1 needs Python 3.9-3.12 (set SERCAL_TFIO_PYTHON)."
fi

start=$SECONDS
say "building $VENV with $("$PYTHON" -V 2>&1) and the [tfio,dev] extras (TF 2.17.1 + tensorflow-io 0.37.1)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q -e ".[tfio,dev]" || die "pip install -e '.[tfio,dev]' into $VENV"
install_s=$((SECONDS - start))
say "install took ${install_s}s"

# Versions, and the native op library really loads (tensorflow_io imports lazily, so a
# plain import would succeed even where the ops fail with undefined symbols).
"$VENV/bin/python" - <<'PY' || die "tensorflow-io's native audio ops do not load in $VENV (see above)"
import keras
import numpy as np
import tensorflow as tf
import tensorflow_io as tfio

import sercal_keras

print(f"[tfio] tensorflow {tf.__version__}, tensorflow-io {tfio.__version__}, "
      f"keras {keras.__version__}, numpy {np.__version__}, sercal-keras {sercal_keras.__version__}")
tfio.audio.resample(tf.zeros([480], tf.float32), rate_in=48000, rate_out=16000)
PY

# Only the tfio tests (the one that needs tensorflow-io to be ABSENT is deselected), the
# real-data one included (RAVDESS originals in ../shared/data; it may skip only when
# that folder is absent). SERCAL_REQUIRE_TFIO=1 turns "tensorflow_io missing" from a
# skip into a failure.
report="$(mktemp -t sercal-tfio-junit.XXXXXX)"
trap 'rm -f "$report"' EXIT
test_start=$SECONDS
SERCAL_REQUIRE_TFIO=1 "$VENV/bin/python" -m pytest tests/audio/test_decode.py \
    -k "tfio and not without_tensorflow_io" -m "slow or not slow" -p no:cacheprovider -rs \
    --junitxml="$report" || die "tfio tests failed (pytest in $VENV, see above)"
test_s=$((SECONDS - test_start))

"$VENV/bin/python" - "$report" <<'PY' || die "the tfio tests did not all run (see above)"
import sys
import xml.etree.ElementTree as ET

cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
skipped = [(c.get("name"), c.find("skipped").get("message", "")) for c in cases
           if c.find("skipped") is not None]
allowed = [(n, m) for n, m in skipped if "real corpora not found" in m]
if not cases:
    sys.exit("[tfio] no tfio test was collected: check the -k expression and the test names")
if len(skipped) > len(allowed):
    for name, message in skipped:
        print(f"[tfio] skipped: {name}: {message}")
    sys.exit(f"[tfio] {len(skipped) - len(allowed)} tfio tests were skipped: "
             "they must run in this environment")
for name, message in allowed:
    print(f"[tfio] note: {name} skipped ({message})")
print(f"[tfio] {len(cases) - len(skipped)} of {len(cases)} tfio tests ran and passed")
PY
say "OK: install ${install_s}s, tests ${test_s}s, total $((SECONDS - start))s"
