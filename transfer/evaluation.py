"""Test-split predictions of both models, and what is reported about them."""

import numpy as np

from transfer.data import fixed_batches, read_shards
from transfer.litert import TFLiteModel, keras_file_as_tflite
from transfer.metrics import classification_metrics
from transfer.task import THRESHOLD

PREDICTION_COLUMNS = ("id", "true_label", "predicted_label", "score")


def with_mirror(logits_of, task):
    """Test-time augmentation: logits_of(images) -> logits whose probabilities
    are the mean of each image's prediction and its left-right mirror's."""

    def averaged(images):
        mirrored = np.ascontiguousarray(images[:, :, ::-1])
        return task.mean_logits(logits_of(images), logits_of(mirrored))

    return averaged


def keras_logits(model):
    """images -> (N, logit_width) logits of a Keras model."""

    def logits_of(images):
        outputs = np.asarray(model.predict_on_batch(images))
        return outputs.reshape(len(outputs), -1)

    return logits_of


def logits_of_file(model_path, runtime, threads=0):
    """images -> (N, logit width) logits of a .keras file, run by `runtime`
    (evaluate.runtime): tensorflow (Keras), or litert (its cached float32 conversion,
    XNNPACK on `threads` threads, 0: every core)."""
    if runtime == "tensorflow":
        from transfer.model import load_model

        return keras_logits(load_model(model_path))
    return TFLiteModel(keras_file_as_tflite(model_path), threads).logits


def predict_split(logits_of, task, prepared_dir, split, batch_size, tta=False, progress=None):
    """(logits, labels, ids) of a model (logits_of: images -> N x logit width) over one
    prepared split, streamed in fixed batches."""
    if tta:
        logits_of = with_mirror(logits_of, task)
    logits, labels, ids = [], [], []
    for images, batch_labels, batch_ids, count in fixed_batches(prepared_dir, split, batch_size, progress):
        logits.append(logits_of(images)[:count])
        labels.append(batch_labels)
        ids.extend(str(example_id) for example_id in batch_ids)
    return np.concatenate(logits), np.concatenate(labels), ids


def evaluation_report(task, head_logits, head_labels, logits, labels, validation=None):
    """metrics/eval.json: both models' metrics (see metrics.classification_metrics),
    the test image count and, for two classes, the decision threshold.

    validation: (logits, labels) of the fine-tuned model on the validation
    split, predicted the way the test split is (with TTA if on): the figure to
    choose runs by, since the test split must not pick the model.
    """
    if not np.array_equal(head_labels, labels):
        raise ValueError("test features and test images disagree on labels")
    report = {
        "head": classification_metrics(task, head_labels, head_logits),
        "finetuned": classification_metrics(task, labels, logits),
        "test_images": len(labels),
    }
    if task.binary:
        report["threshold"] = THRESHOLD
    report["classes"] = task.num_classes
    if validation is not None:
        validation_logits, validation_labels = validation
        metrics = classification_metrics(task, validation_labels, validation_logits)
        report["validation"] = {
            "accuracy": metrics["accuracy"],
            "loss": metrics["loss"],
            "images": len(validation_labels),
            "balanced_accuracy": metrics["balanced_accuracy"],
        }
    return report


def prediction_rows(task, logits, labels, ids):
    """One row per image: id, true and predicted class, and the predicted class's probability."""
    probabilities = task.probabilities(logits)
    predicted = task.predicted(probabilities)
    return [
        {
            "id": example_id,
            "true_label": task.class_names[int(label)],
            "predicted_label": task.class_names[index],
            "score": round(float(row[index]), 6),
        }
        for example_id, label, index, row in zip(ids, labels, predicted, probabilities)
    ]


def most_confidently_wrong(rows, count):
    """The wrong rows, highest score first (ties broken by id)."""
    wrong = [row for row in rows if row["true_label"] != row["predicted_label"]]
    return sorted(wrong, key=lambda row: (-row["score"], row["id"]))[:count]


def images_by_id(prepared_dir, split, wanted_ids):
    """The images with the given ids, read shard by shard (memory stays bounded)."""
    wanted, found = set(wanted_ids), {}
    for images, _, ids in read_shards(prepared_dir, split):
        for image, example_id in zip(images, ids):
            if str(example_id) in wanted:
                found[str(example_id)] = image
    return [found[example_id] for example_id in wanted_ids]
