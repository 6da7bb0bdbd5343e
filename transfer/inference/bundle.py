"""What a trained model is, read from its files once: the network file, its class names, its
calibration and novelty statistics, and a content key.

A `.keras` model is the fine-tuning stage's network with classes.json beside it and, once
the calibrate stage ran, calibration.json and novelty.npz (transfer.core.artifacts). An
exported `.tflite` file carries its class names and its calibration in its metadata (its
graph holds the statistics); classes.json beside it, if any, wins. Everything that opens a
model (predict, evaluate, export) starts here; the runners (transfer.inference.runners) are
built from a bundle.
"""

import functools
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from transfer.core.artifacts import (
    CLASSES_FILE,
    calibration_files,
    checked_class_names,
    model_not_found,
    read_calibration_files,
    read_classes_file,
)
from transfer.core.errors import PipelineError, one_line
from transfer.core.io import file_sha256
from transfer.core.task import Task

KERAS_SUFFIX, TFLITE_SUFFIX = ".keras", ".tflite"
# The outputs of a calibrated model, by name (transfer.inference.deployed): logits divided by
# the temperature, and the novelty score.
DEPLOYED_OUTPUTS = ("logits", "novelty")
# The metadata entries of an exported .tflite file: its class names, and what a client needs
# to read its outputs (calibration.json; the statistics are in the graph).
TFLITE_CLASSES_METADATA = "class_names"
TFLITE_CALIBRATION_METADATA = "calibration"
TFLITE_IDENTIFIER = b"TFL3"  # bytes 4-8 of every .tflite flatbuffer


@dataclass(frozen=True)
class ModelBundle:
    network: Path  # the .keras or .tflite file
    class_names: tuple
    calibration: dict | None  # calibration.json's content; None: never calibrated
    statistics: dict | None  # novelty.npz's arrays (a .keras model's; a .tflite graph holds its own)
    companions: tuple = ()  # the calibration files beside a .keras network (part of its key)

    @functools.cached_property
    def key(self):
        """sha256 of the network and its calibration files: a conversion's cache key. Hashed
        when a conversion is looked up, not on every open (novelty.npz can be tens of MB)."""
        return content_key(self.network, self.companions)

    @property
    def is_tflite(self):
        return self.network.suffix == TFLITE_SUFFIX

    @property
    def task(self):
        return Task(self.class_names)

    def required_calibration(self):
        if self.calibration is None:
            raise PipelineError(f"{self.network} is not calibrated: run the calibrate stage (dvc repro)")
        return self.calibration

    @property
    def novelty_threshold(self):
        return None if self.calibration is None else self.calibration["novelty"]["threshold"]


def open_bundle(path):
    """The ModelBundle of a .keras or .tflite file; one PipelineError line for anything missing."""
    path = Path(path)
    if not path.is_file():
        raise model_not_found(path)
    if path.suffix not in (KERAS_SUFFIX, TFLITE_SUFFIX):
        raise PipelineError(f"unsupported model file: {path} (expected .keras or .tflite)")
    if path.suffix == TFLITE_SUFFIX:
        return tflite_bundle(path)
    companions = calibration_files(path.parent)
    calibration, statistics = read_calibration_files(companions)
    return ModelBundle(path, tuple(class_names_beside(path)), calibration, statistics, tuple(companions))


def class_names_beside(path):
    return read_classes_file(
        path.parent, "class names not found: {path} (it is written beside the model by the pipeline)"
    )


def tflite_bundle(path):
    metadata = tflite_metadata(path)
    if (path.parent / CLASSES_FILE).is_file() or TFLITE_CLASSES_METADATA not in metadata:
        class_names = class_names_beside(path)
    else:
        class_names = checked_class_names(metadata[TFLITE_CLASSES_METADATA], f"{path}'s metadata")
    return ModelBundle(path, tuple(class_names), metadata.get(TFLITE_CALIBRATION_METADATA), None)


def content_key(path, companions=()):
    """The sha256 of a file or, with companion files, the sha256 of all their digests."""
    key = file_sha256(path)
    if companions:
        key = hashlib.sha256(" ".join([key, *map(file_sha256, companions)]).encode()).hexdigest()
    return key


def tflite_metadata(path):
    """{name: parsed JSON} of a .tflite file's JSON metadata entries (the export stage's)."""
    from ai_edge_litert import schema_py_generated as schema

    content = Path(path).read_bytes()
    if content[4:8] != TFLITE_IDENTIFIER:
        raise PipelineError(f"not a TFLite model: {path} (it lacks the TFL3 file identifier)")
    found = {}
    try:
        model = schema.Model.GetRootAsModel(content, 0)
        for index in range(model.MetadataLength()):
            metadata = model.Metadata(index)
            name = metadata.Name().decode()
            if name in (TFLITE_CLASSES_METADATA, TFLITE_CALIBRATION_METADATA):
                found[name] = json.loads(model.Buffers(metadata.Buffer()).DataAsNumpy().tobytes())
    except (struct.error, IndexError, AttributeError, ValueError, UnicodeDecodeError) as error:
        raise PipelineError(f"damaged TFLite model: {path} ({one_line(error)})") from None
    return found
