"""Edge runtime for sercal-keras models: numpy + LiteRT, no TensorFlow, Keras or librosa.

- `python -m edge_demo.classify model.tflite a.wav …`: classify files;
- `python -m edge_demo.stream --model model.tflite [--wav a.wav]`: live microphone
  (or a file played as a stream) with a real-time factor report.

The features come from the library's own `sercal_keras/audio/frontend.py`, loaded by
file path (`edge_demo.frontend_loader`), so they are computed by exactly the code
that computed them in training. See `edge_demo/README.md` for Raspberry Pi and Android.

numpy's BLAS is set to one thread unless the user chose otherwise
(`OPENBLAS_NUM_THREADS`): the runtime multiplies one 2 s window's small matrices at a
time, where a second BLAS thread only adds hand-over cost, and on a busy CPU (the
interpreter, the audio thread, other programs) a spinning BLAS thread made the MFCC
up to ~10x slower in our measurements. This only takes effect when `edge_demo` is
imported before numpy, as it is with `python -m edge_demo.…`.

On glibc (Linux, Raspberry Pi OS) the import also keeps freed buffers up to 32 MB in the
heap (`keep_large_buffers`): by default glibc serves each of the front-end's ~1-MB STFT
temporaries by a fresh `mmap` and unmaps it when freed, so every window page-faulted them
anew and the numpy front-end took 2.4 ms a window instead of 0.7 on x86
(benchmarks/results/experiments.md, thirty-seventh sitting). Setting `MALLOC_MMAP_THRESHOLD_`
or `MALLOC_TRIM_THRESHOLD_` yourself turns this off.
"""

import ctypes as _ctypes
import os as _os

_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_BYTES = 32 * 1024 * 1024


def keep_large_buffers() -> bool:
    """Serves blocks up to 32 MB from the heap and keeps up to 64 MB of freed heap (glibc only).

    Returns:
        True when glibc took the settings; False elsewhere (musl, macOS, Android's bionic)
        or when the user set `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`.

    Example:
    >>> import edge_demo  # calls it once; calling again re-applies the same settings
    >>> edge_demo.keep_large_buffers()  # doctest: +SKIP
    True
    """
    if "MALLOC_MMAP_THRESHOLD_" in _os.environ or "MALLOC_TRIM_THRESHOLD_" in _os.environ:
        return False
    try:
        mallopt = _ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [_ctypes.c_int, _ctypes.c_int], _ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold set explicitly also stops glibc moving it
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BYTES))


keep_large_buffers()
