"""Every format measured against Keras on the test split's original files: accuracy, parity
(largest probability difference, agreement on `known`), latency of one image, size."""

import time
from pathlib import Path

import numpy as np

REFERENCE = "keras"  # what every format's parity is measured against


class Tally:
    """One format's running counts over the test batches."""

    def __init__(self):
        self.correct, self.known_agreeing, self.largest_difference = 0, 0, 0.0

    def add(self, task, labels, outputs, reference):
        (probabilities, known), (reference_probabilities, reference_known) = outputs, reference
        self.correct += int(np.sum(task.predicted(probabilities) == labels))
        difference = float(np.abs(probabilities - reference_probabilities).max())
        self.largest_difference = max(self.largest_difference, difference)
        self.known_agreeing += int(np.sum(known == reference_known))


def measure(task, predictors, batches, latency_images, progress=None):
    """{'formats': {name: {accuracy, latency_ms}}, counts, 'parity_with_keras'} of predictors
    ({name: predict(encoded, images) -> (probabilities, known)}, REFERENCE among them) over
    batches of (encoded, images, labels), streamed: memory stays flat. Then each format's
    mean latency on the first latency_images photos, one at a time."""
    tallies = {name: Tally() for name in predictors}
    count, known_count, timed = 0, 0, []
    for encoded, images, labels in batches:
        images = images.astype(np.float32)
        outputs = {name: predict(encoded, images) for name, predict in predictors.items()}
        for name, tally in tallies.items():
            tally.add(task, labels, outputs[name], outputs[REFERENCE])
        count += len(labels)
        known_count += int(np.sum(outputs[REFERENCE][1]))
        timed += list(zip(encoded, images))[: latency_images - len(timed)]
        if progress is not None:
            progress.update(len(labels))
    return {
        "formats": {
            name: {"accuracy": tally.correct / count, "latency_ms": mean_latency_ms(predictors[name], timed)}
            for name, tally in tallies.items()
        },
        "test_images": count,
        "latency_images": len(timed),
        "known_test_share": known_count / count,
        "parity_with_keras": {
            name: {
                "largest_probability_difference": tally.largest_difference,
                "known_agreement": tally.known_agreeing / count,
            }
            for name, tally in tallies.items()
            if name != REFERENCE
        },
    }


def mean_latency_ms(predict, photos, repeats=1):
    """Mean wall time of one single-photo call, in milliseconds (after one warm-up call).
    photos: (encoded, image) pairs."""

    def one(photo):
        encoded, image = photo
        predict([encoded], image[np.newaxis])

    one(photos[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for photo in photos:
            one(photo)
    return 1000 * (time.perf_counter() - start) / (repeats * len(photos))


def file_size(path):
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    return path.stat().st_size
