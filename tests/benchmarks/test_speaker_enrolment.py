import numpy as np

from benchmarks.speaker_enrolment import enrolment_ua
from sercal_keras.data import SegmentSet
from sercal_keras.data.corpus import Corpus, Utterance
from sercal_keras.inference import EmotionRecognizer


class StatisticsSpy:
    """Stands in for a per-speaker `EmotionRecognizer` (its real `predict_speakers`): records the
    statistics each speaker's segments are given."""

    labels = ("neutral", "angry")
    needs_speaker_statistics = True  # a per-speaker model
    predict_speakers = EmotionRecognizer.predict_speakers

    def __init__(self):
        self.seen = []

    def predict_features(self, features, statistics):
        self.seen.append((len(features), statistics[0].ravel().copy()))
        return np.tile([0.6, 0.4], (len(features), 1)).astype(np.float32)


def tiny():
    """Two speakers, four utterances each (two neutral, two angry), two segments per utterance;
    every segment of utterance u is filled with the value u (so statistics show which were used)."""
    utterances = tuple(Utterance(f"u{i}.wav", ("neutral", "angry")[(i // 2) % 2], f"s{i // 4}", None, None, f"u{i}")
                       for i in range(8))
    corpus = Corpus("csv", ("neutral", "angry"), utterances)
    owners = np.repeat(np.arange(8), 2)
    features = np.repeat(owners[:, None, None].astype(np.float32), 3, axis=1).repeat(4, axis=2)
    labels = np.asarray(corpus.label_ids)[owners]
    return corpus, SegmentSet(features, labels, owners)


def test_statistics_come_from_the_planned_utterances_and_every_segment_is_scored():
    corpus, segments = tiny()
    spy = StatisticsSpy()
    assert enrolment_ua(spy, segments, corpus, "all", None, 1) == [0.5]  # always "neutral": UA 1/2
    assert [n for n, _ in spy.seen] == [8, 8]  # each speaker's 8 segments scored
    np.testing.assert_allclose([m[0] for _, m in spy.seen], [1.5, 5.5])  # means of utterances 0-3, 4-7

    spy.seen.clear()
    enrolment_ua(spy, segments, corpus, "neutral", None, 1)
    np.testing.assert_allclose([m[0] for _, m in spy.seen], [0.5, 4.5])  # utterances 0, 1 and 4, 5

    spy.seen.clear()
    enrolment_ua(spy, segments, corpus, "random", 1, 3)
    means = [m[0] for _, m in spy.seen]
    assert len(means) == 6 and all(float(m).is_integer() for m in means)  # one utterance each time
    assert all(0 <= m <= 3 for m in means[0::2]) and all(4 <= m <= 7 for m in means[1::2])  # the speaker's own


def test_shrinkage_mixes_means_and_variances_by_utterance_weight():
    from sercal_keras.audio.frontend import shrink_statistics
    from sercal_keras.data.speaker_normalization import speaker_prior

    prior = (np.array([[0.0]]), np.array([[1.0]]))
    mean, std = shrink_statistics((np.array([[4.0]]), np.array([[2.0]])), prior, 3, 1.0)
    np.testing.assert_allclose(mean, [[3.0]])  # 3 utterances against 1 pseudo-utterance
    np.testing.assert_allclose(std, [[np.sqrt(0.75 * 4 + 0.25 * 1)]])
    np.testing.assert_allclose(shrink_statistics(None, prior, 0)[0], [[0.0]])  # no audio: the prior
    features = np.concatenate([np.full((2, 1, 4), 1.0), np.full((2, 1, 4), 3.0)]).astype(np.float32)
    features[0, 0, 0] = 0.0  # speaker a: some spread
    segments = SegmentSet(features, np.zeros(4, np.int64), np.arange(4))
    prior_mean, prior_std = speaker_prior(segments, ["a", "a", "b", "b"])
    np.testing.assert_allclose(prior_mean.ravel(), [(0.875 + 3.0) / 2], rtol=1e-5)
    np.testing.assert_allclose(prior_std.ravel() ** 2, [(np.var([0, 1, 1, 1, 1, 1, 1, 1]) + 1e-6 + 1e-6) / 2], rtol=1e-4)
