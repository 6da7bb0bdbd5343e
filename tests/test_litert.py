"""LiteRT: conversions cached by content, read-only folders, and the same numbers as TensorFlow."""

import hashlib
import os
import stat
import tempfile

import keras
import numpy as np
import pytest

from tests.conftest import FEATURE_TOLERANCE, copy_shared_subset
from transfer.core.errors import PipelineError
from transfer.core.io import file_sha256
from transfer.data.images import load_image
from transfer.inference.bundle import open_bundle
from transfer.inference.litert import cached_conversion
from transfer.inference.runners import bundle_runner, network_runner
from transfer.models.networks import build_base, build_feature_extractor


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


def test_a_conversion_is_made_once_then_read_from_the_cache(user_cache):
    convert, calls = counting()
    first = cached_conversion("abc", convert)
    second = cached_conversion("abc", convert)
    assert first == second == b"converted" and len(calls) == 1
    assert (user_cache / "abc.tflite").read_bytes() == b"converted"
    # Private: the folder 0700, the entry and its record 0600.
    assert stat.S_IMODE(user_cache.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in user_cache.iterdir()} == {0o600}
    assert (user_cache / "abc.sha256").read_text().strip() == hashlib.sha256(b"converted").hexdigest()


def test_a_planted_entry_without_a_record_is_rebuilt_not_run(user_cache):
    user_cache.mkdir(parents=True, mode=0o700)
    (user_cache / "abc.tflite").write_bytes(b"planted")
    convert, calls = counting()
    assert cached_conversion("abc", convert) == b"converted" and len(calls) == 1
    assert (user_cache / "abc.tflite").read_bytes() == b"converted"


def test_an_entry_that_does_not_match_its_record_is_rebuilt(user_cache):
    cached_conversion("abc", counting()[0])
    (user_cache / "abc.tflite").write_bytes(b"changed after it was written")
    convert, calls = counting()
    assert cached_conversion("abc", convert) == b"converted" and len(calls) == 1


def test_a_cache_folder_others_can_write_is_never_read(user_cache, capsys):
    cached_conversion("abc", counting(b"planted")[0])  # an entry with a valid record...
    user_cache.chmod(0o777)  # ...in a folder anyone could have written it to
    convert, calls = counting()
    assert cached_conversion("abc", convert) == b"converted" and len(calls) == 1
    assert "writable by other users" in capsys.readouterr().err
    assert (user_cache / "abc.tflite").read_bytes() == b"planted"  # not touched either


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_cache_folder_of_another_user_is_never_read(user_cache, capsys):
    cached_conversion("abc", counting(b"planted")[0])
    os.chown(user_cache, 65534, 65534)
    convert, calls = counting()
    assert cached_conversion("abc", convert) == b"converted" and len(calls) == 1
    assert "owned by another user" in capsys.readouterr().err


def test_a_symbolic_link_as_cache_folder_is_never_read(tmp_path, user_cache, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / "abc.tflite").write_bytes(b"planted")
    (elsewhere / "abc.sha256").write_text(hashlib.sha256(b"planted").hexdigest())
    user_cache.parent.mkdir(parents=True)
    user_cache.symlink_to(elsewhere)
    convert, calls = counting()
    assert cached_conversion("abc", convert) == b"converted" and len(calls) == 1
    assert "symbolic link" in capsys.readouterr().err


def test_the_shared_temporary_folder_is_not_a_cache(user_cache, tmp_path, monkeypatch):
    # Earlier versions fell back to <tmp>/transfer-litert-cache, which any local user can write.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    planted = tmp_path / "tmp" / "transfer-litert-cache"
    planted.mkdir(parents=True)
    (planted / "abc.tflite").write_bytes(b"planted")
    user_cache.parent.mkdir(parents=True)
    user_cache.write_text("in the way: the cache cannot be made")
    convert, calls = counting()
    assert cached_conversion("abc", convert) == b"converted" and len(calls) == 1


def test_where_the_cache_cannot_be_made_each_run_converts_with_a_notice(user_cache, capsys):
    # Root can write anywhere, so a file stands where the cache folder would be.
    user_cache.parent.mkdir(parents=True)
    user_cache.write_text("in the way")
    convert, calls = counting()
    assert cached_conversion("abc", convert) == cached_conversion("abc", convert) == b"converted"
    assert len(calls) == 2
    assert f"notice: not caching in {user_cache}" in capsys.readouterr().err


def save_classifier(path, seed):
    """A small convolutional classifier (converts in a second or two) with seeded weights."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.save(path)
    (path.parent / "classes.json").write_text('{"class_names": ["a", "b"]}')
    return model


def test_a_changed_model_file_is_converted_again_never_served_stale(tmp_path, user_cache):
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    model_path = tmp_path / "model.keras"
    outputs = []
    for seed in (0, 1):
        model = save_classifier(model_path, seed)
        bundle = open_bundle(model_path)
        logits = bundle_runner(bundle, "litert").run(images)["logits"]
        assert bundle.key == file_sha256(model_path)  # no calibration beside it
        tflite = (user_cache / f"{bundle.key}.tflite").read_bytes()
        np.testing.assert_allclose(logits, model.predict_on_batch(images), atol=1e-4)
        outputs.append((tflite, logits))
    assert outputs[0][0] != outputs[1][0]
    assert not np.allclose(outputs[0][1], outputs[1][1])
    assert len(list(user_cache.glob("*.tflite"))) == 2
    # Nothing beside the model file.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "classes.json", "model.keras"]


def test_a_model_with_an_op_litert_lacks_is_a_conversion_error(tmp_path, user_cache):
    # Area resizing is TensorFlow's ResizeArea: no LiteRT builtin runs it.
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Resizing(16, 16, interpolation="area")(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    (tmp_path / "classes.json").write_text('{"class_names": ["a", "b"]}')
    bundle = open_bundle(tmp_path / "model.keras")
    with pytest.raises(PipelineError, match="cannot run .*model.keras with LiteRT: .*ResizeArea"):
        bundle_runner(bundle, "litert")
    assert not list(tmp_path.rglob("*.tflite"))
    # auto: Keras runs it instead.
    assert bundle_runner(bundle).run(np.zeros((1, 32, 32, 3), np.float32))["logits"].shape == (1, 1)


def test_a_model_file_that_cannot_load_stays_a_pipeline_error(tmp_path, user_cache):
    (tmp_path / "model.keras").write_text("not a zip")
    (tmp_path / "classes.json").write_text('{"class_names": ["a", "b"]}')
    with pytest.raises(PipelineError, match="cannot load .*model.keras"):
        bundle_runner(open_bundle(tmp_path / "model.keras"), "litert")


def test_features_from_litert_match_tensorflows_on_real_photos(tmp_path, shared_weights, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    photos = copy_shared_subset(tmp_path / "photos", per_class=16)
    images = np.stack([load_image(path, 96) for path in sorted(photos.rglob("*.jpg"))])
    extractor = build_feature_extractor(build_base(96, str(shared_weights)))
    tensorflow = network_runner(extractor, "keras").run(images)["logits"]
    litert = network_runner(extractor, "litert", threads=2).run(images)["logits"]
    assert litert.shape == tensorflow.shape == (32, 1280)
    assert np.abs(litert - tensorflow).max() <= FEATURE_TOLERANCE
    assert tensorflow.std() > 0.1  # real, varied features: the agreement means something
    # One conversion per architecture and weights, in the user's cache.
    assert len(list((tmp_path / "cache" / "transfer" / "litert").glob("*.tflite"))) == 1
    network_runner(extractor, "litert")
    assert len(list((tmp_path / "cache" / "transfer" / "litert").glob("*.tflite"))) == 1
