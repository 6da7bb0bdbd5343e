"""Trained networks from and for files: a .keras file loaded safely, and a float32 copy for
the TFLite converter."""

import zipfile
from pathlib import Path

import keras

from transfer.core.artifacts import model_not_found
from transfer.core.errors import PipelineError, one_line

# Loading a .keras file deserializes the project's own layers: register them first.
from transfer.models import networks  # noqa: F401


def load_model(path):
    """Load a .keras model in safe mode: no code from the file ever runs.

    Not compiled: every stage compiles what it trains for its own phase."""
    path = Path(path)
    if not path.is_file():
        raise model_not_found(path)
    if not zipfile.is_zipfile(path):
        raise PipelineError(f"cannot load {path}: not a Keras model (a .keras file is a zip archive)")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except ValueError as error:
        if "safe_mode" not in str(error):  # not a .keras zip, or a broken one
            raise PipelineError(f"cannot load {path}: {one_line(error)}") from None
        raise PipelineError(
            f"refusing to load {path}: it contains code (a Lambda layer), unsafe to run"
        ) from None


def computing_in_float32(model):
    """The model, or under mixed precision a copy with the same weights that computes in
    float32: TFLite cannot convert bfloat16 or float16 convolutions. Mixed precision keeps
    its variables in float32, so nothing is lost."""

    def float32_policies(value):
        if isinstance(value, dict):
            if value.get("class_name") == "DTypePolicy" and value["config"]["name"].startswith("mixed_"):
                return {**value, "config": {**value["config"], "name": "float32"}}
            return {key: float32_policies(item) for key, item in value.items()}
        if isinstance(value, list):
            return [float32_policies(item) for item in value]
        return value

    serialized = keras.saving.serialize_keras_object(model)
    converted = float32_policies(serialized)
    if converted == serialized:
        return model
    copy = keras.saving.deserialize_keras_object(converted)
    copy.set_weights(model.get_weights())
    return copy
