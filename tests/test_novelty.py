import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from transfer.calibration.novelty import (
    accepted_share,
    all_methods,
    get_method,
    knn,
    mahalanobis,
    max_probability,
    threshold_accepting,
)
from transfer.config.schema import NOVELTY_METHODS
from transfer.core.errors import PipelineError
from transfer.reporting.metrics import roc_auc

fit_knn, knn_scores = knn.fit, knn.scores
fit_mahalanobis, mahalanobis_scores = mahalanobis.fit, mahalanobis.scores
max_probability_scores = max_probability.scores


def auroc(known, unknown):
    """The probability that an unknown photo scores above a known one: as evaluate reports it."""
    return roc_auc(np.r_[np.zeros(len(known)), np.ones(len(unknown))], np.r_[known, unknown])


def two_classes(rng, count=400, width=6):
    """Two Gaussian classes sharing a correlated covariance."""
    mixing = rng.normal(size=(width, width))
    labels = np.repeat([0, 1], count // 2)
    means = np.stack([np.zeros(width), np.full(width, 3.0)])
    features = means[labels] + rng.normal(size=(count, width)) @ mixing
    return features, labels, means, mixing.T @ mixing


def test_the_score_is_the_mahalanobis_distance_to_the_nearest_class_mean():
    rng = np.random.default_rng(0)
    features, labels, _, _ = two_classes(rng)
    statistics = fit_mahalanobis(features, labels, 2)
    # Recomputed the textbook way from the statistics' own covariance (W Wt = inverse).
    whitening = statistics["whitening"].astype(np.float64)
    precision = whitening @ whitening.T
    means = np.linalg.solve(whitening.T, statistics["centers"].astype(np.float64).T).T
    probe = rng.normal(size=(5, features.shape[1])) * 4
    expected = np.min(
        [np.sqrt(np.einsum("ij,jk,ik->i", probe - mean, precision, probe - mean)) for mean in means], axis=0
    )
    np.testing.assert_allclose(mahalanobis_scores(probe, None, statistics), expected, rtol=1e-4)
    # The class means are the training photos' means.
    np.testing.assert_allclose(means, [features[labels == c].mean(0) for c in (0, 1)], atol=1e-4)


def test_photos_far_from_every_class_score_higher_than_in_class_ones():
    rng = np.random.default_rng(1)
    features, labels, means, covariance = two_classes(rng)
    statistics = fit_mahalanobis(features, labels, 2)
    held_out, _, _, _ = two_classes(np.random.default_rng(2))
    # Away from both classes, and spread as they are: no further in Euclidean terms than they are apart.
    shift = np.array([-6.0, 6.0] * 3)
    elsewhere = rng.normal(size=(200, features.shape[1])) @ np.linalg.cholesky(covariance).T * 0.3 + shift
    known = mahalanobis_scores(held_out, None, statistics)
    unknown = mahalanobis_scores(elsewhere, None, statistics)
    threshold = threshold_accepting(known, 0.95)
    assert accepted_share(known, threshold) >= 0.95
    assert np.mean(unknown > threshold) > 0.9
    assert auroc(known, unknown) > 0.95


def test_a_class_without_training_photos_is_one_clear_error():
    with pytest.raises(PipelineError, match="no training photo of class index 2"):
        fit_mahalanobis(np.ones((4, 3)), [0, 1, 0, 1], 3)


@pytest.mark.parametrize("accept", [0.5, 0.9, 0.95, 0.99])
def test_the_threshold_accepts_at_least_the_share_asked_and_sits_between_two_scores(accept):
    scores = np.random.default_rng(3).normal(size=275)
    threshold = threshold_accepting(scores, accept)
    assert accepted_share(scores, threshold) >= accept
    # Strictly between two scores: a few ulps either way move no photo across it.
    assert not np.any(np.isclose(scores, threshold, rtol=0, atol=1e-9))
    assert accepted_share(scores, np.nextafter(threshold, -np.inf)) == accepted_share(scores, threshold)


def test_auroc_is_the_rank_statistic_sklearn_computes_ties_included():
    rng = np.random.default_rng(4)
    known, unknown = rng.integers(0, 5, 50).astype(float), rng.integers(2, 8, 30).astype(float)
    expected = roc_auc_score(np.r_[np.zeros(50), np.ones(30)], np.r_[known, unknown])
    assert auroc(known, unknown) == pytest.approx(expected, abs=1e-12)


def test_max_probability_is_one_minus_the_top_probability():
    np.testing.assert_allclose(max_probability_scores(None, [[0.2, 0.8], [0.5, 0.5]]), [0.2, 0.5])


def test_the_params_schema_names_every_method_and_each_is_its_own_module():
    assert [method.name for method in all_methods()] == list(NOVELTY_METHODS)
    with pytest.raises(PipelineError, match="unknown novelty method 'energy'"):
        get_method("energy")


def test_knn_is_one_minus_the_cosine_similarity_to_the_kth_nearest_training_photo():
    rng = np.random.default_rng(5)
    train, probe = rng.normal(size=(50, 8)), rng.normal(size=(7, 8))
    settings = {"neighbours": 3, "bank_size": 100}
    statistics = fit_knn(train, None, 2, settings, seed=0)
    unit = lambda rows: rows / np.linalg.norm(rows, axis=1, keepdims=True)  # noqa: E731
    similarities = unit(probe) @ unit(train).T
    expected = 1 - np.sort(similarities, axis=1)[:, -3]
    np.testing.assert_allclose(knn_scores(probe, None, statistics, settings), expected, atol=1e-6)
    # A training photo itself is at distance 0 from its nearest neighbour.
    nearest = knn_scores(train[:4], None, statistics, {"neighbours": 1})
    np.testing.assert_allclose(nearest, 0, atol=1e-6)


def test_the_knn_bank_keeps_a_seeded_choice_of_at_most_bank_size_photos():
    train = np.random.default_rng(6).normal(size=(40, 4))
    settings = {"neighbours": 2, "bank_size": 10}
    first, again = (fit_knn(train, None, 2, settings, seed=1)["bank"] for _ in range(2))
    assert first.shape == (10, 4) and np.array_equal(first, again)
    assert not np.array_equal(first, fit_knn(train, None, 2, settings, seed=2)["bank"])
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1, atol=1e-6)
