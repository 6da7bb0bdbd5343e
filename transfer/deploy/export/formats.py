"""The export formats, one row each: its name (its key in metrics/details/export.json), its
file in export/, the function that writes it, the one that runs it for measuring, and the
apps' runtimes (clients) that run the file as it is.

write(job, path) writes the format from an ExportJob. predictor(job, path) returns
predict(encoded, images) -> (calibrated probabilities (N, K), known (N,)): encoded are the
test photos' original bytes, images what a client decodes from them (transfer.data.images).
A format's predictor is `transfer predict`'s runner of that file; a client's is the app's
runtime, measured against it. A new format is a module with those two functions and a row
here (onnx_model is the latest).
"""

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from transfer.calibration.novelty import is_known
from transfer.core.artifacts import PREPARED
from transfer.data.shards import read_shards
from transfer.deploy.export import mediapipe_tasks, onnx_model, saved_model, tflite


@dataclass(frozen=True)
class Client:
    """An app's runtime that runs a format's file knowing only the file."""

    name: str
    predictor: Callable


@dataclass(frozen=True)
class ExportFormat:
    name: str
    file: str
    write: Callable
    predictor: Callable
    clients: tuple = ()


MEDIAPIPE = Client("mediapipe", mediapipe_tasks.predictor)
APPS = (MEDIAPIPE,)  # what runs a .tflite file in an app

FORMATS = (
    ExportFormat("saved_model", "saved_model", saved_model.write, saved_model.predictor),
    ExportFormat("tflite_float32", "model_float32.tflite", tflite.write_float32, tflite.predictor, APPS),
    ExportFormat("tflite_int8", "model_int8.tflite", tflite.write_int8, tflite.predictor, APPS),
    ExportFormat("onnx", "model.onnx", onnx_model.write, onnx_model.predictor),
)


class ExportJob:
    """What every writer and runner reads: the bundle (transfer.inference.bundle), its deployed
    Keras network, the export section of params.yaml, and what several formats share, made
    once (the float32 SavedModel the TFLite converter reads). Enter it to clean those up."""

    def __init__(self, bundle, model, config, prepared_dir=PREPARED):
        self.bundle, self.model, self.config, self.prepared_dir = bundle, model, config, prepared_dir
        self.task = bundle.task
        self.calibration = bundle.required_calibration()
        self.stack = contextlib.ExitStack()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.stack.close()

    @functools.cached_property
    def float32_model(self):
        from transfer.models.loading import computing_in_float32

        return computing_in_float32(self.model)

    @functools.cached_property
    def plain_saved_model(self):
        from transfer.inference.litert import plain_saved_model

        return self.stack.enter_context(plain_saved_model(self.float32_model))

    def representative_images(self):
        """The first export.calibration_images training images: what int8 calibrates on."""
        count, images = self.config["calibration_images"], []
        for shard_images, _, _ in read_shards(self.prepared_dir, "train"):
            images.append(shard_images[: count - sum(len(part) for part in images)])
            if sum(len(part) for part in images) >= count:
                break
        return np.concatenate(images)

    def probabilities_and_known(self, outputs):
        """(calibrated probabilities, known) of a deployed model's named outputs."""
        threshold = self.calibration["novelty"]["threshold"]
        return self.task.probabilities(outputs["logits"]), is_known(outputs["novelty"][:, 0], threshold)
