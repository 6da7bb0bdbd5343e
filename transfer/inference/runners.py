"""What runs a network: Keras, or LiteRT's interpreter. One vocabulary everywhere: a runtime
is `keras` or `litert` (params' extract.runtime and evaluate.runtime; `transfer predict
--runtime` adds `auto`).

A runner maps images (N x size x size x 3, values 0-255) to named outputs, {name: (N, width)
float32 array}: a calibrated model's `logits` and `novelty` (transfer.inference.deployed),
or a plain network's single output under `logits` (a feature extractor's features, too).
"""

import functools
import os
import sys

import numpy as np

from transfer.core.errors import PipelineError, one_line
from transfer.core.quiet import info_lines_filtered
from transfer.inference.bundle import DEPLOYED_OUTPUTS, ONNX_SUFFIX, TFLITE_SUFFIX
from transfer.inference.litert import ConversionError, cached_tflite, network_key

AUTO = "auto"  # predict's default: litert, else keras with a notice


def named_outputs(outputs):
    """{name: (N, width) array} of a model's outputs: a deployed model's `logits` and
    `novelty` (its outputs for apps left out), or a plain network's single output as `logits`."""
    if not isinstance(outputs, dict):
        outputs = {"logits": outputs}
    return {
        name: np.asarray(value).reshape(len(value), -1)
        for name, value in outputs.items()
        if name in DEPLOYED_OUTPUTS
    }


class KerasRunner:
    """A Keras network run by its predict_on_batch."""

    def __init__(self, model):
        self.model = model
        self.image_size = model.input_shape[1]
        output = model.output
        self.logit_width = (output["logits"] if isinstance(output, dict) else output).shape[-1]

    def run(self, images):
        return named_outputs(self.model.predict_on_batch(images))


class LiteRTRunner:
    """A .tflite model (a file's path, or the bytes of a cached conversion) run by LiteRT's
    interpreter (ai-edge-litert), XNNPACK on `threads` threads (None or 0: every core)."""

    def __init__(self, model, threads=None):
        from ai_edge_litert.interpreter import Interpreter

        source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        try:
            with info_lines_filtered():
                self.interpreter = Interpreter(**source, num_threads=threads or os.cpu_count())
        except (ValueError, RuntimeError) as error:  # not a model LiteRT can read
            name = "the converted model" if isinstance(model, bytes) else model
            raise PipelineError(f"cannot run {name} with LiteRT: {one_line(error)}") from None
        self.input = self.interpreter.get_input_details()[0]
        signatures = self.interpreter._get_full_signature_list()  # {key: {"outputs": {name: tensor}}}
        named = next(iter(signatures.values()))["outputs"] if len(signatures) == 1 else {}
        if set(DEPLOYED_OUTPUTS) <= set(named):
            self.output_tensors = {name: named[name] for name in DEPLOYED_OUTPUTS}
        else:
            self.output_tensors = {"logits": self.interpreter.get_output_details()[0]["index"]}
        # Every output's name in the graph's order (a signature's names; else the tensors')
        by_index = {index: name for name, index in named.items()}
        self.output_order = [
            by_index.get(detail["index"], detail["name"]) for detail in self.interpreter.get_output_details()
        ]
        self.image_size = int(self.input["shape"][1])
        shapes = {detail["index"]: detail["shape"] for detail in self.interpreter.get_output_details()}
        self.logit_width = int(shapes[self.output_tensors["logits"]][-1])
        self.batch = None

    def run(self, images):
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


class OnnxRunner:
    """An .onnx model run by ONNX Runtime (its CPU provider, `threads` threads; None or 0:
    every core)."""

    def __init__(self, path, threads=None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count()
        options.log_severity_level = 3  # errors only: its warnings are not the user's
        cpu = ["CPUExecutionProvider"]
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=cpu)
        except Exception as error:  # onnxruntime's own exception types (InvalidGraph, Fail, ...)
            raise PipelineError(f"cannot run {path} with ONNX Runtime: {one_line(error)}") from None
        self.input = self.session.get_inputs()[0]
        shapes = {output.name: output.shape for output in self.session.get_outputs()}
        if not set(DEPLOYED_OUTPUTS) <= set(shapes):
            lacking = " and ".join(DEPLOYED_OUTPUTS)
            raise PipelineError(f"{path} lacks the outputs {lacking}: export it with this pipeline")
        self.image_size = int(self.input.shape[1])
        self.logit_width = int(shapes["logits"][-1])

    def run(self, images):
        values = self.session.run(list(DEPLOYED_OUTPUTS), {self.input.name: images.astype(np.float32)})
        return {name: value.reshape(len(images), -1) for name, value in zip(DEPLOYED_OUTPUTS, values)}


# The exported files, each run in one runtime: its suffix -> (the runtime's name, its runner).
FILE_RUNNERS = {TFLITE_SUFFIX: ("litert", LiteRTRunner), ONNX_SUFFIX: ("onnxruntime", OnnxRunner)}


def network_runner(model, runtime, threads=0):
    """A runner of an in-memory Keras network (extract's feature extractor, evaluate's
    classifier): keras, or litert (its cached float32 conversion, XNNPACK on `threads`)."""
    if runtime == "keras":
        return KerasRunner(model)
    try:
        return LiteRTRunner(cached_tflite(network_key(model), lambda: model), threads)
    except ConversionError as error:
        raise PipelineError(f"cannot run {model.name} with LiteRT ({error}): use runtime keras") from None


def bundle_runner(bundle, runtime=AUTO):
    """The runner of a model file (transfer.inference.bundle.ModelBundle).

    An exported file runs in its own runtime (FILE_RUNNERS: a .tflite file in LiteRT, an
    .onnx file in ONNX Runtime). A .keras file runs in Keras (keras), or in LiteRT from its
    cached float32 conversion (litert); auto is LiteRT, and Keras with one notice on stderr
    if the conversion fails. Keras and TensorFlow are imported only to convert or to run
    Keras: a cached conversion runs on LiteRT alone."""
    if bundle.network.suffix in FILE_RUNNERS:
        own, runner = FILE_RUNNERS[bundle.network.suffix]
        if runtime not in (AUTO, own):
            needs = f"--runtime {runtime} needs a .keras model"
            raise PipelineError(f"{needs}; {bundle.network} runs in {own} only")
        return runner(bundle.network)
    network = functools.cache(lambda: keras_network(bundle))  # loaded at most once
    if runtime == "keras":
        return KerasRunner(network())
    try:
        return LiteRTRunner(cached_tflite(bundle.key, network))
    except ConversionError as error:
        if runtime == "litert":
            raise PipelineError(f"cannot run {bundle.network} with LiteRT: {error}") from None
        print(f"notice: running {bundle.network} with Keras: LiteRT cannot ({error})", file=sys.stderr)
        return KerasRunner(network())


def keras_network(bundle):
    from transfer.inference.deployed import keras_network  # Keras loads only when it runs or converts

    return keras_network(bundle)


def with_mirror(run, task):
    """Test-time augmentation: a runner's run whose probabilities are the mean of each
    image's and its left-right mirror's, and whose other outputs (novelty) are averaged."""

    def averaged(images):
        mirrored = np.ascontiguousarray(images[:, :, ::-1])
        original, flipped = run(images), run(mirrored)
        return {
            name: task.mean_logits(value, flipped[name]) if name == "logits" else (value + flipped[name]) / 2
            for name, value in original.items()
        }

    return averaged
