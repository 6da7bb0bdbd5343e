import itertools

import numpy as np
import pytest

from tests.conftest import BINARY, binary_metrics
from transfer.core.task import Task
from transfer.reporting.metrics import (
    classification_metrics,
    one_vs_rest_curves,
    precision_recall_points,
    roc_auc,
    roc_points,
    summary_curve_scores,
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


def test_per_class_metrics_cover_both_classes():
    labels = [1, 1, 1, 0, 0, 0]
    logits = [2.0, 0.5, -1.0, -3.0, 0.2, -0.1]
    per_class = binary_metrics(labels, logits)["per_class"]
    # cat: predicted cat for 3 images (-1.0, -3.0, -0.1), 2 of them cats; 3 cats in all.
    assert per_class["cat"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert per_class["dog"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    skewed = binary_metrics([1, 1, 0, 0], [1.0, 1.0, 1.0, -1.0])["per_class"]
    assert skewed["cat"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert skewed["dog"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})


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


def test_binary_keeps_its_keys_and_adds_macro_figures():
    metrics = binary_metrics([1, 1, 1, 0, 0, 0], [2.0, 0.5, -1.0, -3.0, 0.2, -0.1])
    assert {"accuracy", "loss", "precision", "recall", "f1", "auc", "per_class"} <= set(metrics)
    assert metrics["balanced_accuracy"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx(2 / 3)


FLOWERS = Task(["daisy", "dandelion", "roses", "sunflowers", "tulips", "lilies", "irises"])


def test_k_class_metrics_on_known_logits():
    task = Task(["a", "b", "c"])
    labels = [0, 0, 1, 1, 2, 2, 2]
    predicted = [0, 1, 1, 1, 2, 0, 2]  # a: 1/2 right, b: 2/2, c: 2/3
    logits = np.eye(3)[predicted] * 4.0
    metrics = classification_metrics(task, labels, logits)
    assert metrics["accuracy"] == pytest.approx(5 / 7)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert metrics["per_class"]["a"] == pytest.approx(
        {"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2}
    )
    assert metrics["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert metrics["per_class"]["c"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert metrics["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics["macro_f1"] == pytest.approx((1 / 2 + 0.8 + 0.8) / 3)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert metrics["loss"] == pytest.approx(-np.mean(log_probabilities[np.arange(7), labels]))
    assert "precision" not in metrics and "top5_accuracy" not in metrics  # three classes: top-5 is trivial
    per_class_auc = [roc_auc(np.array(labels) == c, logits[:, c]) for c in range(3)]
    assert metrics["auc"] == pytest.approx(np.mean(per_class_auc))


def test_a_class_without_test_images_is_left_out_of_every_macro_figure():
    task = Task(["a", "b", "c"])
    labels = [0, 0, 1, 1]  # no image of c
    predicted = [0, 2, 1, 1]  # one a taken for a c
    metrics = classification_metrics(task, labels, np.eye(3)[predicted] * 4.0)
    assert metrics["per_class"]["c"]["support"] == 0
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 1) / 2)
    assert metrics["macro_recall"] == metrics["balanced_accuracy"]
    assert metrics["macro_precision"] == pytest.approx((1 + 1) / 2)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert metrics["classes_missing"] == ["c"]


def test_classes_missing_appears_only_when_a_class_is_missing():
    assert "classes_missing" not in binary_metrics([0, 1, 1], [-1.0, 2.0, 0.5])
    metrics = binary_metrics([1, 1, 1], [-1.0, 2.0, 0.5])  # no cat: accuracy 2/3, AUC undefined
    assert metrics["classes_missing"] == ["cat"] and np.isnan(metrics["auc"])


def test_top5_accuracy_when_more_than_five_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 300)
    logits = rng.normal(size=(300, 7))
    metrics = classification_metrics(FLOWERS, labels, logits)
    ranks = [int(np.sum(row > row[label])) for row, label in zip(logits, labels)]
    assert metrics["top5_accuracy"] == pytest.approx(np.mean(np.array(ranks) < 5))
    assert metrics["accuracy"] < metrics["top5_accuracy"] < 1


def test_one_vs_rest_curves_have_a_class_column_and_match_each_class():
    task = Task(["a", "b", "c"])
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 40)
    logits = rng.normal(size=(40, 3)) + 2 * np.eye(3)[labels]
    roc, precision_recall = one_vs_rest_curves(task, labels, logits)
    assert {row["class"] for row in roc} == {row["class"] for row in precision_recall} == {"a", "b", "c"}
    probabilities = task.probabilities(logits)
    expected = roc_points((labels == 1).astype(float), probabilities[:, 1])
    assert [(r["fpr"], r["tpr"]) for r in roc if r["class"] == "b"] == [
        (r["fpr"], r["tpr"]) for r in expected
    ]


def test_summary_curve_is_the_positive_class_for_two_and_micro_average_for_more():
    labels, scores = summary_curve_scores(BINARY, [0, 1], [[-1.0], [2.0]])
    np.testing.assert_allclose(scores, 1 / (1 + np.exp([1.0, -2.0])))
    task = Task(["a", "b", "c"])
    labels, scores = summary_curve_scores(task, [2, 0], np.zeros((2, 3)))
    assert labels.tolist() == [0, 0, 1, 1, 0, 0] and np.allclose(scores, 1 / 3)
