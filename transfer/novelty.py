"""Photos of none of the classes: a novelty score per photo, and the threshold above which
a photo is called unknown. NumPy only (a .tflite `predict` never loads TensorFlow).

Three scores, a small registry (calibrate.novelty picks one), each computed from the
fine-tuned model's own outputs; docs/novelty.md has what each scores on the shared proxies.

- knn (the default): 1 − the cosine similarity of a photo's pooled features to its
  k-th nearest training photo (Sun et al., 2022). Stored as `bank`, the unit-length
  features of up to calibrate.bank_size training photos; the score is a matrix product
  and a top-k, the same arithmetic in NumPy, Keras, the SavedModel and TFLite.
- mahalanobis: the distance of the pooled features to the nearest class mean, with one
  covariance shared by the classes (Lee et al., 2018), Ledoit-Wolf shrunk (1,280
  features from a few thousand photos would give a singular estimate). Stored whitened:
  `whitening` W (W Wᵀ = Σ⁻¹) and `centers`, the class means times W: min_c ‖f W − μ_c W‖.
  Its size does not grow with the training set, but it separates the flowers proxy less well.
- max_probability: 1 − the largest calibrated probability (Hendrycks and Gimpel, 2017).
  Needs nothing beyond the logits, but for two classes a photo of neither is often
  confidently one of them: it rejects far fewer.

Higher is more novel. The threshold is the validation split's `accept` quantile, taken
so that at least that share of in-class validation photos is accepted (novelty <= it).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from transfer.errors import PipelineError
from transfer.neighbours import unit_rows


def fit_knn(features, labels, num_classes, settings, seed):
    """{'bank': the unit-length features of at most settings['bank_size'] training photos (a
    seeded random choice when there are more), float32}."""
    features = np.asarray(features)
    if len(features) > settings["bank_size"]:
        chosen = np.random.default_rng(seed).choice(len(features), settings["bank_size"], replace=False)
        features = features[np.sort(chosen)]
    return {"bank": unit_rows(features)}


def knn_scores(features, probabilities, statistics, settings):
    """1 - the cosine similarity of each row of features to its k-th nearest bank row (N,)."""
    bank = statistics["bank"].astype(np.float64)
    similarities = unit_rows(features).astype(np.float64) @ bank.T
    k = min(settings["neighbours"], len(bank))
    return 1 - np.partition(similarities, len(bank) - k, axis=1)[:, len(bank) - k]


def fit_mahalanobis(features, labels, num_classes, settings=None, seed=None):
    """{'whitening': D x D, 'centers': K x D (the class means, whitened)}, float32."""
    from sklearn.covariance import LedoitWolf

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    missing = [index for index in range(num_classes) if not np.any(labels == index)]
    if missing:
        raise PipelineError(f"cannot fit the novelty score: no training photo of class index {missing[0]}")
    means = np.stack([features[labels == index].mean(axis=0) for index in range(num_classes)])
    covariance = LedoitWolf(assume_centered=True).fit(features - means[labels]).covariance_
    whitening = np.linalg.cholesky(np.linalg.inv(covariance))
    return {
        "whitening": whitening.astype(np.float32),
        "centers": (means @ whitening).astype(np.float32),
    }


def mahalanobis_scores(features, probabilities, statistics, settings=None):
    """The distance of each row of features to its nearest class mean (N,)."""
    whitened = np.asarray(features, dtype=np.float64) @ statistics["whitening"].astype(np.float64)
    centers = statistics["centers"].astype(np.float64)
    squared = ((whitened[:, np.newaxis, :] - centers[np.newaxis]) ** 2).sum(axis=-1)
    return np.sqrt(squared.min(axis=1))


def max_probability_scores(features, probabilities, statistics=None, settings=None):
    return 1 - np.asarray(probabilities, dtype=np.float64).max(axis=1)


@dataclass(frozen=True)
class NoveltyMethod:
    """fit(features, labels, num_classes, settings, seed) -> statistics (name -> array);
    scores(features, calibrated probabilities, statistics, settings) -> (N,), higher more novel.
    settings: calibration.json's `novelty` (see settings)."""

    name: str
    uses_features: bool  # pooled features of the training photos are needed to fit it
    fit: Callable
    scores: Callable
    keys: tuple = ()  # the calibrate section's keys that this method reads

    def settings(self, config):
        """calibration.json's `novelty` before its threshold: the method, `accept`, and the
        method's own keys from params.yaml's calibrate section."""
        return {"method": self.name, "accept": config["accept"], **{key: config[key] for key in self.keys}}


METHODS = {
    "knn": NoveltyMethod("knn", True, fit_knn, knn_scores, keys=("neighbours", "bank_size")),
    "mahalanobis": NoveltyMethod("mahalanobis", True, fit_mahalanobis, mahalanobis_scores),
    "max_probability": NoveltyMethod("max_probability", False, lambda *arguments: {}, max_probability_scores),
}


def get_method(name):
    if name not in METHODS:
        raise PipelineError(f"unknown novelty method {name!r}: one of {', '.join(METHODS)}")
    return METHODS[name]


def threshold_accepting(scores, accept):
    """A threshold at or below which at least `accept` of scores fall: halfway between the
    last score it must accept and the next, so that the few-ulp differences between NumPy's
    float64 and a float32 graph (or TFLite) do not move a photo across it."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    last = max(0, int(np.ceil(accept * len(scores))) - 1)
    if last + 1 == len(scores):
        return float(scores[last])
    return float((scores[last] + scores[last + 1]) / 2)


def accepted_share(scores, threshold):
    return float(np.mean(np.asarray(scores) <= threshold)) if len(scores) else None


def auroc(known_scores, unknown_scores):
    """Probability that an unknown photo scores above a known one (ties count half)."""
    known, unknown = np.asarray(known_scores, np.float64), np.asarray(unknown_scores, np.float64)
    order = np.argsort(np.concatenate([known, unknown]), kind="stable")
    ranks = np.empty(len(order))
    values = np.concatenate([known, unknown])[order]
    # Average ranks over ties, then the Mann-Whitney U statistic of the unknown scores.
    starts = np.r_[0, np.flatnonzero(np.diff(values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    unknown_ranks = ranks[len(known) :].sum()
    return float((unknown_ranks - len(unknown) * (len(unknown) + 1) / 2) / (len(known) * len(unknown)))
