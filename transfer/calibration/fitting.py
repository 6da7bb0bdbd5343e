"""The calibrate stage's work: fit the fine-tuned model's temperature and novelty score.

On the fine-tuned model's own outputs, without test-time augmentation (what every exported
format computes): the temperature on the validation split's logits (transfer.calibration.temperature),
the novelty statistics on the training split's pooled features (transfer.calibration.novelty), and the
threshold on the validation split's novelty scores. Nothing here changes a decision.
"""

from pathlib import Path

import keras
import numpy as np

from transfer.calibration.novelty import accepted_share, get_method, threshold_accepting
from transfer.calibration.temperature import fit_temperature, scaled
from transfer.core.artifacts import MODEL, PREPARED, read_classes_file, write_calibration
from transfer.core.progress import Progress
from transfer.core.task import Task
from transfer.data.shards import fixed_batches, image_count
from transfer.models.loading import load_model


def pooled_and_logits(model, split, batch_size, progress=None):
    """(pooled features, logits, labels) of a classifier over one prepared split."""
    both = keras.Model(model.input, [model.get_layer("pool").output, model.output])
    pooled, logits, labels = [], [], []
    for images, batch_labels, _, count in fixed_batches(PREPARED, split, batch_size, progress):
        batch_pooled, batch_logits = both.predict_on_batch(images)
        pooled.append(np.asarray(batch_pooled, np.float32)[:count])
        logits.append(np.asarray(batch_logits, np.float64).reshape(len(batch_logits), -1)[:count])
        labels.append(batch_labels)
    return np.concatenate(pooled), np.concatenate(logits), np.concatenate(labels)


def calibrate_model(config, seed):
    """Write models/calibration.json and models/novelty.npz; returns its record (transfer.core.records)."""
    models = Path(MODEL).parent
    task = Task(read_classes_file(models, "class names not found: {path} (run the finetune stage)"))
    model = load_model(MODEL)
    method = get_method(config["novelty"])
    splits = ["validation", "train"] if method.uses_features else ["validation"]
    with Progress("calibrate: fine-tuned model", image_count(PREPARED, splits)) as progress:
        outputs = {split: pooled_and_logits(model, split, config["batch_size"], progress) for split in splits}
    pooled, logits, labels = outputs["validation"]
    temperature = fit_temperature(task, labels, logits)
    settings = method.settings(config)
    train_pooled, _, train_labels = outputs.get("train", (None, None, None))
    statistics = method.fit(train_pooled, train_labels, task.num_classes, settings, seed)
    probabilities = task.probabilities(scaled(logits, temperature))
    scores = method.scores(pooled, probabilities, statistics, settings)
    settings["threshold"] = threshold_accepting(scores, config["accept"])
    calibration = {"temperature": temperature, "fitted_on": "validation", "novelty": settings}
    write_calibration(models, calibration, statistics)
    return {
        **calibration,
        "validation_images": len(labels),
        "validation_accepted": accepted_share(scores, settings["threshold"]),
        "features_fitted_on": len(outputs["train"][2]) if method.uses_features else 0,
    }
