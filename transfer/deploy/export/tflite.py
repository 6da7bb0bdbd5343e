"""The TFLite files, float32 and int8: RGB images at the model's size, values 0-255, in; the
deployed model's four named outputs (signature `serving_default`; transfer.inference.deployed):
`probabilities` (calibrated, K wide) and `known` (1.0 or 0.0) for an app, `logits` (already
divided by the temperature) and `novelty`, which `transfer predict` reads. Each file carries
the standard TFLite Metadata (tflite_metadata: what MediaPipe Tasks reads, the class names
as labels.txt) and a JSON `calibration` entry (the threshold `known` uses). The [-1, 1]
scaling is inside; int8 quantizes the backbone's weights and activations (calibrated on
training images), keeps the head, the novelty score and the app outputs in float32
(int8_float_ops) and a float interface."""

import json
from pathlib import Path

import numpy as np

from transfer.calibration.novelty import all_methods
from transfer.core.progress import Progress
from transfer.deploy.export.tflite_metadata import METADATA_NAME, standard_metadata, with_labels
from transfer.inference.bundle import CALIBRATION_METADATA
from transfer.inference.litert import tflite_bytes
from transfer.inference.runners import LiteRTRunner

HEAD_FLOAT_OPS = ("FULLY_CONNECTED",)  # the Dense head
# transfer.core.task.probability_ops and the known flag (transfer.inference.deployed)
APP_OUTPUT_FLOAT_OPS = ("ZEROS_LIKE", "CONCATENATION", "SOFTMAX", "LESS_EQUAL", "CAST")


def int8_float_ops():
    """What the int8 file computes in float32: the head's and the novelty scores' op types.

    Quantized, their ranges would come from training photos, and a photo of none of the
    classes, whose score lies beyond them, would be clipped to a known one's; the backbone,
    nearly all of the work, stays int8 (none of these op types is in MobileNetV2's backbone).
    Every method's ops: a graph holds one method's, and naming op types absent from it
    changes nothing."""
    methods = (op for method in all_methods() for op in method.float_ops)
    ops = [*HEAD_FLOAT_OPS, *methods, *APP_OUTPUT_FLOAT_OPS]
    return tuple(dict.fromkeys(ops))


def write_float32(job, path):
    write_tflite(job, path, tflite_bytes(job.plain_saved_model))


def write_int8(job, path):
    representative = job.representative_images()
    with Progress("export: int8 calibration", len(representative)) as progress:
        converted = tflite_bytes(job.plain_saved_model, representative, progress, int8_float_ops())
    write_tflite(job, path, converted)


def write_tflite(job, path, converted):
    runner = LiteRTRunner(converted)
    metadata = standard_metadata(job.task, job.calibration, runner.image_size, runner.output_order)
    entries = {METADATA_NAME: metadata, CALIBRATION_METADATA: json.dumps(job.calibration).encode()}
    Path(path).write_bytes(with_labels(with_metadata(converted, entries), job.task.class_names))


def with_metadata(flatbuffer, entries):
    """The .tflite file with {name: bytes} added to its metadata, so they travel with it."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(flatbuffer)
    for name, content in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(content, dtype=np.uint8)
        model.buffers.append(buffer)
        metadata = schema.MetadataT()
        metadata.name = name
        metadata.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), metadata]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def predictor(job, path):
    runner = LiteRTRunner(path)
    return lambda encoded, images: job.probabilities_and_known(runner.run(images))
