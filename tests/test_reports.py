import itertools

import numpy as np
import pytest
from PIL import Image

from transfer.reports import (
    binary_metrics,
    mean_probability_logit,
    plot_learning_curves,
    plot_misclassified,
    plot_samples,
    precision_recall_points,
    roc_auc,
    roc_points,
    sigmoid,
)


def test_binary_metrics_on_known_logits():
    labels = [1, 1, 1, 0, 0, 0]
    logits = [2.0, 0.5, -1.0, -3.0, 0.2, -0.1]  # TP, TP, FN, TN, FP, TN
    metrics = binary_metrics(labels, logits)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    probabilities = 1 / (1 + np.exp(-np.array(logits)))
    expected_loss = -np.mean(
        np.where(np.array(labels) == 1, np.log(probabilities), np.log(1 - probabilities))
    )
    assert metrics["loss"] == pytest.approx(expected_loss)
    assert metrics["auc"] == pytest.approx(7 / 9)  # pairs: 2 and 0.5 beat all, -1 beats -3


def test_loss_is_finite_for_extreme_logits():
    assert np.isfinite(binary_metrics([1, 0], [1000.0, 1000.0])["loss"])


def test_roc_auc_equals_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 10, 200).astype(float)  # many ties
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p, n in itertools.product(scores[labels == 1], scores[labels == 0])
    ]
    assert roc_auc(labels, scores) == pytest.approx(np.mean(pairs))


def test_plots_are_written_as_png(tmp_path):
    images = np.zeros((4, 16, 16, 3), np.uint8)
    plot_samples(images, [0, 1, 0, 1], ["cats", "dogs"], tmp_path / "samples.png")
    history = [
        {"epoch": 1, "accuracy": 0.6, "val_accuracy": 0.7, "loss": 0.9, "val_loss": 0.8},
        {"epoch": 2, "accuracy": 0.8, "val_accuracy": 0.8, "loss": 0.5, "val_loss": 0.6},
        {"epoch": 3, "accuracy": 0.9, "val_accuracy": 0.85, "loss": 0.3, "val_loss": 0.4},
    ]
    plot_learning_curves(history, tmp_path / "curves.png", fine_tune_start=2)
    plot_misclassified(images[:3], ["true cats\npredicted dogs (0.97)"] * 3, tmp_path / "wrong.png")
    plot_misclassified([], [], tmp_path / "none_wrong.png")
    for name in ("samples.png", "curves.png", "wrong.png", "none_wrong.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 300


def test_per_class_metrics_cover_both_classes():
    labels = [1, 1, 1, 0, 0, 0]
    logits = [2.0, 0.5, -1.0, -3.0, 0.2, -0.1]
    per_class = binary_metrics(labels, logits, ["cat", "dog"])["per_class"]
    # cat: predicted cat for 3 images (-1.0, -3.0, -0.1), 2 of them cats; 3 cats in all.
    assert per_class["cat"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert per_class["dog"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    skewed = binary_metrics([1, 1, 0, 0], [1.0, 1.0, 1.0, -1.0], ["cat", "dog"])["per_class"]
    assert skewed["cat"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    assert skewed["dog"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8})


def test_roc_and_precision_recall_points():
    labels = [1, 0, 1, 0]
    scores = [0.9, 0.8, 0.7, 0.1]
    roc = [(row["fpr"], row["tpr"]) for row in roc_points(labels, scores)]
    assert roc == [(0, 0), (0, 0.5), (0.5, 0.5), (0.5, 1), (1, 1)]
    pr = [(row["recall"], row["precision"]) for row in precision_recall_points(labels, scores)]
    assert pr == pytest.approx([(0.5, 1), (0.5, 0.5), (1, 2 / 3), (1, 0.5)])


def test_tied_scores_make_one_curve_point():
    rows = roc_points([1, 0, 1], [0.5, 0.5, 0.2])
    assert [(row["fpr"], row["tpr"]) for row in rows] == [(0, 0), (1, 0.5), (1, 1)]


def test_mean_probability_logit_is_the_logit_of_the_mean_probability():
    a, b = np.array([0.5, -2.0, 3.0]), np.array([1.5, 1.0, 3.0])
    mean = (sigmoid(a) + sigmoid(b)) / 2
    np.testing.assert_allclose(mean_probability_logit(a, b), np.log(mean / (1 - mean)))


def test_mean_probability_logit_stays_finite_for_confident_logits():
    logits = mean_probability_logit([100.0, -100.0, 100.0], [120.0, -90.0, -100.0])
    assert np.all(np.isfinite(logits))
    assert logits[0] > 90 and logits[1] < -80 and logits[2] == pytest.approx(0.0)
