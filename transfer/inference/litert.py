"""LiteRT: Keras models converted to .tflite, cached by content, run by XNNPACK.

On a CPU, LiteRT runs the same float32 network 2-4x faster than TensorFlow's
own forward pass. A conversion takes seconds, so it is cached in the user's
private cache (`$XDG_CACHE_HOME/transfer/litert`, default `~/.cache/transfer/litert`;
transfer.core.cache: checked before every use, never a shared folder): a `.keras` file's
under the sha256 of the file, an in-memory model's (extract's frozen base) under that
of its architecture and weights. The cache lives outside the project, so no stage writes
anything it does not declare. A changed model has another key, so a stale conversion is
never used. Conversions are handed over as the checked bytes (LiteRTRunner runs bytes or a file).
TensorFlow is imported only to convert: running a .tflite file needs LiteRT alone.
"""

import contextlib
import hashlib
import sys
import tempfile

import numpy as np

from transfer.core.cache import PrivateCache
from transfer.core.errors import one_line
from transfer.core.quiet import converter_lines_filtered

CACHE = PrivateCache("litert", ".tflite")


class ConversionError(Exception):
    """A model that loads but that LiteRT cannot run (an op it lacks)."""


def announce_conversion():
    print(f"LiteRT: converting the model once (cached in {CACHE.folder})", file=sys.stderr, flush=True)


def cached_conversion(key, convert, announce=announce_conversion):
    """The .tflite bytes cached under key, or convert() -> bytes on a miss (then cached)."""
    return CACHE.get(key, convert, announce)


def cached_tflite(key, build):
    """The float32 .tflite bytes of the Keras model build() returns, cached under key: a
    content key (transfer.inference.bundle.ModelBundle.key, or network_key), so build() runs
    only on a miss. ConversionError when LiteRT cannot take the model."""

    def convert():
        from transfer.models.loading import computing_in_float32

        model = build()  # a file that cannot be loaded: its PipelineError, before any notice
        announce_conversion()
        try:
            return model_as_tflite_bytes(computing_in_float32(model))
        except Exception as error:  # the converter fails in many ways; all mean "not convertible"
            raise ConversionError(one_line(error)) from None

    return cached_conversion(key, convert, announce=None)


def network_key(model):
    """The cache key of an in-memory Keras model: the sha256 of its architecture and weights."""
    digest = hashlib.sha256(model.to_json().encode())
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


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
    """The .tflite flatbuffer of plain_saved_model's folder: float32, or int8 with
    representative images (transfer.deploy.export.tflite).

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
