"""The SavedModel: a `serve` signature (also `serving_default`) that takes encoded image bytes
(JPEG, PNG, GIF, BMP) and returns `label` (class name), `score` (its calibrated probability),
`probabilities` (of every class, K wide), `known` (true at or below the saved novelty
threshold), `novelty` (the score) and, for two classes, `probability` (of the second class).
Decoding, a JPEG's EXIF orientation and resizing run inside the graph, as TF Serving needs
(transfer.deploy.serving); the decision is the Task's. The class names and the calibration
are also in `assets.extra/` (classes.json, calibration.json)."""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer.calibration.novelty import is_known
from transfer.core.artifacts import CALIBRATION_FILE, write_class_names
from transfer.core.io import write_json
from transfer.deploy.serving import decode_for_serving


def write(job, path):
    """Write a SavedModel whose signature maps encoded image bytes to label, score, known, novelty."""
    model, task, calibration = job.model, job.task, job.calibration
    size = model.input_shape[1]
    names = tf.constant(list(task.class_names))
    threshold = calibration["novelty"]["threshold"]

    def serve(image_bytes):
        images = tf.map_fn(
            lambda encoded: decode_for_serving(encoded, size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
        )
        deployed = model(images, training=False)
        predicted, score, probabilities = task.serving_outputs(deployed["logits"])
        novelty = deployed["novelty"][:, 0]
        outputs = {
            "label": tf.gather(names, predicted),
            "score": score,
            "probabilities": probabilities,
            "known": is_known(novelty, threshold),
            "novelty": novelty,
        }
        if task.binary:
            outputs["probability"] = probabilities[:, 1]  # as before K classes existed
        return outputs

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve", fn=serve, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.write_out(str(path), verbose=False)
    extra = Path(path) / "assets.extra"  # TF Serving's place for files that travel with a model
    extra.mkdir(exist_ok=True)
    write_class_names(extra, task.class_names)
    write_json(extra / CALIBRATION_FILE, calibration)


def load_serving(path):
    """The serving signature of a SavedModel on disk: image_bytes -> label, score, probabilities, ..."""
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def serving_outputs(serve, encoded_images, batch_size=32):
    """(probabilities (N, num_classes), known (N,)) of the SavedModel for each encoded image."""
    probabilities, known = [], []
    for start in range(0, len(encoded_images), batch_size):
        outputs = serve(image_bytes=tf.constant(encoded_images[start : start + batch_size]))
        probabilities.append(outputs["probabilities"].numpy())
        known.append(outputs["known"].numpy())
    return np.concatenate(probabilities), np.concatenate(known)


def predictor(job, path):
    serve = load_serving(path)
    return lambda encoded, images: serving_outputs(serve, encoded)
