"""LiteRT: conversions cached by content, read-only folders, and the same numbers as TensorFlow."""

import tempfile

import keras
import numpy as np
import pytest

from tests.conftest import FEATURE_TOLERANCE, copy_shared_subset
from transfer.errors import PipelineError
from transfer.images import load_image
from transfer.inference import TFLiteModel, outputs_of
from transfer.io import file_sha256
from transfer.litert import ConversionError, cached_conversion, keras_file_as_tflite
from transfer.model import build_base, build_feature_extractor


@pytest.fixture
def temporary_cache(tmp_path, monkeypatch):
    """tempfile's folder (the fallback cache) inside the test's own folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    return tmp_path / "tmp" / "transfer-litert-cache"


def counting(converted=b"converted"):
    calls = []

    def convert():
        calls.append(1)
        return converted

    return convert, calls


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "transfer" / "litert"


def test_a_conversion_is_made_once_then_read_from_the_cache(user_cache, temporary_cache):
    convert, calls = counting()
    first = cached_conversion("abc", convert)
    second = cached_conversion("abc", convert)
    assert first == second == user_cache / "abc.tflite"
    assert first.read_bytes() == b"converted" and len(calls) == 1


def test_where_the_cache_cannot_be_written_the_temporary_cache_holds_it(user_cache, temporary_cache):
    # Root can write anywhere, so a file stands where the cache folder would be.
    user_cache.parent.mkdir(parents=True)
    user_cache.write_text("in the way")
    convert, calls = counting()
    path = cached_conversion("abc", convert)
    assert path == temporary_cache / "abc.tflite" and path.read_bytes() == b"converted"
    assert cached_conversion("abc", convert) == path and len(calls) == 1


def test_nowhere_to_write_is_a_conversion_error(user_cache, temporary_cache):
    user_cache.parent.mkdir(parents=True)
    user_cache.write_text("in the way")
    temporary_cache.write_text("in the way too")
    with pytest.raises(ConversionError, match="cannot write the LiteRT conversion"):
        cached_conversion("abc", counting()[0])


def save_classifier(path, seed):
    """A small convolutional classifier (converts in a second or two) with seeded weights."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.save(path)
    return model


def test_a_changed_model_file_is_converted_again_never_served_stale(tmp_path, user_cache, temporary_cache):
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    model_path = tmp_path / "model.keras"
    outputs = []
    for seed in (0, 1):
        model = save_classifier(model_path, seed)
        tflite = keras_file_as_tflite(model_path)
        assert tflite == user_cache / f"{file_sha256(model_path)}.tflite"
        logits = TFLiteModel(tflite).logits(images)
        np.testing.assert_allclose(logits, model.predict_on_batch(images), atol=1e-4)
        outputs.append((tflite, logits))
    assert outputs[0][0] != outputs[1][0]
    assert not np.allclose(outputs[0][1], outputs[1][1])
    assert len(list(user_cache.glob("*.tflite"))) == 2
    # Nothing beside the model file.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "model.keras", "tmp"]


def test_a_model_with_an_op_litert_lacks_is_a_conversion_error(tmp_path, user_cache, temporary_cache):
    # Area resizing is TensorFlow's ResizeArea: no LiteRT builtin runs it.
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Resizing(16, 16, interpolation="area")(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    with pytest.raises(ConversionError, match="ResizeArea"):
        keras_file_as_tflite(tmp_path / "model.keras")
    assert not list(tmp_path.rglob("*.tflite"))


def test_a_model_file_that_cannot_load_stays_a_pipeline_error(tmp_path, user_cache, temporary_cache):
    (tmp_path / "model.keras").write_text("not a zip")
    with pytest.raises(PipelineError, match="cannot load .*model.keras"):
        keras_file_as_tflite(tmp_path / "model.keras")


def test_features_from_litert_match_tensorflows_on_real_photos(tmp_path, shared_weights, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    photos = copy_shared_subset(tmp_path / "photos", per_class=16)
    images = np.stack([load_image(path, 96) for path in sorted(photos.rglob("*.jpg"))])
    extractor = build_feature_extractor(build_base(96, str(shared_weights)))
    tensorflow = np.asarray(outputs_of(extractor, "tensorflow")(images))
    litert = outputs_of(extractor, "litert", threads=2)(images)
    assert litert.shape == tensorflow.shape == (32, 1280)
    assert np.abs(litert - tensorflow).max() <= FEATURE_TOLERANCE
    assert tensorflow.std() > 0.1  # real, varied features: the agreement means something
    # One conversion per architecture and weights, in the user's cache.
    assert len(list((tmp_path / "cache" / "transfer" / "litert").glob("*.tflite"))) == 1
    outputs_of(extractor, "litert")
    assert len(list((tmp_path / "cache" / "transfer" / "litert").glob("*.tflite"))) == 1
