"""Where the pipeline keeps what it makes, and the class names that travel with each model.

The paths are those dvc.yaml declares (tests/test_faults.py holds every stage
to them). Class names go beside the features and each model as `classes.json`
({"class_names": [...]}, index order), into the SavedModel's assets and into
an exported .tflite file's metadata; this module writes and reads them all.
So does it the calibration beside the model (`calibration.json`: the temperature
and the novelty threshold; `novelty.npz`: the novelty score's statistics), which
the calibrate stage writes and `predict` and export read (transfer.deployed).
"""

import json
import struct
from pathlib import Path

from transfer.errors import PipelineError, one_line
from transfer.io import atomic_path, write_json

PREPARED = "data/prepared"
FEATURES = "data/features"
HEAD_MODEL = "models/head.keras"
MODEL = "models/model.keras"
EXPORT = "export"

CLASSES_FILE = "classes.json"
CALIBRATION_FILE = "calibration.json"
# The outputs of a calibrated model, by name (transfer.deployed): logits divided by the
# temperature, and the novelty score.
DEPLOYED_OUTPUTS = ("logits", "novelty")
NOVELTY_FILE = "novelty.npz"
# The names of the metadata entries of an exported .tflite file: its class names, and what
# a client needs to read its outputs (calibration.json without the statistics file).
TFLITE_CLASSES_METADATA = "class_names"
TFLITE_IDENTIFIER = b"TFL3"  # bytes 4-8 of every .tflite flatbuffer
TFLITE_CALIBRATION_METADATA = "calibration"


def classes_json(class_names):
    return json.dumps({"class_names": list(class_names)}) + "\n"


def write_class_names(folder, class_names):
    """classes.json in folder."""
    (Path(folder) / CLASSES_FILE).write_text(classes_json(class_names))


def read_classes_file(folder, missing):
    """The class names of folder/classes.json; PipelineError(missing) without it."""
    path = Path(folder) / CLASSES_FILE
    if not path.is_file():
        raise PipelineError(missing.format(path=path))
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path} is not valid JSON: {one_line(error)}") from None
    return checked_class_names(content, path)


def checked_class_names(content, source):
    """content["class_names"] when it is a list of two or more distinct, non-empty names."""
    names = content.get("class_names") if isinstance(content, dict) else None
    if (
        not isinstance(names, list)
        or len(names) < 2
        or not all(isinstance(name, str) and name.strip() for name in names)
        or len(set(names)) != len(names)
    ):
        shown = repr(names)[:80] if names is not None else "nothing"
        raise PipelineError(
            f'{source}: "class_names" must be a list of two or more distinct class names, found {shown}'
        )
    return names


def read_class_names(model_path):
    """Class names for a model: classes.json beside it, else (.tflite) the file's own metadata."""
    model_path = Path(model_path)
    if not (model_path.parent / CLASSES_FILE).is_file() and model_path.suffix == ".tflite":
        embedded = tflite_class_names(model_path)
        if embedded is not None:
            return embedded
    return read_classes_file(
        model_path.parent, "class names not found: {path} (it is written beside the model by the pipeline)"
    )


def tflite_class_names(path):
    """The class names stored in a .tflite file's metadata by the export stage, or None."""
    found = tflite_metadata(path, TFLITE_CLASSES_METADATA)
    return None if found is None else checked_class_names(found, f"{path}'s metadata")


def tflite_metadata(path, name):
    """The JSON metadata entry `name` of a .tflite file, or None."""
    from ai_edge_litert import schema_py_generated as schema

    content = Path(path).read_bytes()
    if content[4:8] != TFLITE_IDENTIFIER:
        raise PipelineError(f"not a TFLite model: {path} (it lacks the TFL3 file identifier)")
    try:
        model = schema.Model.GetRootAsModel(content, 0)
        for index in range(model.MetadataLength()):
            metadata = model.Metadata(index)
            if metadata.Name() == name.encode():
                return json.loads(model.Buffers(metadata.Buffer()).DataAsNumpy().tobytes())
    except (struct.error, IndexError, AttributeError, ValueError, UnicodeDecodeError) as error:
        raise PipelineError(f"damaged TFLite model: {path} ({one_line(error)})") from None
    return None


def write_calibration(folder, calibration, statistics):
    """calibration.json and novelty.npz in folder (statistics: name -> array)."""
    import numpy as np

    with atomic_path(Path(folder) / NOVELTY_FILE) as path, open(path, "wb") as file:
        np.savez(file, **statistics)
    write_json(Path(folder) / CALIBRATION_FILE, calibration)


def read_calibration(model_path):
    """(calibration, statistics) for a model: calibration.json and novelty.npz beside it, or
    (a .tflite file) its metadata, whose graph holds the statistics (None); (None, None)
    for a model that was never calibrated (made before the calibrate stage existed)."""
    import numpy as np

    model_path = Path(model_path)
    folder = model_path.parent
    if model_path.suffix == ".tflite":
        return tflite_metadata(model_path, TFLITE_CALIBRATION_METADATA), None
    if not (folder / CALIBRATION_FILE).is_file():
        return None, None
    calibration = json.loads((folder / CALIBRATION_FILE).read_text())
    with np.load(folder / NOVELTY_FILE) as archive:
        statistics = {name: archive[name] for name in archive.files}
    return calibration, statistics
