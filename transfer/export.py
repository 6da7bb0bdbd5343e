"""Export the fine-tuned model for serving (SavedModel) and for phones (TFLite).

- SavedModel: a `serve` signature (also `serving_default`) that takes encoded
  image bytes (JPEG, PNG, GIF, BMP) and returns `label` (class name),
  `score` (its probability), `probabilities` (of every class, K wide) and,
  for two classes, `probability` (of the second class). Decoding, a JPEG's
  EXIF orientation and resizing run inside the graph, as TF Serving needs; the
  decision is the Task's. The class names are also in `assets.extra/classes.json`.
- TFLite float32 and int8: RGB images at the model's size, values 0-255, in;
  the logits out (one for two classes, K for K; probabilities are their
  sigmoid/softmax, see transfer.task). The [-1, 1] scaling is inside; int8
  quantizes weights and activations (calibrated on training images) and keeps
  a float interface. The class names are in the file's metadata.
"""

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer.artifacts import (
    EXPORT,
    MODEL,
    PREPARED,
    TFLITE_CLASSES_METADATA,
    classes_json,
    read_class_names,
    write_class_names,
)
from transfer.inference import TFLiteModel
from transfer.io import atomic_path, write_json
from transfer.litert import plain_saved_model, tflite_bytes
from transfer.model import computing_in_float32, load_model
from transfer.originals import original_batches
from transfer.progress import Progress
from transfer.serving import decode_for_serving
from transfer.shards import image_count, read_shards
from transfer.task import Task


def export_saved_model(model, task, path):
    """Write a SavedModel whose signature maps encoded image bytes to label and score."""
    size = model.input_shape[1]
    names = tf.constant(list(task.class_names))

    def serve(image_bytes):
        images = tf.map_fn(
            lambda encoded: decode_for_serving(encoded, size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
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
    write_class_names(extra, task.class_names)


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
    buffer.data = np.frombuffer(classes_json(task.class_names).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name = TFLITE_CLASSES_METADATA
    metadata.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), metadata]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


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


TEST_BATCH = 64  # inference batch for the accuracy of each exported format


def first_images(split, count):
    images = []
    for shard_images, _, _ in read_shards(PREPARED, split):
        images.append(shard_images[: count - sum(len(part) for part in images)])
        if sum(len(part) for part in images) >= count:
            break
    return np.concatenate(images)


def export_model(config, data):
    model = load_model(MODEL)
    task = Task(read_class_names(MODEL))

    with atomic_path(EXPORT) as out:
        out.mkdir()
        write_class_names(out, task.class_names)
        with Progress("export: converting", 3, unit="files") as progress:
            export_saved_model(model, task, out / "saved_model")
            progress.update(1)
            with plain_saved_model(computing_in_float32(model)) as saved_model:
                export_tflite(saved_model, task, out / "model_float32.tflite")
                progress.update(1)
                calibration = first_images("train", config["calibration_images"])
                with Progress("export: int8 calibration", len(calibration)) as calibrating:
                    export_tflite(saved_model, task, out / "model_int8.tflite", calibration, calibrating)
                progress.update(1)

        serve = load_serving(out / "saved_model")
        tflites = {name: TFLiteModel(out / f"model_{name}.tflite") for name in ("float32", "int8")}
        # Every format's probabilities on the test split's original files, through that format's
        # own preprocessing: the SavedModel gets the bytes; Keras and TFLite get the images a
        # client makes of them, as `predict` does. Streamed batch by batch: memory stays flat.
        probabilities_of = {
            "keras": lambda encoded, images: task.probabilities(np.asarray(model.predict_on_batch(images))),
            "saved_model": lambda encoded, images: serving_probabilities(serve, encoded),
            **{
                f"tflite_{name}": lambda encoded, images, tflite=tflite: task.probabilities(
                    tflite.logits(images)
                )
                for name, tflite in tflites.items()
            },
        }
        correct, count = dict.fromkeys(probabilities_of, 0), 0
        total = image_count(PREPARED, ["test"])
        # The first latency_images test photos, as each format takes them (across batches).
        timed_files, timed_images = [], []
        with Progress("export: measuring every format", total) as progress:
            for encoded, images, labels in original_batches(data, PREPARED, "test", TEST_BATCH):
                images = images.astype(np.float32)
                for name, probabilities in probabilities_of.items():
                    correct[name] += int(np.sum(task.predicted(probabilities(encoded, images)) == labels))
                count += len(labels)
                wanted = config["latency_images"] - len(timed_files)
                timed_files += encoded[:wanted]
                timed_images += list(images[:wanted])
                progress.update(len(labels))

        latency = {
            "keras": mean_latency_ms(lambda image: model.predict_on_batch(image[np.newaxis]), timed_images),
            "saved_model": mean_latency_ms(lambda data: serving_probabilities(serve, [data]), timed_files),
            **{
                f"tflite_{name}": mean_latency_ms(
                    lambda image, tflite=tflite: tflite.logits(image[np.newaxis]), timed_images
                )
                for name, tflite in tflites.items()
            },
        }
        sizes = {
            "keras": file_size(MODEL),
            "saved_model": file_size(out / "saved_model"),
            **{f"tflite_{name}": file_size(out / f"model_{name}.tflite") for name in tflites},
        }
        report = {
            name: {"size_bytes": sizes[name], "accuracy": correct[name] / count, "latency_ms": latency[name]}
            for name in probabilities_of
        }
    write_json("metrics/export.json", {**report, "test_images": count, "latency_images": len(timed_images)})
