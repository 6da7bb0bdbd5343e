"""The TFLite files, float32 and int8: RGB images at the model's size, values 0-255, in; two
named outputs (signature `serving_default`): `logits`, already divided by the temperature
(one for two classes, K for K; the calibrated probabilities are their sigmoid/softmax, see
transfer.core.task), and `novelty` (one per image). A client computes probabilities from
`logits` and known = novelty <= threshold, the threshold in the file's `calibration`
metadata (JSON, beside `class_names`). The [-1, 1] scaling is inside; int8 quantizes the
backbone's weights and activations (calibrated on training images), keeps the head and the
novelty score in float32 (int8_float_ops) and a float interface."""

import json
from pathlib import Path

import numpy as np

from transfer.calibration.novelty import all_methods
from transfer.core.artifacts import classes_json
from transfer.core.progress import Progress
from transfer.inference.bundle import TFLITE_CALIBRATION_METADATA, TFLITE_CLASSES_METADATA
from transfer.inference.litert import tflite_bytes
from transfer.inference.runners import LiteRTRunner

HEAD_FLOAT_OPS = ("FULLY_CONNECTED",)  # the Dense head


def int8_float_ops():
    """What the int8 file computes in float32: the head's and the novelty scores' op types.

    Quantized, their ranges would come from training photos, and a photo of none of the
    classes, whose score lies beyond them, would be clipped to a known one's; the backbone,
    nearly all of the work, stays int8 (none of these op types is in MobileNetV2's backbone).
    Every method's ops: a graph holds one method's, and naming op types absent from it
    changes nothing."""
    ops = [*HEAD_FLOAT_OPS, *(op for method in all_methods() for op in method.float_ops)]
    return tuple(dict.fromkeys(ops))


def write_float32(job, path):
    write_tflite(job, path, tflite_bytes(job.plain_saved_model))


def write_int8(job, path):
    representative = job.representative_images()
    with Progress("export: int8 calibration", len(representative)) as progress:
        converted = tflite_bytes(job.plain_saved_model, representative, progress, int8_float_ops())
    write_tflite(job, path, converted)


def write_tflite(job, path, converted):
    entries = {
        TFLITE_CLASSES_METADATA: classes_json(job.task.class_names),
        TFLITE_CALIBRATION_METADATA: json.dumps(job.calibration),
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


def predictor(job, path):
    runner = LiteRTRunner(path)
    return lambda encoded, images: job.probabilities_and_known(runner.run(images))
