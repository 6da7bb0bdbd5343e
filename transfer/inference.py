"""Running a trained network: Keras or LiteRT, logits of images, test-time augmentation.

Evaluation, predict and export all run models through this module.
"""

import os
import sys
from pathlib import Path

import numpy as np

from transfer.errors import PipelineError
from transfer.litert import ConversionError, keras_file_as_tflite, model_as_tflite
from transfer.quiet import info_lines_filtered


def with_mirror(logits_of, task):
    """Test-time augmentation: logits_of(images) -> logits whose probabilities
    are the mean of each image's prediction and its left-right mirror's."""

    def averaged(images):
        mirrored = np.ascontiguousarray(images[:, :, ::-1])
        return task.mean_logits(logits_of(images), logits_of(mirrored))

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


class KerasModel:
    def __init__(self, path):
        from transfer.model import load_model

        self.model = load_model(path)
        self.image_size = self.model.input_shape[1]
        self.logit_width = self.model.output_shape[-1]
        self.logits = keras_logits(self.model)


RUNTIMES = ("auto", "keras", "litert")


def open_model(path, runtime="auto"):
    """A KerasModel or TFLiteModel for a .keras or .tflite file.

    runtime: a .tflite file runs in LiteRT (auto, litert). A .keras file runs in
    Keras (keras), or in LiteRT from its cached float32 conversion (litert); auto
    is LiteRT, and Keras with one notice on stderr if the conversion fails.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"model not found: {path}")
    if path.suffix not in (".keras", ".tflite"):
        raise PipelineError(f"unsupported model file: {path} (expected .keras or .tflite)")
    if path.suffix == ".tflite":
        if runtime == "keras":
            raise PipelineError(f"--runtime keras needs a .keras model; {path} is a TFLite file")
        return TFLiteModel(path)
    if runtime == "keras":
        return KerasModel(path)

    try:
        return TFLiteModel(keras_file_as_tflite(path))
    except ConversionError as error:
        if runtime == "litert":
            raise PipelineError(f"cannot run {path} with LiteRT: {error}") from None
        print(f"notice: running {path} with Keras: LiteRT cannot ({error})", file=sys.stderr)
        return KerasModel(path)


class TFLiteModel:
    """A .tflite file run by LiteRT's interpreter (ai-edge-litert), XNNPACK on `threads`
    threads (None or 0: every core)."""

    def __init__(self, path, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        with info_lines_filtered():
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count())
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.image_size = int(self.input["shape"][1])
        self.logit_width = int(self.output["shape"][-1])
        self.batch = None

    def logits(self, images):
        """(N, logit_width) float64 logits of uint8 or float images, values 0-255."""
        return self.outputs(images).astype(np.float64)

    def outputs(self, images):
        """(N, output width) float32 outputs (logits, or a feature extractor's features)."""
        if self.batch != len(images):
            self.interpreter.resize_tensor_input(self.input["index"], [len(images), *self.input["shape"][1:]])
            with info_lines_filtered():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter.allocate_tensors()
            self.batch = len(images)
        self.interpreter.set_tensor(self.input["index"], images.astype(np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).reshape(len(images), -1)


def outputs_of(model, runtime, threads=0):
    """images -> outputs of a Keras model, run by `runtime` (extract.runtime, evaluate.runtime):
    tensorflow (its predict_on_batch) or litert (its cached float32 conversion, XNNPACK
    on `threads` threads, 0: every core)."""
    if runtime == "tensorflow":
        return model.predict_on_batch
    from transfer.model import computing_in_float32

    return TFLiteModel(model_as_tflite(computing_in_float32(model)), threads).outputs
