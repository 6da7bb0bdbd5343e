import numpy as np
import pytest

from transfer.calibration.temperature import (
    BINS,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    scaled,
)
from transfer.core.task import Task

BINARY, FLOWERS = Task(["cats", "dogs"]), Task(["daisy", "dandelion", "roses", "sunflowers", "tulips"])


def overconfident(task, count, temperature, seed=0):
    """Labels drawn from calibrated logits, and those logits times temperature (overconfident)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, size=(count, task.logit_width))
    probabilities = task.probabilities(logits)
    labels = np.array([rng.choice(task.num_classes, p=row) for row in probabilities])
    return labels, logits * temperature


@pytest.mark.parametrize("task", [BINARY, FLOWERS], ids=["binary", "five_classes"])
def test_a_validation_split_without_errors_keeps_the_logits_as_trained(task):
    """Every photo right: the loss falls as T falls, with no minimum; T stays 1."""
    labels, logits = overconfident(task, 300, temperature=1.0)
    right = task.predicted(task.probabilities(logits)) == labels
    assert right.sum() > 100
    assert fit_temperature(task, labels[right], logits[right]) == 1.0
    # One wrong photo among them gives the loss a minimum again: a fitted temperature below 1.
    wrong = np.flatnonzero(~right)[:1]
    keep = np.concatenate([np.flatnonzero(right), wrong])
    temperature = fit_temperature(task, labels[keep], logits[keep])
    assert 0.02 < temperature < 1.0


@pytest.mark.parametrize("task", [BINARY, FLOWERS], ids=["binary", "five_classes"])
def test_the_fitted_temperature_undoes_an_overconfident_scale(task):
    labels, logits = overconfident(task, 20_000, temperature=3.0)
    temperature = fit_temperature(task, labels, logits)
    assert temperature == pytest.approx(3.0, rel=0.05)
    held_out_labels, held_out = overconfident(task, 5_000, temperature=3.0, seed=1)
    before = expected_calibration_error(task, held_out_labels, held_out)
    after = expected_calibration_error(task, held_out_labels, scaled(held_out, temperature))
    assert after < before / 3
    assert task.cross_entropy(held_out_labels, scaled(held_out, temperature)) < task.cross_entropy(
        held_out_labels, held_out
    )


@pytest.mark.parametrize("task", [BINARY, FLOWERS], ids=["binary", "five_classes"])
def test_scaling_changes_no_decision(task):
    _, logits = overconfident(task, 500, temperature=2.0)
    for temperature in (0.3, 1.7, 40.0):
        np.testing.assert_array_equal(
            task.predicted(task.probabilities(scaled(logits, temperature))),
            task.predicted(task.probabilities(logits)),
        )


def test_ece_is_the_weighted_gap_between_confidence_and_accuracy_per_bin():
    # Four photos at confidence 0.9 (three right) and two at 0.6 (both right), K = 5.
    def logits_with_confidence(confidence, predicted):
        probabilities = np.full(5, (1 - confidence) / 4)
        probabilities[predicted] = confidence
        return np.log(probabilities)

    logits = np.stack([logits_with_confidence(0.9, 0)] * 4 + [logits_with_confidence(0.6, 2)] * 2)
    labels = np.array([0, 0, 0, 1, 2, 2])
    bins = reliability_bins(FLOWERS, labels, logits)
    assert [(row["images"], round(row["accuracy"], 6)) for row in bins] == [(2, 1.0), (4, 0.75)]
    assert [row["bin"] for row in bins] == [int(np.ceil(0.6 * BINS)) - 1, int(np.ceil(0.9 * BINS)) - 1]
    assert expected_calibration_error(FLOWERS, labels, logits) == pytest.approx((4 * 0.15 + 2 * 0.4) / 6)


def test_the_report_gives_both_splits_before_and_after():
    labels, logits = overconfident(BINARY, 2_000, temperature=2.5)
    temperature = fit_temperature(BINARY, labels[:1000], logits[:1000])
    report = calibration_report(
        BINARY,
        temperature,
        {"test": (labels[1000:], logits[1000:]), "validation": (labels[:1000], logits[:1000])},
    )
    assert report["temperature"] == temperature and report["bins"] == BINS
    for split in ("test", "validation"):
        assert report[split]["ece_after"] < report[split]["ece_before"]
        assert report[split]["log_loss_after"] < report[split]["log_loss_before"]
