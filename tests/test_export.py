"""The SavedModel's in-graph decoding: EXIF orientation and Pillow's preprocessing, on bytes."""

import io
import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from tests.conftest import high_bit_depth_twins, jpeg_with_orientation
from transfer.core.task import Task
from transfer.data.images import load_image
from transfer.deploy.export import saved_model
from transfer.deploy.serving import decode_for_serving, exif_orientation
from transfer.inference.deployed import deployed_model

ORIENTATIONS = range(1, 9)


def quadrants(height=24, width=40):
    """An image whose eight orientations all differ."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, : width // 2] = [255, 0, 0]
    pixels[: height // 2, width // 2 :] = [0, 255, 0]
    pixels[height // 2 :, : width // 2] = [0, 0, 255]
    pixels[height // 2 :, width // 2 :] = [255, 255, 0]
    pixels[:4, :4] = 255
    return pixels


def pillow_upright(data):
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.int32)


@pytest.mark.parametrize("byte_order", ["II", "MM"])
def test_the_orientation_is_read_in_either_byte_order(byte_order):
    for orientation in ORIENTATIONS:
        data = jpeg_with_orientation(quadrants(), orientation, byte_order)
        assert with_pillow_reading(data) == orientation  # the file is what cameras write
        assert int(exif_orientation(tf.constant(data))) == orientation


def with_pillow_reading(data):
    with Image.open(io.BytesIO(data)) as image:
        return image.getexif().get(0x0112)


def test_files_without_a_readable_orientation_are_taken_as_stored():
    buffer = io.BytesIO()
    Image.fromarray(quadrants()).save(buffer, "PNG")
    plain = io.BytesIO()
    Image.fromarray(quadrants()).save(plain, "JPEG")
    bad_value = jpeg_with_orientation(quadrants(), 9)
    truncated = jpeg_with_orientation(quadrants(), 6)[:30]  # cut inside the EXIF segment
    for data in (buffer.getvalue(), plain.getvalue(), bad_value, truncated, b"", b"\xff\xd8"):
        assert int(exif_orientation(tf.constant(data))) == 1


def test_each_orientation_is_undone_as_pillow_does():
    decode = tf.function(lambda data: decode_for_serving(data, 32))
    for orientation in ORIENTATIONS:
        data = jpeg_with_orientation(quadrants(), orientation)
        upright = pillow_upright(data)
        # Pillow's own preprocessing of the same bytes, to the serving size.
        expected = load_image(io.BytesIO(data), 32).astype(np.int32)
        served = decode(tf.constant(data)).numpy().astype(np.int32)
        assert np.abs(served - expected).max() <= 1, orientation
        if orientation != 1:  # the tag matters: the stored pixels, resized, are another image
            as_stored = load_image(io.BytesIO(jpeg_with_orientation(quadrants(), 1)), 32).astype(np.int32)
            assert np.abs(served - as_stored).mean() > 20, orientation
        assert upright.shape[:2] == ((24, 40) if orientation <= 4 else (40, 24))


@pytest.fixture(scope="module")
def rotated_photo(shared_photos):
    """A real photo whose pixels are stored turned a quarter counter-clockwise, with the
    EXIF orientation (6) that tells a viewer to turn it back."""
    with Image.open(shared_photos / "train" / "cats" / "cat.1.jpg") as photo:
        upright = np.asarray(photo.convert("RGB"))
    return upright, jpeg_with_orientation(np.ascontiguousarray(np.rot90(upright, 1)), 6)


def test_a_rotated_real_photo_is_decoded_upright_as_pillow_decodes_it(rotated_photo):
    upright, data = rotated_photo
    assert pillow_upright(data).shape == upright.shape
    expected = load_image(io.BytesIO(data), 160).astype(np.int32)
    served = decode_for_serving(tf.constant(data), 160).numpy().astype(np.int32)
    assert np.abs(served - expected).mean() <= 0.2 and np.abs(served - expected).max() <= 2
    # The same photo stored upright decodes to (nearly) the same image.
    assert np.abs(served - load_image(io.BytesIO(jpeg_with_orientation(upright, 1)), 160)).mean() < 2


@pytest.mark.parametrize("name", ["gray16_png", "rgb16_png"])
def test_the_in_graph_decoder_scales_16_bit_pngs_as_pillow_does(name):
    sixteen, eight = high_bit_depth_twins()[name]
    served = decode_for_serving(tf.constant(sixteen), 40).numpy()
    np.testing.assert_array_equal(served, decode_for_serving(tf.constant(eight), 40).numpy())
    assert np.abs(served - load_image(io.BytesIO(sixteen), 40)).max() <= 1


def test_the_saved_model_serves_a_rotated_photo_as_predict_sees_it(rotated_photo, tmp_path):
    _, data = rotated_photo
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 5, strides=2, activation="relu")(keras.layers.Rescaling(1 / 127.5, -1)(inputs))
    x = keras.layers.Flatten()(x)  # position-sensitive, unlike pooling: orientation shows
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    task = Task(["a", "b", "c"])
    # Calibrated as the calibrate stage would: the served probabilities are those of logits / T.
    calibration = {"temperature": 1.5, "novelty": {"method": "max_probability", "threshold": 0.5}}
    # What the writer reads of an export job (transfer.deploy.export.formats.ExportJob).
    job = SimpleNamespace(model=deployed_model(model, calibration, {}), task=task, calibration=calibration)
    saved_model.write(job, tmp_path / "saved_model")
    serve = saved_model.load_serving(tmp_path / "saved_model")
    stored = jpeg_with_orientation(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), 1)
    served = serve(image_bytes=tf.constant([data, stored]))
    logits = model.predict(load_image(io.BytesIO(data), 64)[np.newaxis], verbose=0)
    client = task.probabilities(logits / 1.5)
    np.testing.assert_allclose(served["probabilities"].numpy()[0], client[0], atol=2e-3)
    novelty = served["novelty"].numpy()
    np.testing.assert_allclose(novelty[0], 1 - client[0].max(), atol=2e-3)
    assert list(served["known"].numpy()) == [value <= 0.5 for value in novelty]
    assert np.abs(served["probabilities"].numpy()[1] - client[0]).max() > 0.01  # the tag mattered
    assert served["label"].numpy()[0].decode() == task.class_names[int(np.argmax(client[0]))]
    classes = json.loads((tmp_path / "saved_model" / "assets.extra" / "classes.json").read_text())
    assert classes == {"class_names": ["a", "b", "c"]}
