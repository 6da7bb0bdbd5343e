"""MediaPipe Tasks' ImageClassifier: the runtime an Android, iOS, web or Python app runs a
.tflite classifier in. The export stage runs each TFLite file in it as an app would, knowing
nothing but the file (its standard metadata: transfer.deploy.export.tflite_metadata), and
measures it against `transfer predict` on the same file.

An app reads two of the file's classification heads by name: `probabilities` (one category
per class, its label from labels.txt, its calibrated probability) and `known` (one
category, score 1.0 or 0.0). The photo is handed over at the model's size, resized as
`transfer predict` resizes (transfer.data.images): MediaPipe's own resizing of a larger
photo differs from Pillow's by a few grey levels."""

import numpy as np

from transfer.core.quiet import info_lines_filtered


def classifier(path):
    """An ImageClassifier of a .tflite file that reports every category of every head."""
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    base_options = BaseOptions(model_asset_path=str(path))
    options = vision.ImageClassifierOptions(base_options=base_options, max_results=-1)
    with info_lines_filtered():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
        return vision.ImageClassifier.create_from_options(options)


def heads(classifier, image):
    """{head name: its categories} of one uint8 RGB image."""
    import mediapipe

    pixels = np.ascontiguousarray(image, np.uint8)
    photo = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=pixels)
    return {head.head_name: head.categories for head in classifier.classify(photo).classifications}


def classify(classifier, image, num_classes):
    """(calibrated probabilities (num_classes,), known) of one uint8 RGB image, from the heads."""
    found = heads(classifier, image)
    probabilities = np.zeros(num_classes)
    for category in found["probabilities"]:
        probabilities[category.index] = category.score
    return probabilities, found["known"][0].score == 1.0


def predictor(job, path):
    model = job.stack.enter_context(classifier(path))
    num_classes = job.task.num_classes

    def predict(encoded, images):
        results = [classify(model, image, num_classes) for image in images]
        return np.array([row for row, _ in results]), np.array([known for _, known in results])

    return predict
