"""Export the fine-tuned model for serving (SavedModel) and for phones (TFLite).

- SavedModel: a `serve` signature (also `serving_default`) that takes encoded
  image bytes (JPEG, PNG, GIF, BMP) and returns `label` (class name),
  `score` (its probability), `probabilities` (of every class, K wide) and,
  for two classes, `probability` (of the second class). Decoding and resizing
  run inside the graph, as TF Serving needs; the decision is the Task's. The
  class names are also in `assets.extra/classes.json`.
- TFLite float32 and int8: RGB images at the model's size, values 0-255, in;
  the logits out (one for two classes, K for K; probabilities are their
  sigmoid/softmax, see transfer.task). The [-1, 1] scaling is inside; int8
  quantizes weights and activations (calibrated on training images) and keeps
  a float interface. The class names are in the file's metadata.
"""

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer.litert import tflite_bytes
from transfer.predict import CLASSES_FILE, TFLITE_CLASSES_METADATA


def classes_json(task):
    return json.dumps({"class_names": list(task.class_names)}) + "\n"


def export_saved_model(model, task, path):
    """Write a SavedModel whose signature maps encoded image bytes to label and score."""
    size = model.input_shape[1]
    names = tf.constant(list(task.class_names))

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [size, size], antialias=True)
        return tf.clip_by_value(image, 0, 255)

    def serve(image_bytes):
        images = tf.map_fn(
            decode, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32)
        )
        predicted, score, probabilities = task.serving_outputs(model(images, training=False))
        outputs = {"label": tf.gather(names, predicted), "score": score, "probabilities": probabilities}
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
    (extra / CLASSES_FILE).write_text(classes_json(task))


def export_tflite(saved_model, task, path, representative_images=None, progress=None):
    """Write a .tflite file from plain_saved_model's folder: float32, or int8 when
    representative images are given (progress, if any, counts them as calibration runs)."""
    converted = tflite_bytes(saved_model, representative_images, progress)
    Path(path).write_bytes(with_class_names(converted, task))


def with_class_names(flatbuffer, task):
    """The .tflite file with the class names added to its metadata, so they travel with it."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(flatbuffer)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(classes_json(task).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name = TFLITE_CLASSES_METADATA
    metadata.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), metadata]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def encode_png(images):
    """Lossless encodings of uint8 images, to feed the SavedModel exactly the test images."""
    return [tf.io.encode_png(image).numpy() for image in images]


def load_serving(path):
    """The serving signature of a SavedModel on disk: image_bytes -> label, score, probabilities."""
    return tf.saved_model.load(str(path)).signatures["serving_default"]


def serving_probabilities(serve, encoded_images, batch_size=32):
    """(N, num_classes) probabilities of every class for each encoded image."""
    outputs = [
        serve(image_bytes=tf.constant(encoded_images[start : start + batch_size]))["probabilities"].numpy()
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
