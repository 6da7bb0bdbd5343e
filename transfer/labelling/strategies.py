"""Which unlabelled photos to label next, one function per strategy and a registry by name
(params.yaml's select.strategy).

Each strategy sees the pool as the model sees it now — every photo's features (the backbone's,
L2-normalised) and calibrated class probabilities — and returns `batch` row indices, best
first, with a short reason for each (what to_label.csv's `why` column says):

- random: a seeded random choice, the baseline.
- typical: the photo nearest the centre of each of `batch` k-means clusters of the pool's
  features (TypiClust's idea, simplified): what the pool mostly looks like, for the first
  rounds, when the model's own uncertainty means little.
- margin: the smallest margin between the two most probable classes.
- diverse: k-means over the DIVERSE_POOL x batch smallest margins, the smallest margin of each
  cluster: uncertain photos that are not all alike.
- auto: typical while the labelled set is small, diverse after (AUTO_TYPICAL_BELOW, measured
  by benchmarks/active_learning.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DIVERSE_POOL = 10
# Labelled photos per class below which auto picks typical photos, above which diverse ones.
AUTO_TYPICAL_BELOW = 5


def margins(probabilities):
    top_two = np.sort(np.asarray(probabilities, np.float64), axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def k_means(features, clusters, seed):
    """(cluster of each row, centres) of scikit-learn's k-means, seeded."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=clusters, n_init=1, random_state=seed).fit(features)
    return model.labels_, model.cluster_centers_


def choose_random(pool, batch, seed):
    chosen = np.random.default_rng(seed).choice(len(pool.features), batch, replace=False)
    return chosen, ["random"] * batch


def choose_typical(pool, batch, seed):
    clusters, centres = k_means(pool.features, batch, seed)
    chosen, reasons = [], []
    sizes = np.bincount(clusters, minlength=batch)
    for cluster in np.argsort(-sizes, kind="stable"):  # the largest clusters first
        members = np.flatnonzero(clusters == cluster)
        distance = np.linalg.norm(pool.features[members] - centres[cluster], axis=1)
        chosen.append(int(members[np.argmin(distance)]))
        reasons.append(f"typical: the centre of {len(members)} alike photos")
    return np.array(chosen), reasons


def choose_margin(pool, batch, seed):
    margin = margins(pool.probabilities)
    chosen = np.argsort(margin, kind="stable")[:batch]
    return chosen, [f"uncertain: margin {margin[row]:.3f}" for row in chosen]


def choose_diverse(pool, batch, seed):
    margin = margins(pool.probabilities)
    candidates = np.argsort(margin, kind="stable")[: DIVERSE_POOL * batch]
    if len(candidates) <= batch:
        return choose_margin(pool, batch, seed)
    clusters, _ = k_means(pool.features[candidates], batch, seed)
    chosen = [candidates[clusters == cluster][0] for cluster in range(batch)]  # its smallest margin
    chosen = np.array(sorted(chosen, key=lambda row: margin[row]))
    return chosen, [f"uncertain and unlike the others: margin {margin[row]:.3f}" for row in chosen]


def choose_auto(pool, batch, seed):
    per_class = pool.labelled / max(pool.probabilities.shape[1], 1)
    strategy = choose_typical if per_class < AUTO_TYPICAL_BELOW else choose_diverse
    return strategy(pool, batch, seed)


@dataclass(frozen=True)
class Pool:
    features: np.ndarray  # N x D, L2-normalised
    probabilities: np.ndarray  # N x K, calibrated
    labelled: int  # photos labelled so far (the training set)


@dataclass(frozen=True)
class Strategy:
    name: str
    choose: Callable  # (Pool, batch, seed) -> (row indices, reasons)


STRATEGIES = {
    strategy.name: strategy
    for strategy in (
        Strategy("auto", choose_auto),
        Strategy("random", choose_random),
        Strategy("typical", choose_typical),
        Strategy("margin", choose_margin),
        Strategy("diverse", choose_diverse),
    )
}


def normalised(features):
    features = np.asarray(features, np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def select(strategy, features, probabilities, labelled, batch, seed):
    """(row indices, reasons) of the `batch` photos to label next (all of them if fewer)."""
    pool = Pool(normalised(features), np.asarray(probabilities, np.float64), labelled)
    batch = min(batch, len(pool.features))
    if batch == 0:
        return np.empty(0, np.int64), []
    return STRATEGIES[strategy].choose(pool, batch, seed)
