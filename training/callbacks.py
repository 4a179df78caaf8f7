"""Training callbacks: validation UA (model selection, early stopping), history, lr.

`ValidationUA` is what makes a run resumable *and* honest:
- after every epoch it predicts the validation set (speakers carved out of the
  training speakers, never the test fold), computes utterance-level UA/WA and
  segment cross-entropy, and adds them to the epoch logs (`val_ua`, `val_wa`,
  `val_loss`), so TensorBoard and the history see them;
- it keeps the best epoch's weights (`best.weights.h5`) and stops training after
  `patience` epochs without a better UA; with an optimizer that keeps a moving
  average of the weights (`use_ema`), it validates and saves the averaged weights
  (swapped in by Keras' `SwapEMAWeights` and back before the next epoch);
- its state (history rows, best UA/epoch, patience counter, finished flag) is a
  JSON file written atomically at every epoch end *before* `BackupAndRestore`
  saves, so a run killed at any moment and started again continues with the
  same history, best model and patience (rows of epochs that are re-run are
  dropped on restart).

Predictions are computed locally (a `tf.function` over the model, no
`model.predict`), so every worker of a multi-worker run computes the same
numbers without collective ops and all workers stop at the same epoch.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Sequence

import keras
import numpy as np

from sercal_keras import metrics
from sercal_keras.io_utils import write_json, write_text
from training.run_dir import epoch_weights_name

#: `seconds`: the training part of the epoch; `validation_seconds`: the validation after it.
HISTORY_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_wa", "val_ua", "learning_rate", "seconds",
                  "validation_seconds")


def make_predict_fn(model: keras.Model, batch_size: int = 256) -> Callable[[np.ndarray], np.ndarray]:
    """A local batched predictor: features (n, ...) → probabilities (n, C).

    Calls the model eagerly, outside any strategy: no collective ops (so each
    worker of a multi-worker run can evaluate on its own) and no tf.function
    traced per model (a cross-validation builds many models).
    """
    def predict(features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, np.float32)
        if len(features) == 0:
            return np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
        out = [keras.ops.convert_to_numpy(model(features[start : start + batch_size], training=False))
               for start in range(0, len(features), batch_size)]
        return np.concatenate(out).astype(np.float32)

    return predict


def lr_for_epoch(epoch: int, learning_rate: float, schedule: str, epochs: int,
                 step_epochs: int = 10, step_factor: float = 0.1) -> float:
    """The learning rate of (0-based) `epoch` under a schedule.

    - `step`: `learning_rate × step_factor ** (epoch // step_epochs)` (paper: ÷10 every 10);
    - `cosine`: `learning_rate × (1 + cos(π·epoch/epochs)) / 2`;
    - `constant`: `learning_rate`.
    """
    if schedule == "step":
        return learning_rate * step_factor ** (epoch // step_epochs)
    if schedule == "cosine":
        return learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
    if schedule == "constant":
        return learning_rate
    raise ValueError(f"unknown lr schedule {schedule!r}")


def lr_scheduler(config) -> keras.callbacks.LearningRateScheduler:
    """The per-epoch schedule of a `TrainConfig` (resume-safe: it depends on the epoch only)."""
    def schedule(epoch, _lr):
        return lr_for_epoch(epoch, config.learning_rate, config.lr_schedule, config.epochs,
                            config.lr_step_epochs, config.lr_step_factor)

    return keras.callbacks.LearningRateScheduler(schedule, verbose=0)


def history_csv(rows: Sequence[Dict[str, Any]]) -> str:
    """History rows as CSV text (fixed columns; empty cells for missing values)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in HISTORY_FIELDS})
    return buffer.getvalue()


class EpochScalars(keras.callbacks.Callback):
    """Writes every epoch's logs and the learning rate as TensorBoard scalars.

    Uses TensorFlow's core `tf.summary.write` with the scalar plugin's metadata,
    so it works without the `tensorboard` package (which `tensorflow-cpu` does
    not install, and which `keras.callbacks.TensorBoard` needs). View with
    `tensorboard --logdir <run dir>/logs` wherever TensorBoard is installed.
    Place it after `ValidationUA` so the validation metrics are in the logs.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = str(log_dir)
        self._writer = None
        self._metadata = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._writer = tf.summary.create_file_writer(self.log_dir)
        metadata = summary_pb2.SummaryMetadata()
        metadata.plugin_data.plugin_name = "scalars"
        metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
        self._metadata = metadata

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        values = dict(logs or {})
        try:
            values["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # pragma: no cover
            pass
        with self._writer.as_default():
            for name, value in values.items():
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                tag = f"validation/{name[4:]}" if name.startswith("val_") else f"train/{name}"
                tf.summary.write(tag, tf.constant(value, tf.float32), step=epoch + 1, metadata=self._metadata)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


class ValidationUA(keras.callbacks.Callback):
    """Validation UA after every epoch: best-model selection, early stopping, history.

    Place it **first** in the callback list (before `BackupAndRestore`,
    `TensorBoard`), so its metrics are in the logs the others see and its state
    is saved before the backup.

    Args:
        state_dir: folder for `state.json`, `best.weights.h5`, `last.weights.h5`.
        labels: class names.
        validation: `(features, labels, utterance_index)` arrays, or None for
            no validation (the last epoch is kept).
        patience: epochs without improvement before stopping; 0 = never.
        history_path: where to (re)write `history.csv` after every epoch, or None.
        predict_batch_size: batch size of the local predictions.
        epoch_weights_dir: if set, every epoch's weights, as validation scores
            them (the moving averages under `use_ema`), go to
            `epochNN.weights.h5` there (1-based, as `best_epoch`), with or
            without a validation set.
    """

    def __init__(self, state_dir, labels: Sequence[str], validation=None, patience: int = 0,
                 history_path=None, predict_batch_size: int = 256, epoch_weights_dir=None):
        super().__init__()
        self.state_dir = Path(state_dir)
        self.labels = list(labels)
        self.validation = validation
        self.patience = int(patience)
        self.history_path = Path(history_path) if history_path else None
        self.predict_batch_size = predict_batch_size
        self.epoch_weights_dir = Path(epoch_weights_dir) if epoch_weights_dir else None
        self.state = self.load_state(self.state_dir)
        self._predict = None
        self._epoch_start = 0.0
        self._truncated = False

    # ------------------------------------------------------------------ state
    @staticmethod
    def load_state(state_dir) -> Dict[str, Any]:
        path = Path(state_dir) / "state.json"
        if path.is_file():
            return json.loads(path.read_text())
        return {"history": [], "best_ua": None, "best_epoch": None, "wait": 0, "finished": False,
                "stopped_early": False}

    @property
    def best_weights_path(self) -> Path:
        return self.state_dir / "best.weights.h5"

    @property
    def last_weights_path(self) -> Path:
        return self.state_dir / "last.weights.h5"

    def _save_state(self) -> None:
        write_json(self.state_dir / "state.json", self.state)

    def _save_weights(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{os.getpid()}-{path.name}"  # keeps the .weights.h5 ending
        self.model.save_weights(str(tmp), overwrite=True)
        os.replace(tmp, path)

    def _write_history(self) -> None:
        if self.history_path is not None:
            write_text(self.history_path, history_csv(self.state["history"]))

    @contextlib.contextmanager
    def _averaged_weights(self):
        """The optimizer's moving-average weights in the model for the block, if it keeps them.

        At the end of `fit` Keras writes the averages into the model itself
        (`finalize_variable_values`), so `last.weights.h5` holds them too.
        """
        optimizer = getattr(self.model, "optimizer", None)
        if not getattr(optimizer, "use_ema", False):
            yield
            return
        swap = keras.callbacks.SwapEMAWeights()
        swap.set_model(self.model)
        swap.on_test_begin()  # raw weights out, averages in
        try:
            yield
        finally:
            swap.on_test_end()  # and back, so training continues from the raw weights

    # ---------------------------------------------------------------- keras API
    def on_epoch_begin(self, epoch, logs=None):
        if not self._truncated:  # after BackupAndRestore has set the initial epoch
            self._truncated = True
            kept = [row for row in self.state["history"] if row["epoch"] < epoch]
            if len(kept) != len(self.state["history"]):
                self.state["history"] = kept
        self._epoch_start = time.perf_counter()

    def evaluate_validation(self) -> Dict[str, float]:
        """Utterance-level UA/WA and segment cross-entropy on the validation set."""
        if self._predict is None:
            self._predict = make_predict_fn(self.model, self.predict_batch_size)
        features, labels, utterance_index = self.validation
        probs = self._predict(features)
        result = metrics.evaluate_segments(probs, labels, utterance_index, self.labels)
        picked = probs[np.arange(len(labels)), np.asarray(labels)]
        loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
        return {"val_loss": loss, "val_ua": result["utterance"]["ua"], "val_wa": result["utterance"]["wa"]}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        row: Dict[str, Any] = {"epoch": int(epoch)}
        for key in ("loss", "accuracy"):
            if key in logs:
                row[key] = float(logs[key])
        try:
            row["learning_rate"] = float(f"{float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)):.6g}")
        except Exception:  # pragma: no cover  (no optimizer: not from fit)
            pass
        row["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
        diverged = not math.isfinite(row.get("loss", 0.0))
        if self.epoch_weights_dir is not None and not diverged:
            with self._averaged_weights():
                self._save_weights(self.epoch_weights_dir / epoch_weights_name(epoch + 1))
        if self.validation is not None and not diverged:
            validation_start = time.perf_counter()
            with self._averaged_weights():
                scores = self.evaluate_validation()
                best = self.state["best_ua"]
                improved = best is None or scores["val_ua"] > best
                if improved:
                    self._save_weights(self.best_weights_path)
            logs.update(scores)
            row.update(scores)
            if improved:
                self.state.update(best_ua=scores["val_ua"], best_epoch=int(epoch), wait=0)
            else:
                self.state["wait"] += 1
                if self.patience and self.state["wait"] >= self.patience:
                    self.model.stop_training = True
                    self.state["stopped_early"] = True
            row["validation_seconds"] = round(time.perf_counter() - validation_start, 3)
        self.state["history"].append(row)
        self._save_state()
        self._write_history()

    def on_train_end(self, logs=None):
        history = self.state["history"]
        if history and not math.isfinite(history[-1].get("loss", 0.0)):
            return  # diverged: the caller reports it; nothing is marked finished
        self._save_weights(self.last_weights_path)
        self.state["finished"] = True
        self._save_state()
