"""Temperature scaling: one scalar T > 0 that divides the logits (for two classes, the single
logit), fitted on the validation split by minimising the negative log-likelihood.

Dividing by T changes no decision: softmax's argmax and the sign of a binary logit (the 0.5
threshold) stay, so accuracy and every count are the same; only the probabilities move.
Expected calibration error uses BINS equal-width bins of the predicted class's probability
(the top-label ECE of Guo et al., 2017). NumPy and SciPy only.
"""

import numpy as np

BINS = 15
LOG_TEMPERATURE_BOUNDS = (-4.0, 4.0)  # T from 0.018 to 55: far outside any fitted value
UNFITTED = 1.0  # the logits as trained


def scaled(logits, temperature):
    return np.asarray(logits, dtype=np.float64) / temperature


def fit_temperature(task, labels, logits):
    """The T minimising task.cross_entropy(labels, logits / T), searched on log T; 1 (the logits
    as trained) when the loss has no minimum inside the search's bounds.

    That happens when every validation photo is classified right: the loss then falls towards
    0 as T falls towards 0, and its "minimum" would be the smallest T searched, which makes every
    probability 0 or 1 and the first wrong photo of another split cost a huge log loss. A
    validation split without errors says nothing about how confident the model should be."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda log_t: task.cross_entropy(labels, scaled(logits, np.exp(log_t))),
        bounds=LOG_TEMPERATURE_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    if np.isclose(result.x, LOG_TEMPERATURE_BOUNDS, atol=1e-3).any():
        return UNFITTED
    return float(np.exp(result.x))


def confidence_and_correct(task, labels, logits):
    probabilities = task.probabilities(logits)
    predicted = task.predicted(probabilities)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    return probabilities[np.arange(len(labels)), predicted], predicted == labels


def reliability_bins(task, labels, logits, bins=BINS):
    """[{bin, confidence, accuracy, images}] for each non-empty bin (confidence: its mean)."""
    confidence, correct = confidence_and_correct(task, labels, logits)
    # Bin b holds (b / bins, (b + 1) / bins]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        if members.any():
            rows.append(
                {
                    "bin": b,
                    "confidence": float(confidence[members].mean()),
                    "accuracy": float(correct[members].mean()),
                    "images": int(members.sum()),
                }
            )
    return rows


def expected_calibration_error(task, labels, logits, bins=BINS):
    rows = reliability_bins(task, labels, logits, bins)
    total = sum(row["images"] for row in rows)
    return float(sum(row["images"] * abs(row["accuracy"] - row["confidence"]) for row in rows) / total)


def calibration_report(task, temperature, splits):
    """eval.json's `calibration`: T, the bins, and per split ECE and log loss before and after.

    splits: {name: (labels, logits)}."""
    report = {"temperature": temperature, "fitted_on": "validation", "bins": BINS}
    for name, (labels, logits) in splits.items():
        after = scaled(logits, temperature)
        report[name] = {
            "ece_before": expected_calibration_error(task, labels, logits),
            "ece_after": expected_calibration_error(task, labels, after),
            "log_loss_before": task.cross_entropy(labels, logits),
            "log_loss_after": task.cross_entropy(labels, after),
        }
    return report
