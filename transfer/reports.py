"""Metrics from logits, and the figures the tutorial draws."""

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only: stages run without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def binary_metrics(labels, logits):
    """accuracy, loss, precision, recall and ROC AUC of logits against 0/1 labels.

    The decision threshold is a logit of 0 (probability 0.5). Loss is the mean
    binary cross-entropy, computed stably from the logits.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    predicted = logits > 0
    positive = labels == 1
    true_positives = np.sum(predicted & positive)
    loss = np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits))))
    return {
        "accuracy": float(np.mean(predicted == positive)),
        "loss": float(loss),
        "precision": float(true_positives / max(np.sum(predicted), 1)),
        "recall": float(true_positives / max(np.sum(positive), 1)),
        "auc": roc_auc(labels, logits),
    }


def roc_auc(labels, scores):
    """Area under the ROC curve: the chance a random positive outscores a random negative."""
    labels = np.asarray(labels).reshape(-1) == 1
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n_positive, n_negative = labels.sum(), (~labels).sum()
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    # Mann-Whitney U with average ranks for ties.
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    u = ranks[labels].sum() - n_positive * (n_positive + 1) / 2
    return float(u / (n_positive * n_negative))


def plot_samples(images, labels, class_names, path, count=9):
    """A 3x3 grid of images with their class names (the tutorial's first look)."""
    count = min(count, len(images))
    columns = 3
    rows = max(1, -(-count // columns))
    figure = plt.figure(figsize=(3 * columns, 3 * rows))
    for index in range(count):
        axis = figure.add_subplot(rows, columns, index + 1)
        axis.imshow(images[index])
        axis.set_title(class_names[int(labels[index])])
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def plot_learning_curves(history, path, fine_tune_start=None):
    """Training and validation accuracy and loss per epoch, as in the tutorial.

    history: rows with epoch, accuracy, val_accuracy, loss, val_loss. With
    fine_tune_start (the last head epoch), a vertical line marks where
    fine-tuning starts.
    """
    epochs = [int(row["epoch"]) for row in history]
    figure, (accuracy_axis, loss_axis) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for axis, metric, title in (
        (accuracy_axis, "accuracy", "Training and Validation Accuracy"),
        (loss_axis, "loss", "Training and Validation Cross Entropy"),
    ):
        axis.plot(epochs, [float(row[metric]) for row in history], marker="o", label=f"Training {metric}")
        axis.plot(
            epochs, [float(row[f"val_{metric}"]) for row in history], marker="o", label=f"Validation {metric}"
        )
        if fine_tune_start is not None:
            axis.axvline(fine_tune_start + 0.5, color="gray", linestyle="--", label="Start Fine Tuning")
        axis.set_title(title)
        axis.set_ylabel(metric)
        axis.legend(loc="best")
    loss_axis.set_xlabel("epoch")
    loss_axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
