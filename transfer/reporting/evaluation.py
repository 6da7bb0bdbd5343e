"""Test-split predictions of both models, and what is reported about them."""

import sys

import numpy as np

from transfer.calibration.temperature import calibration_report, reliability_bins, scaled
from transfer.core import artifacts
from transfer.core.artifacts import FEATURES, HEAD_MODEL, MODEL, PREPARED
from transfer.core.io import atomic_path, write_csv
from transfer.core.progress import Progress
from transfer.core.records import write_record
from transfer.core.task import THRESHOLD, Task
from transfer.data.features import load_features
from transfer.data.shards import fixed_batches, image_count, read_meta, read_shards
from transfer.inference.bundle import open_bundle
from transfer.inference.deployed import deployed_model
from transfer.inference.runners import network_runner, with_mirror
from transfer.models.loading import load_model
from transfer.reporting.figures import plot_grid, plot_learning_curves
from transfer.reporting.metrics import (
    classification_metrics,
    one_vs_rest_curves,
    precision_recall_points,
    roc_points,
    summary_curve_scores,
)
from transfer.reporting.mistakes import MISTAKE_COLUMNS, mistake_rows
from transfer.reporting.novelty_report import novelty_report
from transfer.training.epoch_log import read_epochs

PREDICTION_COLUMNS = ("id", "true_label", "predicted_label", "score")


def predict_split(runner, task, prepared_dir, split, batch_size, tta=False, progress=None):
    """(logits, labels, ids) of a runner (transfer.inference.runners) over one prepared split,
    streamed in fixed batches."""
    run = with_mirror(runner.run, task) if tta else runner.run
    logits, labels, ids = [], [], []
    for images, batch_labels, batch_ids, count in fixed_batches(prepared_dir, split, batch_size, progress):
        logits.append(run(images)["logits"][:count])
        labels.append(batch_labels)
        ids.extend(str(example_id) for example_id in batch_ids)
    return np.concatenate(logits), np.concatenate(labels), ids


def evaluation_report(task, head_logits, head_labels, logits, labels, validation=None):
    """eval's record (transfer.core.records): both models' metrics (see metrics.classification_metrics),
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


def evaluate_models(config, threads):
    """eval's record, and every table and figure of the test split (metrics/, plots/)."""
    batch_size = config["batch_size"]
    task = Task(read_meta(PREPARED)["class_names"])
    features, head_labels = load_features(FEATURES, "test")
    head_logits = load_model(HEAD_MODEL).predict(features[:], batch_size=batch_size, verbose=0)
    # Test-time augmentation applies to the fine-tuned model: the head-only
    # figures stay those of the cached features, the baseline it improves on.
    classifier = load_model(MODEL)
    runner = network_runner(classifier, config["runtime"], threads)
    with Progress("evaluate: fine-tuned model", image_count(PREPARED, ["test", "validation"])) as progress:
        logits, labels, ids = predict_split(
            runner, task, PREPARED, "test", batch_size, config["tta"], progress
        )
        validation_logits, validation_labels, validation_ids = predict_split(
            runner, task, PREPARED, "validation", batch_size, config["tta"], progress
        )
    validation = validation_logits, validation_labels

    evaluation = evaluation_report(task, head_logits, head_labels, logits, labels, validation)
    # The calibrate stage's temperature (fitted on validation), reported on both splits; no
    # decision and no other figure changes.
    bundle = open_bundle(MODEL)
    temperature = bundle.required_calibration()["temperature"]
    evaluation["calibration"] = calibration_report(
        task, temperature, {"test": (labels, logits), "validation": (validation_labels, validation_logits)}
    )
    # The same classifier, with its calibration inside (not loaded from its file again).
    deployed = deployed_model(classifier, bundle.calibration, bundle.statistics)
    evaluation["novelty"], novelty = novelty_report(
        deployed, bundle.calibration, config["unknown_photos"], batch_size
    )
    write_record("eval", evaluation)
    splits = {
        "test": (logits, labels, ids),
        "validation": (validation_logits, validation_labels, validation_ids),
    }
    write_csv(
        artifacts.MISTAKES_TABLE,
        mistake_rows(task, temperature, bundle.calibration["novelty"]["threshold"], splits, novelty),
        MISTAKE_COLUMNS,
    )
    write_curve_tables(task, (head_logits, head_labels), (logits, labels), temperature)
    rows = prediction_rows(task, logits, labels, ids)
    write_csv(artifacts.PREDICTIONS_TABLE, rows, PREDICTION_COLUMNS)
    plot_misclassified(rows)
    plot_training()
    return evaluation


def write_curve_tables(task, head, finetuned, temperature):
    """The reliability bins before and after the temperature; one summary curve per model
    (head vs fine-tuned), then every class against the rest. head, finetuned: (logits, labels)."""
    logits, labels = finetuned
    for name, curve_logits in (("before", logits), ("after", scaled(logits, temperature))):
        bins = reliability_bins(task, labels, curve_logits)
        write_csv(
            artifacts.curve_table("reliability", name), bins, ["bin", "confidence", "accuracy", "images"]
        )
    for name, (model_logits, model_labels) in (("head", head), ("finetuned", finetuned)):
        curve_labels, scores = summary_curve_scores(task, model_labels, model_logits)
        write_csv(
            artifacts.curve_table("roc", name), roc_points(curve_labels, scores), ["fpr", "tpr", "threshold"]
        )
        write_csv(
            artifacts.curve_table("precision_recall", name),
            precision_recall_points(curve_labels, scores),
            ["recall", "precision", "threshold"],
        )
    roc, precision_recall = one_vs_rest_curves(task, labels, logits)
    write_csv(artifacts.curve_table("per_class", "roc"), roc, ["class", "fpr", "tpr", "threshold"])
    write_csv(
        artifacts.curve_table("per_class", "precision_recall"),
        precision_recall,
        ["class", "recall", "precision", "threshold"],
    )


def plot_misclassified(rows):
    wrong = most_confidently_wrong(rows, MISCLASSIFIED_SHOWN)
    captions = [
        f"true {row['true_label']}\npredicted {row['predicted_label']} ({row['score']:.2f})" for row in wrong
    ]
    with atomic_path(artifacts.MISCLASSIFIED_PLOT) as path:
        images = images_by_id(PREPARED, "test", [row["id"] for row in wrong])
        plot_grid(images, captions, path, "No misclassified test images")


def plot_training():
    """The learning curves of the head alone, and of both phases (from their DVCLive logs)."""
    head_history = read_epochs("train_head")
    history = head_history + read_epochs("finetune")
    with atomic_path(artifacts.HEAD_LEARNING_CURVES_PLOT) as path:
        plot_learning_curves(head_history, path)
    with atomic_path(artifacts.LEARNING_CURVES_PLOT) as path:
        plot_learning_curves(history, path, fine_tune_start=len(head_history))
