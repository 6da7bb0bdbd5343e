"""Test-split predictions of both models, and what is reported about them."""

import sys

import numpy as np

from transfer.artifacts import FEATURES, HEAD_MODEL, MODEL, PREPARED, read_calibration
from transfer.calibration import calibration_report, reliability_bins, scaled
from transfer.deployed import deployed_model
from transfer.epoch_log import read_epochs
from transfer.features import load_features
from transfer.figures import plot_grid, plot_learning_curves
from transfer.images import find_images, try_load_image
from transfer.inference import logits_of_file, with_mirror
from transfer.io import atomic_path, write_csv
from transfer.metrics import (
    classification_metrics,
    one_vs_rest_curves,
    precision_recall_points,
    roc_points,
    summary_curve_scores,
)
from transfer.model import load_model
from transfer.novelty import accepted_share, auroc
from transfer.progress import Progress
from transfer.records import write_record
from transfer.shards import fixed_batches, image_count, read_meta, read_shards
from transfer.task import THRESHOLD, Task

PREDICTION_COLUMNS = ("id", "true_label", "predicted_label", "score")


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
    """eval's record (transfer.records): both models' metrics (see metrics.classification_metrics),
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
        if "classes_missing" in metrics:
            report["validation"]["classes_missing"] = metrics["classes_missing"]
    for split, figures in (("test", report["finetuned"]), ("validation", report.get("validation", {}))):
        if "classes_missing" in figures:
            print(
                f"warning: the {split} split has no photo of {', '.join(figures['classes_missing'])}: "
                "its figures cover the other classes only (see classes_missing in metrics/details/eval.json)",
                file=sys.stderr,
            )
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


MISCLASSIFIED_SHOWN = 16


def novelty_of_split(deployed, split, batch_size, progress=None):
    novelty = [
        np.asarray(deployed.predict_on_batch(images)["novelty"]).reshape(-1)[:count]
        for images, _, _, count in fixed_batches(PREPARED, split, batch_size, progress)
    ]
    return np.concatenate(novelty)


def novelty_of_files(deployed, files, batch_size, progress=None):
    """Novelty scores of the readable files, and how many could not be read; decoded a batch
    at a time, so memory stays bounded whatever the folder holds."""
    size = deployed.input_shape[1]
    scores, unreadable = [np.empty(0)], 0
    for start in range(0, len(files), batch_size):
        batch = files[start : start + batch_size]
        images = [image for image, _ in (try_load_image(path, size) for path in batch) if image is not None]
        unreadable += len(batch) - len(images)
        if images:
            scores.append(np.asarray(deployed.predict_on_batch(np.stack(images))["novelty"]).reshape(-1))
        if progress is not None:
            progress.update(len(batch))
    return np.concatenate(scores), unreadable


def novelty_report(deployed, calibration, unknown_photos, batch_size):
    """eval.json's `novelty`: the saved threshold's acceptance of the validation and test photos
    and, given photos of none of the classes (evaluate.unknown_photos), the share it rejects
    and the AUROC of test photos against them."""
    settings = calibration["novelty"]
    threshold = settings["threshold"]
    files = find_images([unknown_photos])
    with Progress(
        "evaluate: novelty", image_count(PREPARED, ["test", "validation"]) + len(files)
    ) as progress:
        test = novelty_of_split(deployed, "test", batch_size, progress)
        validation = novelty_of_split(deployed, "validation", batch_size, progress)
        unknown, unreadable = novelty_of_files(deployed, files, batch_size, progress)
    report = {
        "method": settings["method"],
        "threshold": threshold,
        "accept": settings["accept"],
        "validation_accepted": accepted_share(validation, threshold),
        "test_accepted": accepted_share(test, threshold),
        "unknown": {"folder": str(unknown_photos), "photos": len(unknown), "unreadable": unreadable},
    }
    if len(unknown):
        report["unknown"]["rejected"] = float(np.mean(unknown > threshold))
        report["unknown"]["auroc_against_test"] = auroc(test, unknown)
    return report


def evaluate_models(config, threads):
    batch_size = config["batch_size"]
    unknown_photos = config["unknown_photos"]
    task = Task(read_meta(PREPARED)["class_names"])
    features, head_labels = load_features(FEATURES, "test")
    head_logits = load_model(HEAD_MODEL).predict(features[:], batch_size=batch_size, verbose=0)
    # Test-time augmentation applies to the fine-tuned model: the head-only
    # figures stay those of the cached features, the baseline it improves on.
    logits_of = logits_of_file(MODEL, config["runtime"], threads)
    total = image_count(PREPARED, ["test", "validation"])
    with Progress("evaluate: fine-tuned model", total) as progress:
        logits, labels, ids = predict_split(
            logits_of, task, PREPARED, "test", batch_size, config["tta"], progress
        )
        validation = predict_split(
            logits_of, task, PREPARED, "validation", batch_size, config["tta"], progress
        )[:2]

    evaluation = evaluation_report(task, head_logits, head_labels, logits, labels, validation)
    # The calibrate stage's temperature (fitted on validation), reported on both splits; no
    # decision and no other figure changes.
    calibration, statistics = read_calibration(MODEL)
    temperature = calibration["temperature"]
    validation_logits, validation_labels = validation
    evaluation["calibration"] = calibration_report(
        task, temperature, {"test": (labels, logits), "validation": (validation_labels, validation_logits)}
    )
    evaluation["novelty"] = novelty_report(
        deployed_model(load_model(MODEL), calibration, statistics), calibration, unknown_photos, batch_size
    )
    write_record("eval", evaluation)
    for name, curve_logits in (("before", logits), ("after", scaled(logits, temperature))):
        bins = reliability_bins(task, labels, curve_logits)
        write_csv(f"plots/reliability/{name}.csv", bins, ["bin", "confidence", "accuracy", "images"])
    rows = prediction_rows(task, logits, labels, ids)
    write_csv("metrics/predictions.csv", rows, PREDICTION_COLUMNS)
    # One summary curve per model (head vs fine-tuned), then every class against the rest.
    for name, model_logits, model_labels in (
        ("head", head_logits, head_labels),
        ("finetuned", logits, labels),
    ):
        curve_labels, scores = summary_curve_scores(task, model_labels, model_logits)
        write_csv(f"plots/roc/{name}.csv", roc_points(curve_labels, scores), ["fpr", "tpr", "threshold"])
        write_csv(
            f"plots/precision_recall/{name}.csv",
            precision_recall_points(curve_labels, scores),
            ["recall", "precision", "threshold"],
        )
    roc, precision_recall = one_vs_rest_curves(task, labels, logits)
    write_csv("plots/per_class/roc.csv", roc, ["class", "fpr", "tpr", "threshold"])
    write_csv(
        "plots/per_class/precision_recall.csv",
        precision_recall,
        ["class", "recall", "precision", "threshold"],
    )

    wrong = most_confidently_wrong(rows, MISCLASSIFIED_SHOWN)
    captions = [
        f"true {row['true_label']}\npredicted {row['predicted_label']} ({row['score']:.2f})" for row in wrong
    ]
    with atomic_path("plots/misclassified.png") as path:
        images = images_by_id(PREPARED, "test", [row["id"] for row in wrong])
        plot_grid(images, captions, path, "No misclassified test images")

    head_history = read_epochs("train_head")
    history = head_history + read_epochs("finetune")
    with atomic_path("plots/head_learning_curves.png") as path:
        plot_learning_curves(head_history, path)
    with atomic_path("plots/learning_curves.png") as path:
        plot_learning_curves(history, path, fine_tune_start=len(head_history))
    return evaluation
