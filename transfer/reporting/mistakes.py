"""metrics/mistakes.csv: the validation and test photos the deployed model gets wrong or
rejects, for a person to look at (`transfer review`)."""

import numpy as np

from transfer.calibration.novelty import is_known
from transfer.calibration.temperature import scaled

MISTAKE_COLUMNS = ("split", "path", "true", "predicted", "probability", "known", "novelty")


def mistake_rows(task, temperature, threshold, splits, novelty):
    """The validation and test photos the deployed model gets wrong or rejects as none of the
    classes, as `transfer predict` would see them (calibrated probability of the predicted
    class, the novelty check): what `transfer review` shows. Wrong ones first, most confident
    first; then those only rejected, most novel first. splits: {split: (logits, labels, ids)};
    novelty: {split: scores}, both in prepared order."""
    rows = []
    for split, (logits, labels, ids) in splits.items():
        probabilities = task.probabilities(scaled(logits, temperature))
        predicted = task.predicted(probabilities)
        known = is_known(novelty[split], threshold)
        for index in np.flatnonzero((predicted != labels) | ~known):
            rows.append(
                {
                    "split": split,
                    "path": ids[index],
                    "true": task.class_names[int(labels[index])],
                    "predicted": task.class_names[int(predicted[index])],
                    "probability": round(float(probabilities[index, predicted[index]]), 6),
                    "known": bool(known[index]),
                    "novelty": round(float(novelty[split][index]), 6),
                }
            )
    right = [row["true"] == row["predicted"] for row in rows]
    order = sorted(
        range(len(rows)),
        key=lambda n: (
            right[n],
            -rows[n]["novelty"] if right[n] else -rows[n]["probability"],
            rows[n]["path"],
        ),
    )
    return [rows[n] for n in order]
