"""The ONNX export (transfer.deploy.export.onnx_model) of a tiny calibrated model, with every
novelty method, run by an ONNX Runtime session and by `transfer predict`. The real photos
and models: tests/test_pipeline*.py."""

from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import transfer_predict
from transfer.calibration.novelty import get_method
from transfer.config.schema import NOVELTY_METHODS
from transfer.core.task import Task
from transfer.deploy.export import onnx_model
from transfer.inference.bundle import open_bundle
from transfer.inference.runners import bundle_runner

SIZE = 32


def tiny_deployed(method, num_classes, images):
    """A tiny classifier, calibrated with `method` fitted on the images' features."""
    import keras

    from transfer.inference.deployed import deployed_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 5, strides=2, activation="relu")(keras.layers.Rescaling(1 / 127.5, -1)(inputs))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(1 if num_classes == 2 else num_classes)(x))
    features = keras.Model(inputs, x).predict(images, verbose=0)
    labels = np.arange(len(images)) % num_classes
    settings = {"method": method, "accept": 0.9, "neighbours": 2, "bank_size": 16}
    statistics = get_method(method).fit(features, labels, num_classes, settings, 0)
    settings["threshold"] = 0.5
    calibration = {"temperature": 0.5, "novelty": settings}
    deployed = deployed_model(model, calibration, statistics)
    # The threshold at the median score: both flags show.
    settings["threshold"] = float(np.median(deployed.predict(images, verbose=0)["novelty"]))
    return deployed_model(model, calibration, statistics), calibration


@pytest.mark.parametrize("method", NOVELTY_METHODS)
@pytest.mark.parametrize("num_classes", [2, 3])
def test_onnx_runtime_computes_every_output_as_keras_does(method, num_classes, tmp_path):
    import onnxruntime

    images = np.random.default_rng(0).integers(0, 256, (16, SIZE, SIZE, 3)).astype(np.float32)
    model, calibration = tiny_deployed(method, num_classes, images)
    task = Task([f"class {index}" for index in range(num_classes)])
    job = SimpleNamespace(task=task, calibration=calibration, float32_model=model)
    onnx_model.write(job, tmp_path / "model.onnx")

    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, {"image": images})))
    expected = model.predict(images, verbose=0)
    assert set(outputs) == set(expected) == {"probabilities", "known", "logits", "novelty"}
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(outputs["probabilities"], task.probabilities(expected["logits"]), atol=1e-6)
    assert 0 < outputs["known"].sum() < len(images)

    bundle = open_bundle(tmp_path / "model.onnx")  # from its metadata properties alone
    assert bundle.class_names == task.class_names and bundle.calibration == calibration
    ours = bundle_runner(bundle).run(images)
    assert set(ours) == {"logits", "novelty"}
    np.testing.assert_allclose(ours["logits"], expected["logits"], atol=1e-5)


def test_predict_on_an_onnx_file_is_one_line_when_it_cannot(tmp_path, image_folder):
    photo = next(image_folder.rglob("*.jpg"))
    (tmp_path / "damaged.onnx").write_bytes(b"not a protobuf at all")
    result, lines = transfer_predict(tmp_path / "damaged.onnx", photo)
    assert result.returncode == 2 and lines == []
    assert result.stderr.strip().startswith(f"error: damaged ONNX model: {tmp_path / 'damaged.onnx'}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_onnx_file_runs_in_onnx_runtime_only(tmp_path, image_folder):
    images = np.zeros((4, SIZE, SIZE, 3), np.float32)
    model, calibration = tiny_deployed("max_probability", 2, images)
    job = SimpleNamespace(task=Task(["a", "b"]), calibration=calibration, float32_model=model)
    onnx_model.write(job, tmp_path / "model.onnx")
    photo = next(image_folder.rglob("*.jpg"))
    result, _ = transfer_predict(tmp_path / "model.onnx", photo, "--runtime", "litert")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --runtime litert needs a .keras model; {tmp_path / 'model.onnx'} runs in onnxruntime only"
    )
    result, lines = transfer_predict(tmp_path / "model.onnx", photo)
    assert result.returncode == 0 and lines[0]["label"] in ("a", "b") and "known" in lines[0]
