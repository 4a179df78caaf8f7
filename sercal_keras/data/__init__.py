"""Corpora, label maps, splits, cached segment features and tf.data pipelines."""

from sercal_keras.data.corpus import Corpus, Utterance
from sercal_keras.data.emodb import load_emodb
from sercal_keras.data.features import SegmentSet, extract_segments, fit_normalization
from sercal_keras.data.folder import load_csv, load_folder
from sercal_keras.data.iemocap import load_iemocap
from sercal_keras.data.labels import LABEL_MAPS
from sercal_keras.data.pipeline import batches_per_epoch, make_dataset
from sercal_keras.data.ravdess import load_ravdess
from sercal_keras.data.registry import CORPORA, load_corpus
from sercal_keras.data.speaker_normalization import standardize_by_speaker
from sercal_keras.data.splits import PROTOCOLS, Fold, make_folds, validation_split
from sercal_keras.data.synthetic import load_synthetic

__all__ = [
    "CORPORA",
    "Corpus",
    "Fold",
    "LABEL_MAPS",
    "PROTOCOLS",
    "SegmentSet",
    "Utterance",
    "extract_segments",
    "fit_normalization",
    "load_corpus",
    "load_csv",
    "load_emodb",
    "load_folder",
    "load_iemocap",
    "load_ravdess",
    "load_synthetic",
    "batches_per_epoch",
    "make_dataset",
    "make_folds",
    "standardize_by_speaker",
    "validation_split",
]
