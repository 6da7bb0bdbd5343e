"""The exported .tflite files' standard metadata (transfer.deploy.export.tflite_metadata): a tiny
calibrated model written as the export stage writes it, loaded by MediaPipe Tasks'
ImageClassifier as an app loads it. The real photos and models: tests/test_pipeline*.py."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import transfer_predict
from transfer.core.task import Task
from transfer.deploy.export import mediapipe_tasks, tflite
from transfer.deploy.export.tflite_metadata import LABELS_FILE
from transfer.inference.bundle import CLASSES_METADATA, open_bundle, tflite_metadata
from transfer.inference.litert import plain_saved_model
from transfer.inference.runners import LiteRTRunner

SIZE = 32


def tiny_deployed(num_classes, threshold):
    import keras

    from transfer.inference.deployed import deployed_model

    keras.utils.set_random_seed(num_classes)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 5, strides=2, activation="relu")(keras.layers.Rescaling(1 / 127.5, -1)(inputs))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(1 if num_classes == 2 else num_classes)(x))
    calibration = {"temperature": 0.5, "novelty": {"method": "max_probability", "threshold": threshold}}
    return deployed_model(model, calibration, {}), calibration


@pytest.fixture(scope="module", params=[2, 3], ids=["two_classes", "three_classes"])
def exported(request, tmp_path_factory):
    """Both TFLite files of a tiny calibrated model, written twice; and the images."""
    num_classes = request.param
    task = Task([f"class {index}" for index in range(num_classes)])
    images = np.random.default_rng(0).integers(0, 256, (24, SIZE, SIZE, 3)).astype(np.float32)
    # The threshold splits these images' novelty scores in two: both flags show.
    model, calibration = tiny_deployed(num_classes, threshold=0.0)
    calibration["novelty"]["threshold"] = float(np.median(model.predict(images, verbose=0)["novelty"]))
    model, calibration = tiny_deployed(num_classes, calibration["novelty"]["threshold"])
    folder = tmp_path_factory.mktemp(f"tflite{num_classes}")
    with plain_saved_model(model) as saved_model:
        job = SimpleNamespace(
            task=task,
            calibration=calibration,
            plain_saved_model=saved_model,
            representative_images=lambda: images,
        )
        for copy in ("first", "second"):
            tflite.write_float32(job, folder / f"float32_{copy}.tflite")
            tflite.write_int8(job, folder / f"int8_{copy}.tflite")
    return folder, task, images, calibration


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_mediapipe_reads_the_classes_and_known_as_predicts_runner_does(exported, precision):
    folder, task, images, calibration = exported
    path = folder / f"{precision}_first.tflite"
    ours = LiteRTRunner(path).run(images)
    ours_probabilities = task.probabilities(ours["logits"])
    ours_known = ours["novelty"][:, 0] <= calibration["novelty"]["threshold"]
    assert 0 < ours_known.sum() < len(images)
    with mediapipe_tasks.classifier(path) as classifier:
        results = [mediapipe_tasks.classify(classifier, image, task.num_classes) for image in images]
        categories = mediapipe_tasks.heads(classifier, images[0])["probabilities"]
        labels = {category.index: category.category_name for category in categories}
    assert labels == dict(enumerate(task.class_names))  # from labels.txt, by MediaPipe
    np.testing.assert_allclose([row for row, _ in results], ours_probabilities, atol=1e-6)
    assert [known for _, known in results] == list(ours_known)


def test_the_metadata_names_the_input_range_and_every_output_head(exported):
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    folder, task, _, calibration = exported
    path = folder / "int8_first.tflite"
    runner = LiteRTRunner(path)
    (buffer,) = [content for name, content in read_metadata_buffers(path) if name == "TFLITE_METADATA"]
    metadata = schema.ModelMetadata.GetRootAs(buffer, 0)
    subgraph = metadata.SubgraphMetadata(0)
    image = subgraph.InputTensorMetadata(0)
    normalization = image.ProcessUnits(0).Options()
    options = schema.NormalizationOptions()
    options.Init(normalization.Bytes, normalization.Pos)
    assert (options.Mean(0), options.Std(0)) == (0.0, 1.0)  # the graph takes 0-255 as they are
    outputs = [subgraph.OutputTensorMetadata(index).Name().decode() for index in range(4)]
    assert outputs == runner.output_order and set(outputs) == {"probabilities", "known", "logits", "novelty"}
    probabilities = subgraph.OutputTensorMetadata(outputs.index("probabilities"))
    assert probabilities.AssociatedFiles(0).Name().decode() == LABELS_FILE
    assert probabilities.AssociatedFiles(0).Type() == schema.AssociatedFileType.TENSOR_AXIS_LABELS
    assert str(task.num_classes) in metadata.Name().decode()


def read_metadata_buffers(path):
    """[(name, bytes)] of a .tflite file's metadata entries."""
    from ai_edge_litert import schema_py_generated as schema

    content = path.read_bytes()
    model = schema.Model.GetRootAsModel(content, 0)
    entries = []
    for index in range(model.MetadataLength()):
        metadata = model.Metadata(index)
        entries.append((metadata.Name().decode(), model.Buffers(metadata.Buffer()).DataAsNumpy().tobytes()))
    return entries


def test_the_same_model_gives_the_same_bytes(exported):
    folder, *_ = exported
    for precision in ("float32", "int8"):
        first, second = (folder / f"{precision}_{copy}.tflite" for copy in ("first", "second"))
        assert first.read_bytes() == second.read_bytes()


def test_predict_reads_the_class_names_from_the_standard_labels_alone(exported, tmp_path):
    folder, task, images, calibration = exported
    path = folder / "float32_first.tflite"
    assert CLASSES_METADATA not in tflite_metadata(path)  # one copy of the names: labels.txt
    bundle = open_bundle(path)
    assert bundle.class_names == task.class_names and bundle.calibration == calibration
    from PIL import Image

    Image.fromarray(images[0].astype(np.uint8)).save(tmp_path / "photo.png")
    result, lines = transfer_predict(path, tmp_path / "photo.png", "--top", str(task.num_classes))
    assert result.returncode == 0, result.stderr
    assert {name for name, _ in lines[0]["top"]} == set(task.class_names)


def test_a_file_exported_before_the_standard_metadata_still_names_its_classes(exported, tmp_path):
    """Older exports carry their names in a JSON entry of their own, and no labels.txt."""
    folder, task, _, calibration = exported
    flatbuffer = (folder / "float32_first.tflite").read_bytes()
    end = flatbuffer.rfind(b"PK\x03\x04")  # where labels.txt's zip begins
    entries = {CLASSES_METADATA: json.dumps({"class_names": list(task.class_names)}).encode()}
    (tmp_path / "old.tflite").write_bytes(tflite.with_metadata(flatbuffer[:end], entries))
    assert open_bundle(tmp_path / "old.tflite").class_names == task.class_names
