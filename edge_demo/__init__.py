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
"""

import os as _os

_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
