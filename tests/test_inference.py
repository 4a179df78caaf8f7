"""`EmotionRecognizer`: loading, the one feature path, results, batching, errors.

The model here is untrained (built with known normalisation statistics and
saved with its card): the tests check the plumbing against an independent
re-implementation of the path, not accuracy.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

RATE = 16000


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """An untrained 4-class model saved as a run directory (model.keras + model_card.json)."""
    import keras

    from sercal_keras.audio.frontend import FeatureConfig
    from sercal_keras.model_card import ModelCard
    from sercal_keras.models import build_model

    keras.utils.set_random_seed(1)
    run = tmp_path_factory.mktemp("run")
    mean = np.linspace(-300.0, 5.0, 26).astype("float32")
    std = np.linspace(80.0, 5.0, 26).astype("float32")
    model = build_model("fa_ca", num_classes=4, feature_mean=mean, feature_variance=std**2)
    model.save(run / "model.keras")
    ModelCard(labels=["neutral", "happy", "sad", "angry"], feature_config=FeatureConfig().to_dict(),
              feature_mean=mean.tolist(), feature_std=std.tolist(), corpus="synthetic", variant="fa_ca").save(
        run / "model_card.json")
    return run


@pytest.fixture(scope="module")
def recognizer(saved_model):
    from sercal_keras import EmotionRecognizer

    return EmotionRecognizer.load(saved_model)


def tone(seconds: float, rate: int = RATE, freq: float = 220.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_wav(path, waveform, rate=RATE):
    import soundfile as sf

    sf.write(str(path), waveform, rate, subtype="PCM_16")
    return path


def reference_probabilities(model, path):
    """The path written out independently: decode → 2 s windows every 0.4 s → librosa MFCC → model → mean."""
    import librosa

    waveform, _ = librosa.load(str(path), sr=RATE, mono=True)
    seg, hop = 2 * RATE, int(0.4 * RATE)
    starts = [0] if len(waveform) <= seg else list(range(0, len(waveform) - seg + 1, hop))
    tail = len(waveform) - (starts[-1] + seg)
    if len(waveform) > seg and 2 * tail >= hop:
        starts.append(starts[-1] + hop)
    segments = [np.pad(waveform[s : s + seg], (0, max(0, s + seg - len(waveform)))) for s in starts]
    features = np.stack([librosa.feature.mfcc(y=s, sr=RATE, n_mfcc=26) for s in segments]).astype(np.float32)
    probs = np.asarray(model.predict(features, verbose=0))
    return probs.mean(axis=0), probs


def test_load_from_run_dir_or_file(saved_model, recognizer):
    from sercal_keras import EmotionRecognizer

    again = EmotionRecognizer.load(saved_model / "model.keras")
    assert again.labels == recognizer.labels == ("neutral", "happy", "sad", "angry")
    assert recognizer.feature_config.eval_hop_seconds == 0.4


def test_predict_file_matches_an_independent_pipeline(tmp_path, recognizer):
    path = write_wav(tmp_path / "a.wav", tone(3.1))
    result = recognizer.predict_file(path)
    expected_utt, expected_segments = reference_probabilities(recognizer.model, path)
    assert result.segment_probabilities.shape == expected_segments.shape == (4, 4)
    np.testing.assert_allclose(result.segment_probabilities, expected_segments, atol=2e-3)
    np.testing.assert_allclose([result.probabilities[label] for label in result.labels], expected_utt, atol=2e-3)
    assert result.label == result.labels[int(np.argmax(expected_utt))]
    assert result.segment_starts == (0.0, 0.4, 0.8, 1.2)
    assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.to_dict()["segments"][1]["start"] == 0.4


def test_same_features_as_training_extraction(tmp_path, recognizer):
    """One code path: the recognizer sees exactly the evaluation features `extract_segments` caches."""
    from sercal_keras.audio.decode import load_audio
    from sercal_keras.data.corpus import Corpus, Utterance
    from sercal_keras.data.features import extract_segments

    path = write_wav(tmp_path / "b.wav", tone(2.7, freq=300.0, seed=2))
    corpus = Corpus("folder", ("neutral",), (Utterance(path, "neutral", "x", None, None, "b"),))
    cached = extract_segments(corpus, None, recognizer.feature_config, training=False, cache_dir=tmp_path / "c")
    ours = recognizer.features(load_audio(path, RATE))
    np.testing.assert_array_equal(ours, cached.features)


def test_predict_waveform_resamples_and_mixes_down(tmp_path, recognizer):
    wave16 = tone(2.5, freq=250.0)
    direct = recognizer.predict(wave16, RATE)
    stereo = np.stack([wave16, wave16], axis=1)
    np.testing.assert_allclose(recognizer.predict(stereo, RATE).segment_probabilities,
                               direct.segment_probabilities, atol=1e-6)
    wave8 = tone(2.5, rate=8000, freq=250.0)
    resampled = recognizer.predict(wave8, 8000)
    assert resampled.segment_probabilities.shape == direct.segment_probabilities.shape
    # the file path at 8 kHz gives the same as the array path at 8 kHz
    from_file = recognizer.predict_file(write_wav(tmp_path / "c8k.wav", wave8, 8000))
    np.testing.assert_allclose(from_file.segment_probabilities, resampled.segment_probabilities, atol=5e-3)


def test_short_audio_gives_one_padded_segment(recognizer):
    result = recognizer.predict(tone(0.5), RATE)
    assert result.segment_probabilities.shape == (1, 4)


def test_predict_files_batches_like_single_calls(tmp_path, recognizer):
    paths = [write_wav(tmp_path / f"f{i}.wav", tone(1.5 + i, freq=200.0 + 50 * i, seed=i)) for i in range(3)]
    batched = recognizer.predict_files(paths)
    assert [r.source for r in batched] == [str(p) for p in paths]
    for path, result in zip(paths, batched):
        single = recognizer.predict_file(path)
        np.testing.assert_allclose(result.segment_probabilities, single.segment_probabilities, atol=1e-5)
        assert result.label == single.label


def test_bad_input_is_named(tmp_path, recognizer):
    from sercal_keras.errors import AudioDecodeError

    with pytest.raises(AudioDecodeError, match="missing.wav"):
        recognizer.predict_file(tmp_path / "missing.wav")
    with pytest.raises(AudioDecodeError):
        recognizer.predict(np.array([0.0, np.nan, 0.1], np.float32), RATE)


def test_missing_card_and_ambiguous_folder(tmp_path, saved_model):
    from sercal_keras import EmotionRecognizer
    from sercal_keras.errors import ModelFileError

    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(saved_model / "model.keras", lone / "model.keras")
    with pytest.raises(ModelFileError, match="model card not found"):
        EmotionRecognizer.load(lone)
    for name in ("a", "b"):
        shutil.copytree(saved_model, tmp_path / "cv" / name)
    with pytest.raises(ModelFileError, match="holds 2 runs"):
        EmotionRecognizer.load(tmp_path / "cv")
    assert EmotionRecognizer.load(tmp_path / "cv" / "a").labels[0] == "neutral"


def test_card_that_does_not_fit_the_model_is_refused(tmp_path, saved_model):
    import json

    from sercal_keras import EmotionRecognizer
    from sercal_keras.errors import ModelFileError

    run = tmp_path / "bad"
    shutil.copytree(saved_model, run)
    card = json.loads((run / "model_card.json").read_text())
    card["labels"] = card["labels"][:3]
    (run / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="3 labels"):
        EmotionRecognizer.load(run)


@pytest.fixture(scope="module")
def speaker_recognizer(saved_model, tmp_path_factory):
    """The same model, its card marked as trained with per-speaker normalisation."""
    import json

    from sercal_keras import EmotionRecognizer

    run = tmp_path_factory.mktemp("speaker_run")
    shutil.copy(saved_model / "model.keras", run / "model.keras")
    card = json.loads((saved_model / "model_card.json").read_text())
    card["feature_normalization"] = "speaker"
    (run / "model_card.json").write_text(json.dumps(card))
    return EmotionRecognizer.load(run)


class InputSpy:
    """Stands in for the Keras model: records what it is fed, answers uniform probabilities."""

    input_shape, output_shape = (None, 26, 63), (None, 4)

    def __init__(self):
        self.seen = []

    def predict_on_batch(self, x):
        self.seen.append(np.array(x))
        return np.full((len(x), 4), 0.25, np.float32)


def test_per_speaker_model_standardises_with_the_speakers_statistics(tmp_path, speaker_recognizer, recognizer):
    from sercal_keras import EmotionRecognizer
    from sercal_keras.errors import SpeakerStatisticsError

    assert speaker_recognizer.needs_speaker_statistics and not recognizer.needs_speaker_statistics
    paths = [write_wav(tmp_path / f"s{i}.wav", tone(2.5 + i, freq=180.0 + 40 * i, seed=i)) for i in range(3)]
    with pytest.raises(SpeakerStatisticsError, match="adapt"):
        speaker_recognizer.predict_file(paths[0])
    raw = [recognizer.features(recognizer_load(p)) for p in paths]
    pooled = np.concatenate(raw)
    mean = pooled.mean(axis=(0, 2))[:, None]
    std = pooled.std(axis=(0, 2))[:, None]

    spy = InputSpy()
    adapted = EmotionRecognizer(spy, speaker_recognizer.card)
    adapted.predict_files(paths, adapt=True)  # the files' own statistics
    np.testing.assert_allclose(spy.seen[-1], (pooled - mean) / std, atol=1e-4)
    np.testing.assert_allclose(spy.seen[-1].mean(axis=(0, 2)), 0, atol=1e-4)

    enrolled = EmotionRecognizer(spy, speaker_recognizer.card)
    enrolled.adapt(paths)  # enrolment, then any one file of that speaker
    enrolled.predict_file(paths[1])
    np.testing.assert_allclose(spy.seen[-1], (raw[1] - mean) / std, atol=1e-4)
    # a global model passes the raw MFCC (its Normalization layer does the rest)
    EmotionRecognizer(spy, recognizer.card).predict_file(paths[1])
    np.testing.assert_array_equal(spy.seen[-1], raw[1])


def test_global_model_refuses_speaker_statistics(tmp_path, recognizer):
    from sercal_keras.errors import ConfigError

    path = write_wav(tmp_path / "a.wav", tone(2.0))
    with pytest.raises(ConfigError, match="global"):
        recognizer.adapt([path])
    with pytest.raises(ConfigError, match="global"):
        recognizer.predict_files([path], adapt=True)


def recognizer_load(path):
    from sercal_keras.audio.decode import load_audio

    return load_audio(path, RATE)


def test_a_stored_training_speaker_average_stands_in_and_enrolment_is_shrunk_towards_it(tmp_path,
                                                                                         speaker_recognizer,
                                                                                         recognizer):
    import dataclasses

    from sercal_keras import EmotionRecognizer

    prior_mean = np.linspace(-200.0, 3.0, 26).astype("float32")
    prior_std = np.linspace(50.0, 4.0, 26).astype("float32")
    extra = {**speaker_recognizer.card.extra,
             "speaker_prior": {"mean": prior_mean.tolist(), "std": prior_std.tolist(), "weight": 4.0}}
    card = dataclasses.replace(speaker_recognizer.card, extra=extra)
    spy = InputSpy()
    adapted = EmotionRecognizer(spy, card)
    path = write_wav(tmp_path / "a.wav", tone(3.0, freq=200.0))
    raw = recognizer.features(recognizer_load(path))

    adapted.predict_file(path)  # no audio of the speaker: the average alone
    np.testing.assert_allclose(spy.seen[-1], (raw - prior_mean[:, None]) / prior_std[:, None], rtol=1e-5, atol=1e-4)

    adapted.adapt([path])  # one utterance against the average's weight of 4
    own_mean, own_var = raw.mean(axis=(0, 2))[:, None], raw.var(axis=(0, 2))[:, None]
    mean = 0.2 * own_mean + 0.8 * prior_mean[:, None]
    std = np.sqrt(0.2 * own_var + 0.8 * prior_std[:, None] ** 2)
    adapted.predict_file(path)
    np.testing.assert_allclose(spy.seen[-1], (raw - mean) / std, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------ test-time speeds
def test_test_time_speeds_pool_the_segments_of_every_copy(tmp_path, saved_model, recognizer):
    from sercal_keras import EmotionRecognizer
    from sercal_keras.audio.speed_perturbation import change_speed

    wave = tone(3.0, freq=260.0, seed=4)
    tts = EmotionRecognizer(recognizer.model, recognizer.card, test_time_speeds=(0.9, 1.1))
    assert tts.speeds == (1.0, 0.9, 1.1) and "test_time_speeds=[0.9, 1.1]" in repr(tts)
    result = tts.predict(wave, RATE)
    plain = recognizer.predict(wave, RATE)
    # the segments reported are the recorded audio's; the utterance is the mean over all copies' segments
    np.testing.assert_allclose(result.segment_probabilities, plain.segment_probabilities, atol=1e-6)
    copies = [recognizer.predict_features(recognizer.features(w))
              for w in (wave, change_speed(wave, 0.9), change_speed(wave, 1.1))]
    assert len(copies[2]) < len(copies[0])  # 2.7 s of audio at 1.1x: one segment fewer
    expected = np.concatenate(copies).mean(axis=0)
    np.testing.assert_allclose([result.probabilities[k] for k in result.labels], expected, atol=1e-5)
    assert not np.allclose(expected, copies[0].mean(axis=0), atol=1e-4)  # the copies do move the answer
    # files: batched over files like single calls, and the same as the waveform path
    paths = [write_wav(tmp_path / f"t{i}.wav", tone(2.2 + i, freq=210.0 + 30 * i, seed=i)) for i in range(3)]
    for path, batched in zip(paths, tts.predict_files(paths)):
        single = tts.predict_file(path)
        assert batched.probabilities == pytest.approx(single.probabilities, abs=1e-5)
        assert batched.segment_probabilities.shape == recognizer.predict_file(path).segment_probabilities.shape
    assert EmotionRecognizer.load(saved_model, test_time_speeds=[0.9, 1.1]).test_time_speeds == (0.9, 1.1)


@pytest.mark.parametrize("speeds", [(1.0,), (0.9, 0.9), (0.2,), (3.0,)])
def test_bad_test_time_speeds_are_refused(recognizer, speeds):
    from sercal_keras import EmotionRecognizer
    from sercal_keras.errors import ConfigError

    with pytest.raises(ConfigError, match="test_time_speeds must be distinct factors"):
        EmotionRecognizer(recognizer.model, recognizer.card, test_time_speeds=speeds)


def test_test_time_speeds_standardise_each_copy_by_the_speakers_statistics_at_that_speed(tmp_path,
                                                                                         speaker_recognizer,
                                                                                         recognizer):
    from sercal_keras import EmotionRecognizer
    from sercal_keras.audio.speed_perturbation import change_speed

    paths = [write_wav(tmp_path / f"s{i}.wav", tone(2.5 + i, freq=180.0 + 40 * i, seed=i)) for i in range(2)]
    spy = InputSpy()
    tts = EmotionRecognizer(spy, speaker_recognizer.card, test_time_speeds=(1.1,))
    tts.predict_files(paths, adapt=True)
    fast = [recognizer.features(change_speed(recognizer_load(p), 1.1)) for p in paths]
    pooled = np.concatenate(fast)
    mean, std = pooled.mean(axis=(0, 2))[:, None], pooled.std(axis=(0, 2))[:, None]
    np.testing.assert_allclose(spy.seen[-1], (pooled - mean) / std, atol=1e-4)  # the 1.1x copies, their own statistics
    assert set(tts.test_time_statistics) == {1.1}
    np.testing.assert_allclose(tts.test_time_statistics[1.1][0], mean, rtol=1e-5)
