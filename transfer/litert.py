"""LiteRT: Keras models converted to .tflite, cached by content, run by XNNPACK.

On a CPU, LiteRT runs the same float32 network 2-4x faster than TensorFlow's
own forward pass. A conversion takes seconds, so it is cached in the user's
private cache (`$XDG_CACHE_HOME/transfer/litert`, default `~/.cache/transfer/litert`;
transfer.cache: checked before every use, never a shared folder): a `.keras` file's
under the sha256 of the file, an in-memory model's (extract's frozen base) under that
of its architecture and weights. The cache lives outside the project, so no stage writes
anything it does not declare. A changed model has another key, so a stale conversion is
never used. Conversions are handed over as the checked bytes (TFLiteModel runs bytes or a file).
TensorFlow is imported only to convert: running a .tflite file needs LiteRT alone.
"""

import contextlib
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np

from transfer.cache import PrivateCache
from transfer.errors import one_line
from transfer.io import file_sha256
from transfer.quiet import converter_lines_filtered

CACHE = PrivateCache("litert", ".tflite")


class ConversionError(Exception):
    """A model that loads but that LiteRT cannot run (an op it lacks)."""


def cached_conversion(key, convert):
    """The .tflite bytes cached under key, or convert() -> bytes on a miss (then cached)."""

    def announce():
        print(f"LiteRT: converting the model once (cached in {CACHE.folder})", file=sys.stderr, flush=True)

    return CACHE.get(key, convert, announce)


def keras_file_as_tflite(model_path, load=None, companions=()):
    """The float32 .tflite bytes of a .keras file, from the cache.

    load: () -> the Keras model to convert (default: the file's own); companions: other
    files it is built from (the calibration beside the model), part of the cache key."""
    model_path = Path(model_path)

    def convert():
        from transfer.model import computing_in_float32, load_model

        loaded = load() if load is not None else load_model(model_path)  # cannot load: PipelineError
        try:
            return model_as_tflite_bytes(computing_in_float32(loaded))
        except Exception as error:  # the converter fails in many ways; all mean "not convertible"
            raise ConversionError(one_line(error)) from None

    return cached_conversion(conversion_key(model_path, companions), convert)


def conversion_key(model_path, companions=()):
    """The cache key of a .keras file's conversion: its sha256, or with companion files, the
    sha256 of all their digests."""
    key = file_sha256(model_path)
    if companions:
        key = hashlib.sha256(" ".join([key, *map(file_sha256, companions)]).encode()).hexdigest()
    return key


def model_as_tflite(model):
    """The float32 .tflite bytes of an in-memory Keras model, from the cache."""
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


def tflite_bytes(saved_model, representative_images=None, progress=None, float_ops=()):
    """The .tflite flatbuffer of plain_saved_model's folder (see export_tflite).

    float_ops: with representative images, TFLite op types to leave in float32 (TFLite's
    selective quantization): ops whose int8 range, calibrated on in-class images, would
    clip what they compute for other photos."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    if representative_images is not None:
        counted = [0]  # selective quantization runs the images twice: count the first run

        def calibration_inputs():
            for image in representative_images:
                yield [image[np.newaxis].astype(np.float32)]
                if progress is not None and counted[0] < len(representative_images):
                    counted[0] += 1
                    progress.update(1)

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration_inputs
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # The converter's dozens of C++ INFO lines, and a few more (the debugger converts as it starts).
    with converter_lines_filtered():
        if representative_images is not None and float_ops:
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                # Its own statistics run, which nothing here reads: one image suffices.
                debug_dataset=lambda: iter([[representative_images[0][np.newaxis].astype(np.float32)]]),
                debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops)),
            )
            return debugger.get_nondebug_quantized_model()
        return converter.convert()
