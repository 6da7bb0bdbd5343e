"""Every format measured against Keras, and every app's runtime against `transfer predict` on
the same file, on the test split's original files: accuracy, agreement (largest probability
difference, agreement on `known` and on the top class), latency of one image, size."""

import time
from pathlib import Path

import numpy as np

REFERENCE = "keras"  # what every format's parity is measured against


class Tally:
    """One predictor's running counts over the test batches."""

    def __init__(self):
        self.correct, self.same_class, self.known_agreeing, self.largest_difference = 0, 0, 0, 0.0

    def add(self, task, labels, outputs, reference):
        (probabilities, known), (reference_probabilities, reference_known) = outputs, reference
        predicted = task.predicted(probabilities)
        self.correct += int(np.sum(predicted == labels))
        self.same_class += int(np.sum(predicted == task.predicted(reference_probabilities)))
        difference = float(np.abs(probabilities - reference_probabilities).max())
        self.largest_difference = max(self.largest_difference, difference)
        self.known_agreeing += int(np.sum(known == reference_known))

    def agreement(self, count):
        return {
            "largest_probability_difference": self.largest_difference,
            "known_agreement": self.known_agreeing / count,
            "top_class_agreement": self.same_class / count,
        }


def measure(task, predictors, references, batches, latency_images, progress=None):
    """{'accuracy': {name: accuracy}, 'latency_ms': {name: ms}, 'agreement': {name: {largest
    probability difference, known and top-class agreement}}, counts} of predictors ({name:
    predict(encoded, images) -> (probabilities, known)}), each compared with its reference
    (references: {name: the reference's name}; REFERENCE has none), over batches of
    (encoded, images, labels), streamed: memory stays flat. Then each one's mean latency on
    the first latency_images photos, one at a time."""
    tallies = {name: Tally() for name in predictors}
    count, known_count, timed = 0, 0, []
    for encoded, images, labels in batches:
        images = images.astype(np.float32)
        outputs = {name: predict(encoded, images) for name, predict in predictors.items()}
        for name, tally in tallies.items():
            tally.add(task, labels, outputs[name], outputs[references.get(name, name)])
        count += len(labels)
        known_count += int(np.sum(outputs[REFERENCE][1]))
        timed += list(zip(encoded, images))[: latency_images - len(timed)]
        if progress is not None:
            progress.update(len(labels))
    return {
        "accuracy": {name: tally.correct / count for name, tally in tallies.items()},
        "latency_ms": {name: mean_latency_ms(predict, timed) for name, predict in predictors.items()},
        "agreement": {name: tallies[name].agreement(count) for name in references},
        "test_images": count,
        "latency_images": len(timed),
        "known_test_share": known_count / count,
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
