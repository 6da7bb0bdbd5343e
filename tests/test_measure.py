"""The export stage's measuring (transfer.deploy.export.measure) and its record
(transfer.deploy.export.exporter.export_record), on predictors whose answers are known."""

import numpy as np
import pytest

from transfer.core.task import Task
from transfer.deploy.export.exporter import export_record
from transfer.deploy.export.measure import REFERENCE, measure

TASK = Task(["a", "b", "c"])
LABELS = np.array([0, 1, 2, 0, 1, 2])
RIGHT = np.eye(3)[LABELS] * 0.8 + 0.2 / 3  # every photo right, confidently


def answering(probabilities, known):
    def predict(encoded, images):
        index = images[:, 0, 0, 0].astype(int)  # each image carries its photo's index
        return probabilities[index], known[index]

    return predict


def batches():
    images = np.arange(6, dtype=np.float32)[:, None, None, None] * np.ones((6, 2, 2, 3), np.float32)
    encoded = [b"photo %d" % index for index in range(6)]
    for start in (0, 4):
        yield encoded[start : start + 4], images[start : start + 4], LABELS[start : start + 4]


def test_each_predictor_is_measured_against_its_own_reference():
    known = np.array([True, True, True, True, False, True])
    one_wrong = RIGHT.copy()
    one_wrong[0] = [0.1, 0.5, 0.4]  # photo 0 now predicted b
    drifted = one_wrong + np.array([0.0, 0.01, -0.01])  # the format's client: close to it
    other_known = known.copy()
    other_known[5] = False
    predictors = {
        REFERENCE: answering(RIGHT, known),
        "format": answering(one_wrong, known),
        "client on format": answering(drifted, other_known),
    }
    references = {"format": REFERENCE, "client on format": "format"}
    measured = measure(TASK, predictors, references, batches(), latency_images=3)
    assert measured["accuracy"] == {REFERENCE: 1.0, "format": 5 / 6, "client on format": 5 / 6}
    assert measured["agreement"]["format"] == {
        "largest_probability_difference": pytest.approx(0.8 + 0.2 / 3 - 0.1),
        "known_agreement": 1.0,
        "top_class_agreement": 5 / 6,
    }
    assert measured["agreement"]["client on format"] == {
        "largest_probability_difference": pytest.approx(0.01),
        "known_agreement": 5 / 6,
        "top_class_agreement": 1.0,
    }
    assert (measured["test_images"], measured["latency_images"]) == (6, 3)
    assert measured["known_test_share"] == 5 / 6
    assert set(measured["latency_ms"]) == set(predictors)

    client_runs = {"client on format": ("client", "format")}
    record = export_record(measured, {REFERENCE: 10, "format": 20}, client_runs)
    latency = measured["latency_ms"]["format"]
    assert record["format"] == {"size_bytes": 20, "accuracy": 5 / 6, "latency_ms": latency}
    assert set(record["parity_with_keras"]) == {"format"}
    assert record["client"]["format"]["top_class_agreement"] == 1.0
    assert record["client"]["format"]["accuracy"] == 5 / 6
