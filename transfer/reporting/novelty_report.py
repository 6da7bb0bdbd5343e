"""eval.json's `novelty`: how the saved novelty threshold treats the validation and test
photos and, given photos of none of the classes, how well it rejects them."""

import numpy as np

from transfer.calibration.novelty import accepted_share, is_known
from transfer.core.artifacts import PREPARED
from transfer.core.progress import Progress
from transfer.data.images import find_images, try_load_image
from transfer.data.shards import fixed_batches, image_count
from transfer.reporting.metrics import roc_auc


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
    and the AUROC of test photos against them; and {split: every photo's score} of those two
    splits, in prepared order."""
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
        report["unknown"]["rejected"] = float(np.mean(~is_known(unknown, threshold)))
        # The probability that an unknown photo scores above a test photo (ties count half).
        labels = np.r_[np.zeros(len(test)), np.ones(len(unknown))]
        report["unknown"]["auroc_against_test"] = roc_auc(labels, np.r_[test, unknown])
    return report, {"test": test, "validation": validation}
