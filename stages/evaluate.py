"""Stage 5: test-split metrics, predictions, curves and figures for both models."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script

from transfer.data import image_count, read_meta  # noqa: E402
from transfer.errors import run_stage  # noqa: E402
from transfer.evaluation import (  # noqa: E402
    PREDICTION_COLUMNS,
    evaluation_report,
    images_by_id,
    logits_of_file,
    most_confidently_wrong,
    predict_split,
    prediction_rows,
)
from transfer.features import load_features  # noqa: E402
from transfer.figures import plot_learning_curves, plot_misclassified  # noqa: E402
from transfer.io import atomic_path, read_csv, write_csv, write_json, write_text  # noqa: E402
from transfer.metrics import (  # noqa: E402
    one_vs_rest_curves,
    precision_recall_points,
    roc_points,
    summary_curve_scores,
)
from transfer.model import load_model  # noqa: E402
from transfer.params import load_params  # noqa: E402
from transfer.plots_page import write_template  # noqa: E402
from transfer.progress import Progress  # noqa: E402
from transfer.report import run_report  # noqa: E402
from transfer.runtime import RESOLVED_FILE, start  # noqa: E402
from transfer.task import Task  # noqa: E402
from transfer.training import HISTORY_COLUMNS  # noqa: E402

MISCLASSIFIED_SHOWN = 16


def main():
    params = load_params()
    with start(params["runtime"], training=False, recorded=RESOLVED_FILE).scope():
        evaluation = evaluate_models(params["evaluate"], params["runtime"]["threads"])
    write_text("metrics/report.md", run_report(params, evaluation))
    # The page `dvc plots show`/`diff` draws the plots in (.dvc/config points at it).
    write_template()


def evaluate_models(config, threads):
    batch_size = config["batch_size"]
    task = Task(read_meta("data/prepared")["class_names"])
    features, head_labels = load_features("data/features", "test")
    head_logits = load_model("models/head.keras").predict(features[:], batch_size=batch_size, verbose=0)
    # Test-time augmentation applies to the fine-tuned model: the head-only
    # figures stay those of the cached features, the baseline it improves on.
    logits_of = logits_of_file("models/model.keras", config["runtime"], threads)
    total = image_count("data/prepared", ["test", "validation"])
    with Progress("evaluate: fine-tuned model", total) as progress:
        logits, labels, ids = predict_split(
            logits_of, task, "data/prepared", "test", batch_size, config["tta"], progress
        )
        validation = predict_split(
            logits_of, task, "data/prepared", "validation", batch_size, config["tta"], progress
        )[:2]

    evaluation = evaluation_report(task, head_logits, head_labels, logits, labels, validation)
    write_json("metrics/eval.json", evaluation)
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
        plot_misclassified(
            images_by_id("data/prepared", "test", [row["id"] for row in wrong]), captions, path
        )

    head_history = read_csv("plots/head_history.csv")
    history = head_history + read_csv("plots/finetune_history.csv")
    write_csv("plots/history.csv", history, HISTORY_COLUMNS)
    with atomic_path("plots/head_learning_curves.png") as path:
        plot_learning_curves(head_history, path)
    with atomic_path("plots/learning_curves.png") as path:
        plot_learning_curves(history, path, fine_tune_start=len(head_history))
    return evaluation


if __name__ == "__main__":
    run_stage(main)
