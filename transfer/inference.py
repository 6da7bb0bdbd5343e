"""Running a trained network: Keras or LiteRT, logits of images, test-time augmentation.

Evaluation, predict and export all run models through this module.
"""

import os

import numpy as np

from transfer.artifacts import DEPLOYED_OUTPUTS
from transfer.errors import PipelineError, one_line
from transfer.litert import keras_file_as_tflite, model_as_tflite
from transfer.quiet import info_lines_filtered


def with_mirror(outputs_of, task):
    """Test-time augmentation: outputs_of(images) -> logits whose probabilities are the
    mean of each image's prediction and its left-right mirror's; for named outputs
    ({logits, novelty}), those logits and the mean of the two novelty scores."""

    def averaged(images):
        mirrored = np.ascontiguousarray(images[:, :, ::-1])
        original, flipped = outputs_of(images), outputs_of(mirrored)
        if not isinstance(original, dict):
            return task.mean_logits(original, flipped)
        return {
            name: task.mean_logits(value, flipped[name]) if name == "logits" else (value + flipped[name]) / 2
            for name, value in original.items()
        }

    return averaged


def keras_logits(model):
    """images -> (N, logit_width) logits of a Keras model."""

    def logits_of(images):
        outputs = np.asarray(model.predict_on_batch(images))
        return outputs.reshape(len(outputs), -1)

    return logits_of


def logits_of_file(model_path, runtime, threads=0):
    """images -> (N, logit width) logits of a .keras file, run by `runtime`
    (evaluate.runtime): tensorflow (Keras), or litert (its cached float32 conversion,
    XNNPACK on `threads` threads, 0: every core)."""
    if runtime == "tensorflow":
        from transfer.model import load_model

        return keras_logits(load_model(model_path))
    return TFLiteModel(keras_file_as_tflite(model_path), threads).logits


def named_outputs(outputs):
    """{name: (N, width) array} of a model's outputs: a deployed model's `logits` and
    `novelty` (transfer.deployed), or a plain classifier's logits alone."""
    if not isinstance(outputs, dict):
        outputs = {"logits": outputs}
    return {name: np.asarray(value).reshape(len(value), -1) for name, value in outputs.items()}


RUNTIMES = ("auto", "keras", "litert")  # what runs a model file in `transfer predict`


class TFLiteModel:
    """A .tflite model (a file's path, or the bytes of a cached conversion) run by LiteRT's
    interpreter (ai-edge-litert), XNNPACK on `threads` threads (None or 0: every core). A
    deployed model has two named outputs, `logits` and `novelty` (transfer.deployed); any
    other model's first output is its logits
    (or, for a feature extractor, its features). calibration: what its outputs were
    calibrated with (read_calibration), or None."""

    def __init__(self, model, threads=None, calibration=None):
        from ai_edge_litert.interpreter import Interpreter

        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        try:
            with info_lines_filtered():
                self.interpreter = Interpreter(**source, num_threads=threads or os.cpu_count())
        except (ValueError, RuntimeError) as error:  # not a model LiteRT can read
            name = "the converted model" if isinstance(model, bytes) else model
            raise PipelineError(f"cannot run {name} with LiteRT: {one_line(error)}") from None
        self.calibration = calibration
        self.input = self.interpreter.get_input_details()[0]
        signatures = self.interpreter._get_full_signature_list()  # {key: {"outputs": {name: tensor}}}
        named = next(iter(signatures.values()))["outputs"] if len(signatures) == 1 else {}
        if set(named) != set(DEPLOYED_OUTPUTS):
            named = {"logits": self.interpreter.get_output_details()[0]["index"]}
        self.output_tensors = named
        self.image_size = int(self.input["shape"][1])
        shapes = {detail["index"]: detail["shape"] for detail in self.interpreter.get_output_details()}
        self.logit_width = int(shapes[named["logits"]][-1])
        self.batch = None

    def run(self, images):
        """{name: (N, width) float32 array} of uint8 or float images, values 0-255."""
        if self.batch != len(images):
            self.interpreter.resize_tensor_input(self.input["index"], [len(images), *self.input["shape"][1:]])
            with info_lines_filtered():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter.allocate_tensors()
            self.batch = len(images)
        self.interpreter.set_tensor(self.input["index"], images.astype(np.float32))
        self.interpreter.invoke()
        return {
            name: self.interpreter.get_tensor(index).reshape(len(images), -1)
            for name, index in self.output_tensors.items()
        }

    def logits(self, images):
        """(N, logit_width) float64 logits."""
        return self.run(images)["logits"].astype(np.float64)

    def outputs(self, images):
        """(N, output width) float32 outputs of a single-output file (logits, or features)."""
        return self.run(images)["logits"]


def outputs_of(model, runtime, threads=0):
    """images -> outputs of a Keras model, run by `runtime` (extract.runtime, evaluate.runtime):
    tensorflow (its predict_on_batch) or litert (its cached float32 conversion, XNNPACK
    on `threads` threads, 0: every core)."""
    if runtime == "tensorflow":
        return model.predict_on_batch
    from transfer.model import computing_in_float32

    return TFLiteModel(model_as_tflite(computing_in_float32(model)), threads).outputs
