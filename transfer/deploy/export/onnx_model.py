"""The ONNX file: the deployed model (transfer.inference.deployed) as Keras exports it through
tf2onnx. Input: RGB images at the model's size, values 0-255, float32 (N, size, size, 3).
Outputs by name: `probabilities` (calibrated, K wide) and `known` (1.0 or 0.0) for an app,
`logits` (divided by the temperature) and `novelty`, which `transfer predict` reads. Its
metadata properties carry `class_names` and `calibration` (JSON), as the TFLite files'
entries do. ONNX Runtime runs it (transfer.inference.runners.OnnxRunner)."""

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from transfer.core.artifacts import classes_json
from transfer.core.quiet import info_lines_filtered
from transfer.inference.bundle import CALIBRATION_METADATA, CLASSES_METADATA
from transfer.inference.runners import OnnxRunner


def write(job, path):
    import onnx

    model = job.float32_model
    size = model.input_shape[1]
    model.predict_on_batch(np.zeros((1, size, size, 3), np.float32))  # Keras exports a model once it is built
    image = tf.TensorSpec([None, size, size, 3], tf.float32, name="image")
    with tempfile.TemporaryDirectory() as scratch, info_lines_filtered(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # Keras's tf2onnx shim probes np.object
        exported = Path(scratch) / "model.onnx"
        model.export(str(exported), format="onnx", input_signature=[image], verbose=False)
        proto = onnx.load(exported)
    proto.metadata_props.add(key=CLASSES_METADATA, value=classes_json(job.task.class_names))
    proto.metadata_props.add(key=CALIBRATION_METADATA, value=json.dumps(job.calibration))
    onnx.save(proto, path)


def predictor(job, path):
    runner = OnnxRunner(path)
    return lambda encoded, images: job.probabilities_and_known(runner.run(images))
