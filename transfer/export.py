"""Export the fine-tuned model for serving (SavedModel) and for phones (TFLite).

Every format is the deployed model (transfer.deployed): the temperature and the novelty
score are inside, so probabilities are calibrated and unknown photos are flagged alike.

- SavedModel: a `serve` signature (also `serving_default`) that takes encoded
  image bytes (JPEG, PNG, GIF, BMP) and returns `label` (class name),
  `score` (its calibrated probability), `probabilities` (of every class, K wide),
  `known` (true at or below the saved novelty threshold), `novelty` (the score) and,
  for two classes, `probability` (of the second class). Decoding, a JPEG's
  EXIF orientation and resizing run inside the graph, as TF Serving needs; the
  decision is the Task's. The class names and the calibration are also in
  `assets.extra/` (classes.json, calibration.json).
- TFLite float32 and int8: RGB images at the model's size, values 0-255, in; two
  named outputs (signature `serving_default`): `logits`, already divided by the
  temperature (one for two classes, K for K; the calibrated probabilities are their
  sigmoid/softmax, see transfer.task), and `novelty` (one per image). A client
  computes probabilities from `logits` and known = novelty <= threshold, the threshold
  in the file's `calibration` metadata (JSON, beside `class_names`). The [-1, 1]
  scaling is inside; int8 quantizes the backbone's weights and activations (calibrated on
  training images), keeps the head and the novelty score in float32 (INT8_FLOAT_OPS) and
  a float interface.
"""

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer.artifacts import (
    CALIBRATION_FILE,
    EXPORT,
    MODEL,
    PREPARED,
    TFLITE_CALIBRATION_METADATA,
    TFLITE_CLASSES_METADATA,
    classes_json,
    read_calibration,
    read_class_names,
    write_class_names,
)
from transfer.deployed import deployed_model
from transfer.inference import TFLiteModel, named_outputs
from transfer.io import atomic_path, write_json
from transfer.litert import plain_saved_model, tflite_bytes
from transfer.model import computing_in_float32, load_model
from transfer.originals import original_batches
from transfer.progress import Progress
from transfer.records import write_record
from transfer.serving import decode_for_serving
from transfer.shards import image_count, read_shards
from transfer.task import Task


def export_saved_model(model, task, calibration, path):
    """Write a SavedModel whose signature maps encoded image bytes to label, score, known, novelty."""
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
            "known": novelty <= threshold,
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


# What the int8 file computes in float32: the head's and the novelty score's op types (dense
# layers and matrix products, the norm, top-k, differences, sums, minimum, root). Quantized,
# their ranges would come from training photos, and a photo of none of the classes, whose
# score lies beyond them, would be clipped to a known one's; the backbone, nearly all of the
# work, stays int8 (none of these op types is in MobileNetV2's backbone).
INT8_FLOAT_OPS = (
    "FULLY_CONNECTED",
    "SQUARE",
    "SUM",
    "SQRT",
    "MAXIMUM",
    "DIV",
    "TOPK_V2",
    "STRIDED_SLICE",
    "SUB",
    "SQUARED_DIFFERENCE",
    "REDUCE_MIN",
    "EXPAND_DIMS",
)


def export_tflite(saved_model, task, calibration, path, representative_images=None, progress=None):
    """Write a .tflite file from plain_saved_model's folder: float32, or int8 when
    representative images are given (progress, if any, counts them as calibration runs)."""
    float_ops = INT8_FLOAT_OPS if representative_images is not None else ()
    converted = tflite_bytes(saved_model, representative_images, progress, float_ops)
    entries = {
        TFLITE_CLASSES_METADATA: classes_json(task.class_names),
        TFLITE_CALIBRATION_METADATA: json.dumps(calibration),
    }
    Path(path).write_bytes(with_metadata(converted, entries))


def with_metadata(flatbuffer, entries):
    """The .tflite file with {name: text} added to its metadata, so they travel with it."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(flatbuffer)
    for name, text in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(text.encode(), dtype=np.uint8)
        model.buffers.append(buffer)
        metadata = schema.MetadataT()
        metadata.name = name
        metadata.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), metadata]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


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


def first_images(split, count, prepared_dir=PREPARED):
    images = []
    for shard_images, _, _ in read_shards(prepared_dir, split):
        images.append(shard_images[: count - sum(len(part) for part in images)])
        if sum(len(part) for part in images) >= count:
            break
    return np.concatenate(images)


def export_model(config, data):
    classifier = load_model(MODEL)
    task = Task(read_class_names(MODEL))
    calibration, statistics = read_calibration(MODEL)
    model = deployed_model(classifier, calibration, statistics)
    threshold = calibration["novelty"]["threshold"]

    with atomic_path(EXPORT) as out:
        out.mkdir()
        write_class_names(out, task.class_names)
        with Progress("export: converting", 3, unit="files") as progress:
            export_saved_model(model, task, calibration, out / "saved_model")
            progress.update(1)
            with plain_saved_model(computing_in_float32(model)) as saved_model:
                export_tflite(saved_model, task, calibration, out / "model_float32.tflite")
                progress.update(1)
                representative = first_images("train", config["calibration_images"])
                with Progress("export: int8 calibration", len(representative)) as calibrating:
                    export_tflite(
                        saved_model, task, calibration, out / "model_int8.tflite", representative, calibrating
                    )
                progress.update(1)

        serve = load_serving(out / "saved_model")
        tflites = {name: TFLiteModel(out / f"model_{name}.tflite") for name in ("float32", "int8")}

        def probabilities_and_known(outputs):
            return task.probabilities(outputs["logits"]), outputs["novelty"][:, 0] <= threshold

        # Every format's calibrated probabilities and known flags on the test split's original
        # files, through that format's own preprocessing: the SavedModel gets the bytes; Keras
        # and TFLite get the images a client makes of them, as `predict` does. Streamed batch by
        # batch: memory stays flat. Parity: each format against Keras, photo by photo.
        outputs_of = {
            "keras": lambda encoded, images: probabilities_and_known(
                named_outputs(model.predict_on_batch(images))
            ),
            "saved_model": lambda encoded, images: serving_outputs(serve, encoded),
            **{
                f"tflite_{name}": lambda encoded, images, tflite=tflite: probabilities_and_known(
                    tflite.run(images)
                )
                for name, tflite in tflites.items()
            },
        }
        correct, known_agreeing = dict.fromkeys(outputs_of, 0), dict.fromkeys(outputs_of, 0)
        largest_difference = dict.fromkeys(outputs_of, 0.0)
        count, known_count = 0, 0
        total = image_count(PREPARED, ["test"])
        # The first latency_images test photos, as each format takes them (across batches).
        timed_files, timed_images = [], []
        with Progress("export: measuring every format", total) as progress:
            for encoded, images, labels in original_batches(data, PREPARED, "test", TEST_BATCH):
                images = images.astype(np.float32)
                results = {name: outputs(encoded, images) for name, outputs in outputs_of.items()}
                reference_probabilities, reference_known = results["keras"]
                for name, (probabilities, known) in results.items():
                    correct[name] += int(np.sum(task.predicted(probabilities) == labels))
                    difference = float(np.abs(probabilities - reference_probabilities).max())
                    largest_difference[name] = max(largest_difference[name], difference)
                    known_agreeing[name] += int(np.sum(known == reference_known))
                count += len(labels)
                known_count += int(np.sum(reference_known))
                wanted = config["latency_images"] - len(timed_files)
                timed_files += encoded[:wanted]
                timed_images += list(images[:wanted])
                progress.update(len(labels))

        latency = {
            "keras": mean_latency_ms(lambda image: model.predict_on_batch(image[np.newaxis]), timed_images),
            "saved_model": mean_latency_ms(lambda data: serving_outputs(serve, [data]), timed_files),
            **{
                f"tflite_{name}": mean_latency_ms(
                    lambda image, tflite=tflite: tflite.run(image[np.newaxis]), timed_images
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
            for name in outputs_of
        }
        parity = {
            name: {
                "largest_probability_difference": largest_difference[name],
                "known_agreement": known_agreeing[name] / count,
            }
            for name in outputs_of
            if name != "keras"
        }
    write_record(
        "export",
        {
            **report,
            "test_images": count,
            "latency_images": len(timed_images),
            "known_test_share": known_count / count,
            "parity_with_keras": parity,
        },
    )
