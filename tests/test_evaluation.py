import numpy as np
import pytest

from tests.conftest import BINARY, binary_metrics, make_image_folder
from transfer.core.task import Task, mean_probability_logit
from transfer.data.shards import read_shards
from transfer.data.sources.folder import prepare_folder
from transfer.inference.runners import KerasRunner, with_mirror
from transfer.models.networks import build_base, build_classifier, build_head
from transfer.reporting.evaluation import (
    evaluation_report,
    images_by_id,
    most_confidently_wrong,
    predict_split,
    prediction_rows,
)
from transfer.reporting.mistakes import mistake_rows


def test_prediction_rows_score_is_the_predicted_class_probability():
    rows = prediction_rows(BINARY, np.array([[2.0], [-1.0], [0.0]]), np.array([1, 1, 0]), ["a", "b", "c"])
    assert [(row["true_label"], row["predicted_label"]) for row in rows] == [
        ("dog", "dog"),
        ("dog", "cat"),
        ("cat", "cat"),
    ]
    assert rows[0]["score"] == pytest.approx(1 / (1 + np.exp(-2)), abs=1e-6)
    assert rows[1]["score"] == pytest.approx(1 - 1 / (1 + np.exp(1)), abs=1e-6)
    assert rows[2]["score"] == 0.5  # probability 0.5 is not above the threshold: class 0


def test_most_confidently_wrong_first():
    logits = np.array([[3.0], [-4.0], [1.0], [-0.5], [2.0]])
    labels = np.array([0, 1, 0, 0, 1])  # wrong: 0 (dog 0.95), 1 (cat 0.98), 2 (dog 0.73)
    rows = prediction_rows(BINARY, logits, labels, ["a", "b", "c", "d", "e"])
    assert [row["id"] for row in most_confidently_wrong(rows, 10)] == ["b", "a", "c"]
    assert [row["id"] for row in most_confidently_wrong(rows, 2)] == ["b", "a"]


def test_report_agrees_with_the_predictions_table():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50).astype(float)
    logits = (rng.normal(size=50) + (labels * 2 - 1))[:, None]
    report = evaluation_report(BINARY, logits - 0.3, labels, logits, labels)
    rows = prediction_rows(BINARY, logits, labels, [str(i) for i in range(50)])
    correct = sum(row["true_label"] == row["predicted_label"] for row in rows)
    assert report["finetuned"]["accuracy"] == pytest.approx(correct / 50)
    predicted_dogs = [row for row in rows if row["predicted_label"] == "dog"]
    dog_precision = sum(row["true_label"] == "dog" for row in predicted_dogs) / len(predicted_dogs)
    assert report["finetuned"]["per_class"]["dog"]["precision"] == pytest.approx(dog_precision)
    assert report["head"] == binary_metrics(labels, logits - 0.3)
    assert report["test_images"] == 50 and report["threshold"] == 0.5
    assert "validation" not in report
    validation = evaluation_report(BINARY, logits, labels, logits, labels, (logits[:20], labels[:20]))
    expected = binary_metrics(labels[:20], logits[:20])
    assert validation["validation"] == {
        "accuracy": expected["accuracy"],
        "loss": expected["loss"],
        "images": 20,
        "balanced_accuracy": expected["balanced_accuracy"],
    }
    with pytest.raises(ValueError, match="disagree"):
        evaluation_report(BINARY, logits, 1 - labels, logits, labels)


def test_a_split_without_a_class_is_said_in_the_report_and_on_stderr(capsys):
    logits = np.array([2.0, -1.0, 3.0, 0.5])
    labels = np.array([1, 1, 1, 1])  # no cat in the test split
    report = evaluation_report(BINARY, logits, labels, logits, labels, (logits, np.array([0, 1, 0, 1])))
    assert report["finetuned"]["classes_missing"] == ["cat"] and "classes_missing" not in report["validation"]
    err = capsys.readouterr().err
    assert err.startswith("warning: the test split has no photo of cat: its figures cover the other classes")


def test_k_class_report_and_rows_name_the_most_probable_class():
    task = Task(["a", "b", "c"])
    logits = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.5, 0.0]])
    labels = np.array([0, 1, 1])
    rows = prediction_rows(task, logits, labels, ["x", "y", "z"])
    assert [row["predicted_label"] for row in rows] == ["a", "c", "b"]
    assert rows[1]["score"] == pytest.approx(task.probabilities(logits)[1, 2], abs=1e-6)
    report = evaluation_report(task, logits, labels, logits, labels)
    assert report["finetuned"]["accuracy"] == pytest.approx(2 / 3)
    assert report["classes"] == 3 and "threshold" not in report


def test_predict_split_and_images_by_id(tmp_path, monkeypatch):
    monkeypatch.setattr("transfer.data.shards.SHARD_BYTES", 32 * 32 * 3 * 4)
    root = make_image_folder(tmp_path / "images", per_class=14)
    prepare_folder(root, tmp_path / "prepared", 32, [0.5, 0.25, 0.25], seed=0)
    model = build_classifier(build_base(32, "none"), build_head())
    logits, labels, ids = predict_split(
        KerasRunner(model), BINARY, tmp_path / "prepared", "train", batch_size=3
    )
    shards = list(read_shards(tmp_path / "prepared", "train"))
    images = np.concatenate([shard[0] for shard in shards])
    np.testing.assert_allclose(logits, model.predict(images, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(labels, np.concatenate([shard[1] for shard in shards]))
    picked = images_by_id(tmp_path / "prepared", "train", [ids[-1], ids[0]])
    np.testing.assert_array_equal(picked[0], images[-1])
    np.testing.assert_array_equal(picked[1], images[0])


def test_tta_averages_each_image_with_its_left_right_mirror():
    # A stand-in model whose logit is an image's left-most column value; the
    # mirror's is then its right-most.
    images = np.zeros((2, 4, 4, 3), "float32")
    images[0, :, 0], images[1, :, 0] = 1.0, -3.0  # left-most columns
    images[0, :, -1], images[1, :, -1] = 3.0, 2.0  # right-most columns
    averaged = with_mirror(lambda batch: {"logits": batch[:, 0, 0, :1]}, BINARY)(images)
    expected = mean_probability_logit([1.0, -3.0], [3.0, 2.0])
    np.testing.assert_allclose(averaged["logits"].reshape(-1), expected)


def test_predict_split_with_tta_uses_the_mirror(tmp_path, shared_weights):
    import keras

    root = make_image_folder(tmp_path / "images", per_class=14)
    prepare_folder(root, tmp_path / "prepared", 32, [0.5, 0.25, 0.25], seed=0)
    keras.utils.set_random_seed(0)  # real base, random head: varied logits
    model = build_classifier(build_base(32, str(shared_weights)), build_head())
    plain, _, _ = predict_split(KerasRunner(model), BINARY, tmp_path / "prepared", "train", batch_size=4)
    tta, _, _ = predict_split(
        KerasRunner(model), BINARY, tmp_path / "prepared", "train", batch_size=4, tta=True
    )
    images = np.concatenate([shard[0] for shard in read_shards(tmp_path / "prepared", "train")])
    mirrored = model.predict(images[:, :, ::-1], verbose=0)
    assert np.ptp(plain) > 0.1
    np.testing.assert_allclose(tta, mean_probability_logit(plain, mirrored), rtol=1e-4, atol=1e-5)
    assert not np.allclose(tta, plain, rtol=1e-3, atol=1e-3)


def test_mistakes_are_the_wrong_then_the_rejected_photos_with_calibrated_probabilities():
    logits = np.array([[3.0], [-4.0], [1.0], [-0.5], [2.0]])
    labels = np.array([0, 1, 0, 0, 1])  # wrong: 0, 1, 2
    novelty = np.array([0.1, 0.2, 0.9, 0.8, 0.3])  # above 0.5: rejected (2 and 3)
    splits = {"test": (logits, labels, ["a", "b", "c", "d", "e"])}
    rows = mistake_rows(BINARY, 2.0, 0.5, splits, {"test": novelty})
    assert [row["path"] for row in rows] == ["b", "a", "c", "d"]  # most confidently wrong first
    assert rows[0]["probability"] == pytest.approx(1 - 1 / (1 + np.exp(4.0 / 2.0)), abs=1e-6)  # T = 2
    assert [row["known"] for row in rows] == [True, True, False, False]
    assert rows[3] == {
        "split": "test", "path": "d", "true": "cat", "predicted": "cat",
        "probability": pytest.approx(1 - 1 / (1 + np.exp(0.25)), abs=1e-6), "known": False, "novelty": 0.8,
    }  # fmt: skip
