"""What a trained model is, read from its files once: the network file, its class names, its
calibration and novelty statistics, and a content key.

A `.keras` model is the fine-tuning stage's network with classes.json beside it and, once
the calibrate stage ran, calibration.json and novelty.npz (transfer.core.artifacts). An
exported `.tflite` or `.onnx` file carries its class names and its calibration in its
metadata (its graph holds the statistics); classes.json beside it, if any, wins. Everything that opens a
model (predict, evaluate, export) starts here; the runners (transfer.inference.runners) are
built from a bundle.
"""

import functools
import hashlib
import json
import struct
import zipfile
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

KERAS_SUFFIX, TFLITE_SUFFIX, ONNX_SUFFIX = ".keras", ".tflite", ".onnx"
# The outputs of a calibrated model, by name (transfer.inference.deployed): logits divided by
# the temperature, and the novelty score, which `transfer predict` reads; then the calibrated
# probabilities and the known flag, for apps that run an exported file as it is.
DEPLOYED_OUTPUTS = ("logits", "novelty")
APP_OUTPUTS = ("probabilities", "known")
# An exported file's metadata entries, JSON: its class names, and its calibration
# (calibration.json; the statistics are in the graph). An ONNX file carries both as metadata
# properties. A .tflite file carries its class names as labels.txt, the standard metadata's
# axis labels of its probabilities (transfer.deploy.export.tflite_metadata; files exported
# before it carried them have the JSON entry), and its calibration as a JSON entry: the
# standard schema has no place for it.
CLASSES_METADATA = "class_names"
CALIBRATION_METADATA = "calibration"
METADATA_ENTRIES = (CLASSES_METADATA, CALIBRATION_METADATA)
TFLITE_LABELS_FILE = "labels.txt"
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
    readers = {KERAS_SUFFIX: keras_bundle, TFLITE_SUFFIX: tflite_bundle, ONNX_SUFFIX: onnx_bundle}
    if path.suffix not in readers:
        raise PipelineError(f"unsupported model file: {path} (expected {', '.join(readers)})")
    return readers[path.suffix](path)


def keras_bundle(path):
    companions = calibration_files(path.parent)
    calibration, statistics = read_calibration_files(companions)
    return ModelBundle(path, tuple(class_names_beside(path)), calibration, statistics, tuple(companions))


def class_names_beside(path):
    return read_classes_file(
        path.parent, "class names not found: {path} (it is written beside the model by the pipeline)"
    )


def tflite_bundle(path):
    metadata = tflite_metadata(path)
    labels = tflite_labels(path)
    content = {"class_names": labels} if labels is not None else metadata.get(CLASSES_METADATA)
    return exported_bundle(path, content, metadata.get(CALIBRATION_METADATA))


def onnx_bundle(path):
    """An ONNX file's bundle, from its metadata properties (read by ONNX Runtime without
    optimizing the graph: 0.07 s, where importing the onnx package alone takes over 1 s)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        properties = session.get_modelmeta().custom_metadata_map
        metadata = {name: json.loads(properties[name]) for name in METADATA_ENTRIES if name in properties}
    except Exception as error:  # onnxruntime's own types (InvalidProtobuf, Fail, ...), JSON's
        raise PipelineError(f"damaged ONNX model: {path} ({one_line(error)})") from None
    return exported_bundle(path, metadata.get(CLASSES_METADATA), metadata.get(CALIBRATION_METADATA))


def exported_bundle(path, classes, calibration):
    """An exported file's bundle: classes.json beside it, if any, wins over its metadata's."""
    if (path.parent / CLASSES_FILE).is_file() or classes is None:
        class_names = class_names_beside(path)
    else:
        class_names = checked_class_names(classes, f"{path}'s metadata")
    return ModelBundle(path, tuple(class_names), calibration, None)


def tflite_labels(path):
    """The class names in a .tflite file's labels.txt, or None when it carries none."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.read(TFLITE_LABELS_FILE).decode().splitlines()
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None


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
            if name in METADATA_ENTRIES:
                found[name] = json.loads(model.Buffers(metadata.Buffer()).DataAsNumpy().tobytes())
    except (struct.error, IndexError, AttributeError, ValueError, UnicodeDecodeError) as error:
        raise PipelineError(f"damaged TFLite model: {path} ({one_line(error)})") from None
    return found
