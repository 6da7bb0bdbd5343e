import itertools

import numpy as np
import pytest
from PIL import Image

from transfer.reports import binary_metrics, plot_learning_curves, plot_samples, roc_auc


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
    for name in ("samples.png", "curves.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 300
