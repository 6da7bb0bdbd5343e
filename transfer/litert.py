"""LiteRT: Keras models converted to .tflite, cached by content, run by XNNPACK.

On a CPU, LiteRT runs the same float32 network 2-4x faster than TensorFlow's
own forward pass. A conversion takes seconds, so it is cached in the user's
cache (`$XDG_CACHE_HOME/transfer/litert`, default `~/.cache/transfer/litert`):
a `.keras` file's under the sha256 of the file, an in-memory model's (extract's
frozen base) under that of its architecture and weights. The cache lives
outside the project, so no stage writes anything it does not declare. A changed
model has another key, so a stale conversion is never used; where the folder
cannot be written, a temporary folder holds the cache instead.
TensorFlow is imported only to convert: running a .tflite file needs LiteRT alone.
"""

import contextlib
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from transfer.errors import one_line
from transfer.io import atomic_path, file_sha256
from transfer.quiet import info_lines_filtered


class ConversionError(Exception):
    """A model that loads but that LiteRT cannot run (an op it lacks), or nowhere to cache it."""


def user_cache():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "transfer" / "litert"


def temporary_cache():
    return Path(tempfile.gettempdir()) / "transfer-litert-cache"


def cached_conversion(key, convert):
    """<user cache>/<key>.tflite (or the temporary cache's), written by convert() -> bytes on a miss."""
    places = [user_cache(), temporary_cache()]
    for place in places:
        if (place / f"{key}.tflite").is_file():
            return place / f"{key}.tflite"
    print(f"LiteRT: converting the model once (cached in {places[0]})", file=sys.stderr, flush=True)
    converted = convert()
    for place in places:
        try:
            place.mkdir(parents=True, exist_ok=True)
            with atomic_path(place / f"{key}.tflite") as temporary:
                temporary.write_bytes(converted)
            return place / f"{key}.tflite"
        except OSError:
            continue  # read-only: the next place
    raise ConversionError(f"cannot write the LiteRT conversion to {places[0]} or {places[-1]}")


def keras_file_as_tflite(model_path):
    """The float32 .tflite of a .keras file, from the cache."""
    model_path = Path(model_path)

    def convert():
        from transfer.model import computing_in_float32, load_model

        model = computing_in_float32(load_model(model_path))  # a file that cannot load: PipelineError
        try:
            return model_as_tflite_bytes(model)
        except Exception as error:  # the converter fails in many ways; all mean "not convertible"
            raise ConversionError(one_line(error)) from None

    return cached_conversion(file_sha256(model_path), convert)


def model_as_tflite(model):
    """The float32 .tflite of an in-memory Keras model, from the cache."""
    digest = hashlib.sha256(model.to_json().encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return cached_conversion(digest.hexdigest(), lambda: model_as_tflite_bytes(model))


def model_as_tflite_bytes(model):
    with plain_saved_model(model) as saved_model:
        return tflite_bytes(saved_model)


@contextlib.contextmanager
def plain_saved_model(model):
    """The model as a plain SavedModel (images -> outputs) in a temporary folder: what the
    TFLite converter reads (the export stage converts both of its files from one)."""
    with tempfile.TemporaryDirectory() as saved_model:
        model.export(saved_model, format="tf_saved_model", verbose=False)
        yield saved_model


def tflite_bytes(saved_model, representative_images=None, progress=None):
    """The .tflite flatbuffer of plain_saved_model's folder (see export_tflite)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    if representative_images is not None:

        def calibration_inputs():
            for image in representative_images:
                yield [image[np.newaxis].astype(np.float32)]
                if progress is not None:
                    progress.update(1)

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration_inputs
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with info_lines_filtered():  # the converter's dozens of C++ INFO lines
        return converter.convert()


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
