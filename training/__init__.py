"""Training, cross-validation and evaluation apps for sercal-keras.

- `python -m training.fit`: train (one fold, all folds, several seeds) into a run directory;
- `python -m training.evaluate`: evaluate a saved model on any corpus / split;
- `training.cross_validation.run_cross_validation(config) -> summary dict`: the same
  runner as a function, for the benchmark harness.

This package imports TensorFlow only when work starts, so `--help` and flag
errors are instant.
"""
