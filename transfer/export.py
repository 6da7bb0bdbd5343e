"""Export the fine-tuned model for serving (SavedModel) and for phones (TFLite).

- SavedModel: a `serve` signature (also `serving_default`) that takes encoded
  image bytes (JPEG, PNG, GIF, BMP) and returns `label` (class name),
  `score` (its probability) and `probability` (of the second class). Decoding
  and resizing run inside the graph, as TF Serving needs.
- TFLite float32 and int8: RGB images at the model's size, values 0-255, in;
  the logit out. The [-1, 1] scaling is inside; int8 quantizes weights and
  activations (calibrated on training images) and keeps a float interface.
"""

import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer.reports import THRESHOLD


def export_saved_model(model, class_names, path):
    """Write a SavedModel whose signature maps encoded image bytes to label and score."""
    size = model.input_shape[1]
    names = tf.constant(class_names)

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [size, size], antialias=True)
        return tf.clip_by_value(image, 0, 255)

    def serve(image_bytes):
        images = tf.map_fn(
            decode, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32)
        )
        probability = tf.sigmoid(model(images, training=False))[:, 0]
        predicted = tf.cast(probability > THRESHOLD, tf.int32)
        return {
            "label": tf.gather(names, predicted),
            "score": tf.where(predicted == 1, probability, 1 - probability),
            "probability": probability,
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve", fn=serve, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.write_out(str(path), verbose=False)


def export_tflite(model, path, representative_images=None):
    """Write a .tflite file: float32, or int8 when representative images are given."""
    with tempfile.TemporaryDirectory() as saved_model:
        model.export(saved_model, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        if representative_images is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [image[np.newaxis].astype(np.float32)] for image in representative_images
            )
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        Path(path).write_bytes(converter.convert())


def encode_png(images):
    """Lossless encodings of uint8 images, to feed the SavedModel exactly the test images."""
    return [tf.io.encode_png(image).numpy() for image in images]


def load_serving(path):
    """The serving signature of a SavedModel on disk: image_bytes -> label, score, probability."""
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def serving_probabilities(serve, encoded_images, batch_size=32):
    """Probability of the second class for each encoded image."""
    outputs = [
        serve(image_bytes=tf.constant(encoded_images[start : start + batch_size]))["probability"].numpy()
        for start in range(0, len(encoded_images), batch_size)
    ]
    return np.concatenate(outputs)


def mean_latency_ms(predict_one, inputs, repeats=1):
    """Mean wall time of one single-image call, in milliseconds (after one warm-up call)."""
    predict_one(inputs[0])
    start = time.perf_counter()
    for _ in range(repeats):
        for item in inputs:
            predict_one(item)
    return 1000 * (time.perf_counter() - start) / (repeats * len(inputs))


def file_size(path):
    """Bytes of a file, or of every file under a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    return path.stat().st_size
