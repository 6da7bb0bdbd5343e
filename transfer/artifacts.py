"""Where the pipeline keeps what it makes, and the class names that travel with each model.

The paths are those dvc.yaml declares (tests/test_faults.py holds every stage
to them). Class names go beside the features and each model as `classes.json`
({"class_names": [...]}, index order), into the SavedModel's assets and into
an exported .tflite file's metadata; this module writes and reads them all.
"""

import json
from pathlib import Path

from transfer.errors import PipelineError

PREPARED = "data/prepared"
FEATURES = "data/features"
HEAD_MODEL = "models/head.keras"
MODEL = "models/model.keras"
EXPORT = "export"

CLASSES_FILE = "classes.json"
# The name of the metadata entry that holds the class names inside an exported .tflite file.
TFLITE_CLASSES_METADATA = "class_names"


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
    return json.loads(path.read_text())["class_names"]


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
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    for index in range(model.MetadataLength()):
        metadata = model.Metadata(index)
        if metadata.Name() == TFLITE_CLASSES_METADATA.encode():
            data = model.Buffers(metadata.Buffer()).DataAsNumpy()
            return json.loads(data.tobytes())["class_names"]
    return None
