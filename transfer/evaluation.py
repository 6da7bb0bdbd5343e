"""Test-split predictions of both models, and what is reported about them."""

import numpy as np

from transfer.data import fixed_batches, read_shards
from transfer.reports import THRESHOLD, binary_metrics, mean_probability_logit, sigmoid

PREDICTION_COLUMNS = ("id", "true_label", "predicted_label", "score")


def with_mirror(logits_of):
    """Test-time augmentation: logits_of(images) -> logits that average, in
    probability, each image's prediction with its left-right mirror's."""

    def averaged(images):
        mirrored = np.ascontiguousarray(images[:, :, ::-1])
        return mean_probability_logit(logits_of(images), logits_of(mirrored))

    return averaged


def predict_split(model, prepared_dir, split, batch_size, tta=False):
    """(logits, labels, ids) of a model over one prepared split, streamed in fixed batches."""

    def logits_of(images):
        return np.asarray(model.predict_on_batch(images)).reshape(-1)

    if tta:
        logits_of = with_mirror(logits_of)
    logits, labels, ids = [], [], []
    for images, batch_labels, batch_ids, count in fixed_batches(prepared_dir, split, batch_size):
        logits.append(logits_of(images)[:count])
        labels.append(batch_labels)
        ids.extend(str(example_id) for example_id in batch_ids)
    return np.concatenate(logits), np.concatenate(labels), ids


def evaluation_report(head_logits, head_labels, logits, labels, class_names, validation=None):
    """metrics/eval.json: both models' metrics, per class, with count and threshold.

    validation: (logits, labels) of the fine-tuned model on the validation
    split, predicted the way the test split is (with TTA if on): the figure to
    choose runs by, since the test split must not pick the model.
    """
    if not np.array_equal(head_labels, labels):
        raise ValueError("test features and test images disagree on labels")
    report = {
        "head": binary_metrics(head_labels, head_logits, class_names),
        "finetuned": binary_metrics(labels, logits, class_names),
        "test_images": len(labels),
        "threshold": THRESHOLD,
    }
    if validation is not None:
        validation_logits, validation_labels = validation
        metrics = binary_metrics(validation_labels, validation_logits, class_names)
        report["validation"] = {
            "accuracy": metrics["accuracy"],
            "loss": metrics["loss"],
            "images": len(validation_labels),
        }
    return report


def prediction_rows(logits, labels, ids, class_names):
    """One row per image: id, true and predicted class, and the predicted class's probability."""
    probabilities = sigmoid(logits)
    rows = []
    for example_id, label, probability in zip(ids, labels, probabilities):
        predicted = int(probability > THRESHOLD)
        rows.append(
            {
                "id": example_id,
                "true_label": class_names[int(label)],
                "predicted_label": class_names[predicted],
                "score": round(float(probability if predicted else 1 - probability), 6),
            }
        )
    return rows


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
