"""Classification metrics and curves from logits, for any Task. NumPy only.

Figures live in transfer.reporting.figures: code that only needs numbers (predict,
export) never imports matplotlib.
"""

import numpy as np

from transfer.core.task import TOP_K


def precision_recall_f1(is_true, is_predicted):
    """Precision, recall and F1 of one class, from boolean arrays (0 where undefined)."""
    true_positives = np.sum(is_true & is_predicted)
    precision = true_positives / max(np.sum(is_predicted), 1)
    recall = true_positives / max(np.sum(is_true), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def classification_metrics(task, labels, logits):
    """accuracy, loss, AUC, macro and per-class precision/recall/F1 of logits against labels.

    Binary (the tutorial's keys, kept so `dvc metrics diff` lines up with older
    runs): `precision`, `recall`, `f1` are those of the second class (index 1,
    the positive one), `auc` ranks by its logit. K classes: `auc` is the
    macro mean of one-vs-rest AUCs over the classes' probabilities, and
    `top5_accuracy` is added when K > 5. Both: `balanced_accuracy` (mean
    per-class recall), `macro_precision`/`macro_recall`/`macro_f1` (means over the
    classes that have images in `labels`), and `per_class` precision/recall/F1/support
    for every class; `classes_missing` lists the classes with no image in `labels`, when
    there are any (accuracy then covers the other classes only; AUC may be undefined).
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    probabilities = task.probabilities(logits)
    predicted = task.predicted(probabilities)
    per_class = {}
    for index, name in enumerate(task.class_names):
        is_true = labels == index
        per_class[name] = {**precision_recall_f1(is_true, predicted == index), "support": int(is_true.sum())}
    metrics = {"accuracy": float(np.mean(predicted == labels)), "loss": task.cross_entropy(labels, logits)}
    if task.binary:
        positive = per_class[task.class_names[1]]
        metrics.update({name: positive[name] for name in ("precision", "recall", "f1")})
        metrics["auc"] = roc_auc(labels, np.asarray(logits, dtype=np.float64).reshape(-1))
    else:
        aucs = [roc_auc(labels == index, probabilities[:, index]) for index in range(task.num_classes)]
        metrics["auc"] = float(np.nanmean(aucs)) if not np.all(np.isnan(aucs)) else float("nan")
        if task.num_classes > TOP_K:
            best = np.argsort(-probabilities, axis=1, kind="stable")[:, :TOP_K]
            metrics[f"top{TOP_K}_accuracy"] = float(np.mean(np.any(best == labels[:, None], axis=1)))
    # One rule for every mean over classes: a class with no images in these labels has no
    # recall, so it is left out of balanced_accuracy and of every macro_* figure alike
    # (balanced_accuracy is then macro_recall by definition); per_class still lists it.
    present = [figures for figures in per_class.values() if figures["support"]]
    metrics["balanced_accuracy"] = float(np.mean([figures["recall"] for figures in present]))
    for name in ("precision", "recall", "f1"):
        metrics[f"macro_{name}"] = float(np.mean([figures[name] for figures in present]))
    metrics["per_class"] = per_class
    missing = [name for name, figures in per_class.items() if not figures["support"]]
    if missing:  # every figure above then means something else: said, in the figures themselves
        metrics["classes_missing"] = missing
    return metrics


def one_vs_rest_curves(task, labels, logits):
    """ROC and precision-recall rows of every class against the rest, with a `class` column."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    probabilities = task.probabilities(logits)
    roc, precision_recall = [], []
    for index, name in enumerate(task.class_names):
        is_class = (labels == index).astype(np.float64)
        roc += [{"class": name, **row} for row in roc_points(is_class, probabilities[:, index])]
        precision_recall += [
            {"class": name, **row} for row in precision_recall_points(is_class, probabilities[:, index])
        ]
    return roc, precision_recall


def summary_curve_scores(task, labels, logits):
    """(binary labels, scores) for one summary ROC/PR curve per model.

    Binary: the second class's probability, as the tutorial's task has it. K
    classes: micro-average, every (image, class) pair as one yes/no decision
    scored by that class's probability."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    probabilities = task.probabilities(logits)
    if task.binary:
        return labels, probabilities[:, 1]
    one_hot = np.eye(task.num_classes)[labels]
    return one_hot.reshape(-1), probabilities.reshape(-1)


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
    """Area under the ROC curve (ties count half: the Mann-Whitney statistic); nan for one class."""
    labels = np.asarray(labels).reshape(-1)
    if labels.min() == labels.max():
        return float("nan")
    rows = roc_points(labels, scores)
    return float(np.trapezoid([row["tpr"] for row in rows], [row["fpr"] for row in rows]))
