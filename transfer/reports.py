"""Metrics from logits, and the figures the tutorial draws."""

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only: stages run without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Decision threshold on the probability of class 1 (a logit of 0).
THRESHOLD = 0.5


def sigmoid(logits):
    return 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64)))


def mean_probability_logit(logits_a, logits_b):
    """The logit of the mean of two predictions' probabilities, computed in log
    space so confident logits (|z| > 40) do not turn into infinities."""
    a, b = (np.asarray(logits, dtype=np.float64) for logits in (logits_a, logits_b))
    log_p = np.logaddexp(-np.logaddexp(0, -a), -np.logaddexp(0, -b))  # log(p_a + p_b)
    log_q = np.logaddexp(-np.logaddexp(0, a), -np.logaddexp(0, b))  # log((1 - p_a) + (1 - p_b))
    return log_p - log_q


def precision_recall_f1(is_true, is_predicted):
    """Precision, recall and F1 of one class, from boolean arrays (0 where undefined)."""
    true_positives = np.sum(is_true & is_predicted)
    precision = true_positives / max(np.sum(is_predicted), 1)
    recall = true_positives / max(np.sum(is_true), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def binary_metrics(labels, logits, class_names=None):
    """accuracy, loss, ROC AUC, and precision/recall/F1 of logits against 0/1 labels.

    The overall precision, recall and F1 are those of class 1 (the positive
    class); with class_names, `per_class` has them for every class. The
    decision threshold is THRESHOLD on the probability (a logit of 0). Loss is
    the mean binary cross-entropy, computed stably from the logits.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    predicted = logits > 0
    positive = labels == 1
    loss = np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits))))
    metrics = {
        "accuracy": float(np.mean(predicted == positive)),
        "loss": float(loss),
        **precision_recall_f1(positive, predicted),
        "auc": roc_auc(labels, logits),
    }
    if class_names is not None:
        metrics["per_class"] = {
            class_names[0]: precision_recall_f1(~positive, ~predicted),
            class_names[1]: precision_recall_f1(positive, predicted),
        }
    return metrics


def roc_points(labels, scores):
    """ROC curve as rows of fpr, tpr, threshold, from the highest threshold down."""
    labels, scores = _sorted_by_score(labels, scores)
    true_positives = np.concatenate([[0], np.cumsum(labels)])
    false_positives = np.concatenate([[0], np.cumsum(1 - labels)])
    last_of_each_score = _last_of_each_score(scores)
    rows = [{"fpr": 0.0, "tpr": 0.0, "threshold": 1.0}]
    for index in last_of_each_score:
        rows.append(
            {
                "fpr": float(false_positives[index + 1] / max(false_positives[-1], 1)),
                "tpr": float(true_positives[index + 1] / max(true_positives[-1], 1)),
                "threshold": float(scores[index]),
            }
        )
    return rows


def precision_recall_points(labels, scores):
    """Precision-recall curve as rows of recall, precision, threshold."""
    labels, scores = _sorted_by_score(labels, scores)
    true_positives = np.cumsum(labels)
    rows = []
    for index in _last_of_each_score(scores):
        rows.append(
            {
                "recall": float(true_positives[index] / max(true_positives[-1], 1)),
                "precision": float(true_positives[index] / (index + 1)),
                "threshold": float(scores[index]),
            }
        )
    return rows


def _sorted_by_score(labels, scores):
    order = np.argsort(-np.asarray(scores, dtype=np.float64).reshape(-1), kind="mergesort")
    return np.asarray(labels, dtype=np.float64).reshape(-1)[order], np.asarray(scores).reshape(-1)[order]


def _last_of_each_score(sorted_scores):
    """Indices where a run of equal scores ends: one curve point per distinct threshold."""
    return np.flatnonzero(np.append(np.diff(sorted_scores) != 0, True))


def roc_auc(labels, scores):
    """Area under the ROC curve (ties count half: the Mann-Whitney statistic)."""
    labels = np.asarray(labels).reshape(-1)
    if labels.min() == labels.max():
        return float("nan")
    rows = roc_points(labels, scores)
    return float(np.trapezoid([row["tpr"] for row in rows], [row["fpr"] for row in rows]))


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
    figure.savefig(path, format="png", bbox_inches="tight")
    plt.close(figure)


def plot_misclassified(images, captions, path, columns=4):
    """A grid of images with two-line captions; a placeholder text if there are none."""
    count = len(images)
    rows = max(1, -(-count // columns))
    figure = plt.figure(figsize=(3 * columns, 3.3 * rows))
    if count == 0:
        figure.text(0.5, 0.5, "No misclassified test images", ha="center", va="center", fontsize=16)
    for index in range(count):
        axis = figure.add_subplot(rows, columns, index + 1)
        axis.imshow(images[index])
        axis.set_title(captions[index], fontsize=10, color="darkred")
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, format="png", bbox_inches="tight")
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
    figure.savefig(path, format="png", bbox_inches="tight")
    plt.close(figure)
